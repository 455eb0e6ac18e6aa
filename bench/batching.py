"""What batching windows of like length saves: an epoch of `train`'s batches (`Windows.batches`, causal windows
sorted by jittered length) against the same windows in random batches, on pokemon-dev, on CPU.

    python bench/batching.py [DATA] [--steps 12] [--threads 2] [--backbones lstm,transformer,mamba] [--seq-length 1024,256]

DATA: the pokemon-dev image folder (default `../shared/data/pokemon-dev`, relative to the repository root), built
with `pixelbytes.data.build` into a temporary folder that is removed at the end.

A causal batch runs as long as its longest window, so every position of a shorter window up to that length is
padding that costs as much as a real token. For each window length (`--seq-length`: 1024 holds a whole item, the
default of `train`; 256 is the reference's Table-1 window), the windows of epoch 0 as `train` makes them
(`_split_items`, `epoch_sequences`, `Windows`), in batches of 16:

- real tokens: the share of the positions of the epoch's batches that are not padding, both ways (exact, from
  the windows' lengths);
- speed: for each backbone at `PixelBytesConfig`'s default size (d_model 128, 2 layers), --steps training steps
  as `train` takes them (forward, cross-entropy over the real positions, backward, clipping, AdamW; the loss is
  divided by the batch's own target count rather than the epoch's mean, which costs the same), after 2 warm-up
  steps. Step k trains on batch k of each order, alternating which order goes first, so both see the same machine
  state. Target tokens per second = tokens that take a loss / seconds, summed over the steps.

Prints a table, writes bench/out/batching.json.
"""
import argparse, json, os, platform, sys, tempfile, time
from pathlib import Path
# Before torch starts OpenMP: spin briefly, then sleep (see bench/train_speed.py).
if 'OMP_WAIT_POLICY' not in os.environ: os.environ.setdefault('GOMP_SPINCOUNT', '1000')
import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure this checkout, whatever copy of pixelbytes is installed
from pixelbytes.data import build, load_built
from pixelbytes.models import PixelBytesConfig, PixelBytesModel
from pixelbytes.windows import Windows, IGNORE, epoch_sequences
from pixelbytes.train import _split_items, _optimizer

BATCH = 16

def real_share(wins: Windows, batches) -> float:
    "Share of the positions of `batches` (each padded to its longest window) that are real tokens."
    length = wins.rows[:, 2] - wins.rows[:, 1]
    return float(sum(length[b].sum() for b in batches) / sum(length[b].max() * len(b) for b in batches))

def step(model, opt, ctx, tgt) -> tuple:
    "Seconds of one training step as `train` takes it, and the number of tokens that took a loss."
    start = time.perf_counter()
    logits = model(ctx)
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=IGNORE, reduction='sum')
    n = int((tgt != IGNORE).sum())
    (nll / n).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step(); opt.zero_grad(set_to_none=True)
    return time.perf_counter() - start, n

def measure(built, seq_length: int, backbones, steps: int) -> dict:
    tok = built.tokenizer
    cfg = PixelBytesConfig(seq_length=seq_length, batch_size=BATCH, tokenizer=tok.to_dict())
    items, _ = _split_items(built.train['input_ids'], tok, cfg)
    wins = Windows(epoch_sequences(items, tok, cfg, 0), cfg)
    grouped = wins.batches(BATCH, np.random.default_rng(0))
    shuffled = np.random.default_rng(0).permutation(len(wins))[:grouped.size].reshape(grouped.shape)
    row = {'seq_length': seq_length, 'windows': len(wins), 'batches': len(grouped),
           'real_grouped': real_share(wins, grouped), 'real_random': real_share(wins, shuffled), 'speed': {}}
    for name in backbones:
        c = PixelBytesConfig(**{**cfg.to_dict(), 'backbone': name})
        torch.manual_seed(0)
        model = PixelBytesModel(c).train()
        opt = _optimizer(model, c)
        secs, targets = {'grouped': 0.0, 'random': 0.0}, {'grouped': 0, 'random': 0}
        for k in range(2 + steps):
            ways = [('grouped', grouped[k % len(grouped)]), ('random', shuffled[k % len(shuffled)])]
            for way, idx in (ways if k % 2 == 0 else ways[::-1]):
                t, n = step(model, opt, *wins.batch(idx))
                if k >= 2: secs[way] += t; targets[way] += n
        rate = {w: targets[w] / secs[w] for w in secs}
        row['speed'][name] = {'target_tokens_per_s': rate, 'speedup': rate['grouped'] / rate['random']}
        print(f"  seq {seq_length} {name}: {rate['grouped']:.0f} against {rate['random']:.0f} target tokens/s", flush=True)
    return row

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('data', nargs='?', default=str(REPO.parent/'shared'/'data'/'pokemon-dev'))
    p.add_argument('--steps', type=int, default=12)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--backbones', default='lstm,transformer,mamba')
    p.add_argument('--seq-length', default='1024,256')
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    backbones = [b.strip() for b in args.backbones.split(',') if b.strip()]
    with tempfile.TemporaryDirectory(prefix='batching-') as tmp:
        build(args.data, out=Path(tmp)/'data', progress=False)
        built = load_built(Path(tmp)/'data')
        rows = [measure(built, int(s), backbones, args.steps) for s in args.seq_length.split(',')]
    print(f"\nBatches of {BATCH} windows of epoch 0, grouped by length (train) against random; CPU, {args.threads} threads, {args.steps} steps each")
    hdr = f"{'window':>7}{'batches':>9}{'real tokens':>20}  " + ''.join(f"{b + ' speedup':>20}" for b in backbones)
    print(hdr); print('-' * len(hdr))
    for r in rows:
        print(f"{r['seq_length']:>7}{r['batches']:>9}{r['real_grouped']:>11.1%} vs {r['real_random']:>5.1%}  "
              + ''.join(f"{r['speed'][b]['speedup']:>19.2f}x" for b in backbones))
    print("real tokens: share of the batches' positions that are not padding (grouped vs random); speedup: target tokens per\n"
          "second of training steps on grouped batches over random ones, measured side by side.")
    out = REPO/'bench'/'out'
    out.mkdir(parents=True, exist_ok=True)
    meta = {'torch': torch.__version__, 'python': platform.python_version(), 'threads': args.threads, 'steps': args.steps,
            'load_average_1min': os.getloadavg()[0], 'gomp_spincount': os.environ.get('GOMP_SPINCOUNT'), 'data': str(args.data)}
    (out/'batching.json').write_text(json.dumps({'meta': meta, 'results': rows}, indent=1))
    print(f"wrote {out/'batching.json'}")

if __name__ == '__main__':
    main()
