"""Fine-tuning against training from scratch, on a few sprites of species a base model never saw.

    python bench/fine_tune.py [DATA] [--base-minutes 5] [--minutes 3] [--own 40] [--threads 2] [--keep DIR]

DATA: the pokemon-dev image folder (default `../shared/data/pokemon-dev`). Its sprites are split by species number:
generations 1 to 3 (#1-#386) are the base set, generation 4 (#387-#493, 107 species drawn for later games) stands
for a user's own sprites. Of those, --own (default 40) are the training items and the rest the test items
(`build(test_size=...)`, seed 0); the base set is built whole, with the same palette and vocabulary.

Models, each with the LSTM recipe of bench/quality.py (its best backbone) and torch.set_num_threads(--threads):
- base: trained --base-minutes on the base set;
- base as it is: the base model scored on the own test items, without training on them;
- from scratch: trained --minutes on the own training items;
- fine-tuned: `train(..., init=base)` for --minutes on the own training items, with the recipe's schedule at a third
  of its learning rate and with 20 warmup steps.
Every run keeps the checkpoint of lowest validation loss (10% of its training items). Each model is scored on every
token of the own test items, as bench/quality.py scores its test split: bits per pixel, pixel accuracy, bits per
caption byte, caption byte accuracy.

Prints a table, writes bench/out/fine_tune.json and bench/out/fine_tune.png. About --base-minutes + 2 x --minutes plus
a minute of building and scoring.
"""
import argparse, csv, json, platform, shutil, sys, tempfile, time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import quality  # the recipe and the scoring of the quality benchmark; it puts this checkout first on sys.path
import torch
from pixelbytes.data import build, load_built
from pixelbytes.train import train

BASE_SPECIES = range(1, 387)  # generations 1-3; 387-493 (generation 4) stand for the user's own sprites

def split_folder(data: Path, out: Path, own: bool) -> Path:
    "A folder of links to the base or the own sprites of `data`, with their rows of its metadata.csv."
    out.mkdir(parents=True, exist_ok=True)
    with open(data/'metadata.csv', newline='', encoding='utf-8') as f: rows = list(csv.DictReader(f))
    keep = [r for r in rows if (int(Path(r['file_name']).stem) in BASE_SPECIES) != own]
    for r in keep:
        if not (out/r['file_name']).exists(): (out/r['file_name']).symlink_to((data/r['file_name']).resolve())
    with open(out/'metadata.csv', 'w', newline='', encoding='utf-8') as f:
        w = csv.DictWriter(f, fieldnames=['file_name', 'caption']); w.writeheader()
        w.writerows({'file_name': r['file_name'], 'caption': r['caption']} for r in keep)
    return out

def scored(name: str, model, built, seconds=None, history=None) -> dict:
    t = quality.score_test(model, built)
    keep = ('pixel_bits', 'pixel_acc', 'text_bits', 'text_acc')
    return {'model': name, 'train_seconds': seconds, 'epochs': history[-1]['epoch'] if history else None,
            'best_step': min(history, key=lambda h: h['val_loss'])['step'] if history else None, 'test': {k: t[k] for k in keep}}

def run(config, data, out, init=None) -> tuple:
    "Train `config` on `data` into `out`: the best model, the seconds it took, the history."
    start = time.time()
    model, history = train(config, data, out, init=init, overwrite=True, progress=False)
    return model, time.time() - start, history

def table(results, args) -> str:
    lines = [f"{args.own} training sprites of generation 4, scored on its other {results[0]['test_items']}; "
             f"base trained {args.base_minutes:g} min on generations 1-3, the others {args.minutes:g} min, {args.threads} CPU threads",
             f"{'model':<22}{'epochs':>8}{'bits/pixel':>12}{'pixel acc':>11}{'bits/byte':>11}{'text acc':>10}"]
    lines.append('-' * len(lines[-1]))
    for r in results:
        t = r['test']
        lines.append(f"{r['model']:<22}{'' if r['epochs'] is None else format(r['epochs'], '.1f'):>8}{t['pixel_bits']:>12.3f}"
                     f"{t['pixel_acc']:>11.1%}{t['text_bits']:>11.3f}{t['text_acc']:>10.1%}")
    return '\n'.join(lines)

def figure(results, path):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    names = [r['model'] for r in results]
    for ax, key, label in zip(axes, ('pixel_bits', 'text_bits'), ('bits per pixel', 'bits per caption byte')):
        ax.barh(names, [r['test'][key] for r in results], color=['#999999', '#bbbbbb', '#4477aa', '#ee6677'][:len(results)])
        ax.set_xlabel(f'{label} (lower is better)'); ax.invert_yaxis()
    axes[1].set_yticklabels([])
    fig.suptitle('held-out sprites of species the base model never saw')
    fig.tight_layout(); fig.savefig(path, dpi=120); plt.close(fig)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('data', nargs='?', default=str(quality.REPO.parent/'shared'/'data'/'pokemon-dev'))
    p.add_argument('--base-minutes', type=float, default=5)
    p.add_argument('--minutes', type=float, default=3, help='training budget of the from-scratch and fine-tuned runs')
    p.add_argument('--own', type=int, default=40, help='training sprites of generation 4')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--keep', help='folder for the built data and the models (default: a temporary folder)')
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = Path(args.data)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix='pixelbytes-fine-tune-'))
    try:
        base_data = build(split_folder(data, work/'base-images', own=False), out=work/'base', test_size=0, overwrite=True, progress=False)
        own_images = split_folder(data, work/'own-images', own=True)
        n_own = sum(1 for _ in open(own_images/'metadata.csv', encoding='utf-8')) - 1
        build(own_images, out=work/'own', test_size=n_own - args.own, overwrite=True, progress=False)
        own = load_built(work/'own')
        recipe = quality.recipe('lstm', args.base_minutes)
        base, base_s, base_h = run(recipe, base_data, work/'models'/'base')
        results = [scored('base as it is', base, own)]
        scratch, s_s, s_h = run({**recipe, 'max_minutes': args.minutes}, own, work/'models'/'scratch')
        results.append(scored('from scratch', scratch, own, s_s, s_h))
        # the recipe's schedule, as from scratch, at a lower rate and with a shorter warmup: the weights are not random
        fine = {**recipe, 'max_minutes': args.minutes, 'learning_rate': recipe['learning_rate'] / 3, 'warmup_steps': 20}
        tuned, t_s, t_h = run(fine, own, work/'models'/'fine-tuned', init=work/'models'/'base'/'best')
        results.append(scored('fine-tuned', tuned, own, t_s, t_h))
        for r in results: r['test_items'] = len(own.test)
        print('\n' + table(results, args))
        out = quality.REPO/'bench'/'out'; out.mkdir(exist_ok=True)
        meta = {'command': ' '.join(sys.argv), 'threads': args.threads, 'machine': platform.processor() or platform.machine(), 'torch': torch.__version__,
                'base_minutes': args.base_minutes, 'minutes': args.minutes, 'own_train': args.own, 'own_test': len(own.test),
                'base_items': len(load_built(work/'base').train), 'base_seconds': round(base_s, 1), 'base_epochs': base_h[-1]['epoch'], 'recipe': recipe}
        (out/'fine_tune.json').write_text(json.dumps({'meta': meta, 'results': results}, indent=1, default=float))
        figure(results, out/'fine_tune.png')
        print(f"wrote {out/'fine_tune.json'} and {out/'fine_tune.png'}")
    finally:
        if not args.keep: shutil.rmtree(work, ignore_errors=True)

if __name__ == '__main__':
    main()
