"""Does a larger model draw unseen species better? bench/quality.py's recipe at several sizes, on pokemon-dev.

    python bench/model_size.py [DATA] [--minutes 0.5] [--variants NAME,...] [--threads 2]

Meant for a GPU (`train` takes one when there is one): a size that a CPU trains for hours trains there in a minute.
DATA is built as bench/quality.py builds it (444 training and 49 test species, seed 0). Each variant is a backbone
with the quality recipe and some of its fields changed (VARIANTS), trained for --minutes on the training split with
`train`'s validation split choosing the checkpoint, then scored on every token of the test split as bench/quality.py
scores it. The question is the one the README's "How far a pixel's neighbourhood goes" asks from the data side:
whether the 75% pixel target of the issue is a matter of model capacity or compute. A variant whose best checkpoint
came at its last step was still learning (the table says so): its figure is a floor, not its ceiling.

Prints a table and writes bench/out/model_size.json and bench/out/model_size.png (test pixel accuracy and bits per
caption byte against parameters, with the targets).
"""
import argparse, json, platform, shutil, sys, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality as q  # sets the OpenMP spin before torch starts (see its Threads)
import torch

# name: (backbone, fields changed from bench/quality.py's recipe for that backbone)
VARIANTS = {'lstm 256 (recipe)': ('lstm', {}),
            'lstm 512': ('lstm', dict(d_model=512, dropout=0.5)),
            'lstm 768 x3': ('lstm', dict(d_model=768, n_layers=3, dropout=0.5)),
            'transformer 256 x4': ('transformer', dict(d_model=256, n_layers=4, n_heads=8, dropout=0.2)),
            'transformer 384 x6': ('transformer', dict(d_model=384, n_layers=6, n_heads=8, dropout=0.3)),
            'mamba 256 x4': ('mamba', dict(d_model=256, n_layers=4, d_state=16, expand=2, dropout=0.2))}

def run(name, built, data, work, minutes) -> dict:
    "Train and score variant `name`; the figures the table and the plot show."
    backbone, overrides = VARIANTS[name]
    r = q.learned(backbone, built, data, work, minutes, overrides, label=name.replace(' ', '_'))
    return {'variant': name, 'backbone': backbone, 'overrides': overrides, 'parameters': r['parameters'],
            'epochs': r['epochs'], 'steps': r['steps'], 'best_step': r['best_step'], 'train_seconds': r['train_seconds'],
            'test': {k: r['test'][k] for k in ('pixel_acc', 'pixel_bits', 'text_bits', 'text_acc')}}

def table(rows, minutes, device) -> str:
    lines = [f"pokemon-dev test split (49 unseen species); each variant trained {minutes:g} min on {device}",
             f"{'variant':<22}{'params':>12}{'epochs':>8}{'best step':>11}{'pixel acc':>11}{'bits/pixel':>12}{'bits/byte':>11}"]
    lines.append('-' * len(lines[-1]))
    for r in rows:
        t, late = r['test'], ' (its last)' if r['best_step'] == r['steps'] else ''
        lines.append(f"{r['variant']:<22}{r['parameters']:>12,}{r['epochs']:>8.1f}{r['best_step']:>11}{t['pixel_acc']:>11.1%}"
                     f"{t['pixel_bits']:>12.3f}{t['text_bits']:>11.3f}{late}")
    return '\n'.join(lines)

def figure(rows, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, target, label in ((axes[0], 'pixel_acc', q.TARGET_PIXEL_ACC, 'test pixel accuracy'),
                                   (axes[1], 'text_bits', q.TARGET_TEXT_BITS, 'test bits per caption byte')):
        for i, backbone in enumerate(dict.fromkeys(r['backbone'] for r in rows)):
            mine = [r for r in rows if r['backbone'] == backbone]
            ax.plot([r['parameters'] for r in mine], [r['test'][key] for r in mine], 'o-', color=f'C{i}', label=backbone)
        ax.axhline(target, color='red', ls=':', label=f"target {'>=' if key == 'pixel_acc' else '<='} {target:g}")
        ax.set_xscale('log'); ax.set_xlabel('parameters'); ax.set_title(label); ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('data', nargs='?', default=str(q.REPO.parent/'shared'/'data'/'pokemon-dev'))
    p.add_argument('--minutes', type=float, default=0.5, help='training budget per variant')
    p.add_argument('--variants', default=','.join(VARIANTS), help='names from VARIANTS, comma-separated')
    p.add_argument('--threads', type=int, default=2)
    args = p.parse_args()
    names = [v.strip() for v in args.variants.split(',') if v.strip()]
    for n in names:
        if n not in VARIANTS: p.error(f"unknown variant {n!r}: choose from {', '.join(VARIANTS)}")
    torch.set_num_threads(args.threads)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else 'the CPU'
    out, work = q.REPO/'bench'/'out', Path(tempfile.mkdtemp(prefix='model-size-'))
    out.mkdir(parents=True, exist_ok=True)
    try:
        data = work/'data'
        q.build(args.data, out=data, progress=False, overwrite=True)
        built, rows = q.load_built(data), []
        for name in names:
            rows.append(run(name, built, data, work, args.minutes))
            print(json.dumps(rows[-1]), flush=True)
            meta = {'device': device, 'torch': torch.__version__, 'python': platform.python_version(), 'threads': args.threads, 'minutes': args.minutes,
                    'data': str(args.data), 'recipe': q.RECIPE, 'per_backbone': q.PER_BACKBONE}
            (out/'model_size.json').write_text(json.dumps({'meta': meta, 'results': rows}, indent=1, default=float))
        print('\n' + table(rows, args.minutes, device))
        figure(rows, out/'model_size.png')
        print(f"wrote {out/'model_size.json'} and {out/'model_size.png'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

if __name__ == '__main__':
    main()
