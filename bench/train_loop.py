"""Steps per second of `train()` itself: the whole loop as a user runs it (batches, copies to the device, metrics,
optimizer, progress), for each backbone, optionally side by side with another checkout of the package.

    python bench/train_loop.py [DATA] [--backbones lstm,transformer,mamba] [--epochs 2,6] [--repeat 2] [--compare DIR]

DATA: the pokemon-dev image folder (default `../shared/data/pokemon-dev`, relative to the repository root), built
once with `pixelbytes.data.build` into a temporary folder that is removed at the end.

Each run is `train()` in a fresh process, with the default config of its backbone (AMP on a GPU), evaluating only
at the end. The time of one step is the difference between the wall times of two runs (--epochs, 2 and 6 by
default) over the difference of their steps: start-up, the first kernels and the final evaluation cancel out.

--compare DIR: the same runs with the `pixelbytes` package of DIR (a git worktree of an older commit, say),
alternating which goes first in each repeat. Read the ratio: the machines are shared, so absolute figures drift.

Prints a table and writes bench/out/train_loop.json (train_loop-cuda.json on a GPU).
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def worker(spec: dict):
    "One `train()` run; prints its wall time and steps as JSON."
    import torch
    from pixelbytes.train import train
    torch.set_num_threads(spec['threads'])
    cfg = {'backbone': spec['backbone'], 'epochs': spec['epochs'], 'eval_every': 10**9, 'patience': 0, 'seed': 0}
    t = time.perf_counter()
    _, history = train(cfg, spec['data'], spec['out'], overwrite=True, progress=False)
    print(json.dumps({'seconds': time.perf_counter() - t, 'steps': history[-1]['step'], 'device': 'cuda' if torch.cuda.is_available() else 'cpu'}))

def run(checkout: Path, spec: dict) -> dict:
    "`worker(spec)` in a fresh process that imports `pixelbytes` from `checkout`."
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(checkout), os.environ.get('PYTHONPATH', '')]), 'HF_HUB_OFFLINE': '1'}
    r = subprocess.run([sys.executable, __file__, '--worker', json.dumps(spec)], capture_output=True, text=True, env=env)
    if r.returncode: sys.exit(f"a run of {checkout} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('data', nargs='?', default=str(ROOT.parent/'shared'/'data'/'pokemon-dev'))
    ap.add_argument('--backbones', default='lstm,transformer,mamba')
    ap.add_argument('--epochs', default='2,6', help='the two run lengths whose difference is timed')
    ap.add_argument('--repeat', type=int, default=2)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--compare', help="another checkout's root, whose pixelbytes runs side by side")
    ap.add_argument('--worker', help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker: return worker(json.loads(args.worker))

    sys.path.insert(0, str(ROOT))  # build with this checkout; not at import, where it would hide --compare's package from its workers
    from pixelbytes.data import build
    short, long = (int(e) for e in args.epochs.split(','))
    checkouts = {'this': ROOT} | ({'compare': Path(args.compare).resolve()} if args.compare else {})
    rows, device = [], None
    with tempfile.TemporaryDirectory() as tmp:
        build(args.data, out=f'{tmp}/data', seed=0, progress=False)
        for backbone in args.backbones.split(','):
            per_step = {name: [] for name in checkouts}
            for r in range(args.repeat):
                for name in (list(checkouts) if r % 2 == 0 else list(checkouts)[::-1]):
                    spec = {'backbone': backbone, 'data': f'{tmp}/data', 'out': f'{tmp}/run-{name}', 'threads': args.threads}
                    a, b = (run(checkouts[name], {**spec, 'epochs': e}) for e in (short, long))
                    per_step[name].append((b['seconds'] - a['seconds']) / (b['steps'] - a['steps']))
                    device = a['device']
            row = {'backbone': backbone, **{f'{name} ms/step': 1e3 * statistics.median(v) for name, v in per_step.items()},
                   'steps timed': b['steps'] - a['steps']}
            if args.compare: row['speed-up'] = row['compare ms/step'] / row['this ms/step']
            rows.append(row)
            print(' | '.join(f'{k} {v:.3f}' if isinstance(v, float) else f'{k} {v}' for k, v in row.items()), flush=True)
    out = ROOT/'bench'/'out'/('train_loop-cuda.json' if device == 'cuda' else 'train_loop.json')
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({'device': device, 'compare': args.compare, 'epochs': [short, long], 'rows': rows}, indent=1))
    print(f'wrote {out}')

if __name__ == '__main__': main()
