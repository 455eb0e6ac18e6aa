"""Training throughput of every backbone at the reference's Table-1 size, on real pokemon-dev windows, on CPU:
target tokens per second with pixelbytes' every-token loss, against the same windows trained the reference's
way (one target per window).

    python bench/train_speed.py [DATA] [--batch-size 16] [--repeat 7] [--threads 2] [--backbones lstm,mamba] [--device cuda]

DATA: the pokemon-dev image folder (default `../shared/data/pokemon-dev`, relative to the repository root).
It is built with `pixelbytes.data.build` (pixelized to <=25x25 NES-palette images, caption->image token
sequences, train/test split by item, seed 0) into a temporary folder that is removed at the end.

Models: the reference's Table-1 size: d_model 81, d_state 64 (Mamba), 2 layers, seq_length 256, pxby
context with the linear mix, the default vocabulary (311 tokens), float32, seed 0. Backbones: lstm,
transformer, mamba, bilstm (lstm, bidirectional=True), bimamba (mamba, bidirectional=True). The
transformer cannot have d_model 81: its d_model must be a multiple of 2 * n_heads (heads of even size for
the rotary positions), and 81 is odd; it runs at the nearest valid size, d_model 80 with 4 heads (head size
20), and the table says so.

Windows: `pixelbytes.windows.Windows` over the training items of epoch 0 as `train` makes them
(`_split_items` then `epoch_sequences`: mirrored / reversed in order at random), with the config's own
windowing: a causal model gets 256-token windows covering each item, a bidirectional one gets one window per
position (the 256 positions up to it, zero-padded in front). Batches of --batch-size windows are drawn at
random (seed 0) and made before timing; the same batches serve both ways.

One training step, as `train` does it: forward, float32 cross-entropy summed over the tokens that take a
loss and divided by their number, backward, gradient clipping at 1.0, AdamW (`train._optimizer`: lr 3e-3,
weight decay 0.1 on matrices), zero_grad. Two ways:

- `every token` (pixelbytes): a causal model takes a loss at every real (not padded) position of each
  window; a bidirectional model predicts the token after the end of its window (one target per window: that
  is what a bidirectional model can predict, so `train` gives it one window per position instead).
- `one target` (the reference's way): the same windows, but only the window's last real position takes a
  loss. The backbone still runs over the whole window; the head and the loss see only that position (as a
  reference-style model computes them). For a bidirectional model this is the same computation as the
  pixelbytes way, by construction: both columns measure it (the gap between them shows the noise).

Target tokens per second = tokens that take a loss in a step / the step's time; for the reference's way it
equals windows per second. Input tokens per second (real positions read by the backbone) are reported too.

Repeats: after 2 untimed warm-up steps of each way, --repeat rounds; each round times one step of each way on
the same batch, alternating which goes first, so both see the same machine state (the machine's 2 cores are
shared). A figure is the median over the rounds.

Threads: torch.set_num_threads(--threads), with GOMP_SPINCOUNT=1000 unless the environment sets it or
OMP_WAIT_POLICY: OpenMP threads that wait spin only briefly, then sleep. With libgomp's long default spin, on a
2-core machine where another process is busy, a 2-thread LSTM step took 20 s instead of 0.1 s (each of its many
small parallel regions waits for a descheduled thread); OMP_WAIT_POLICY=PASSIVE avoids that but costs up to 4x
on an idle machine; a short spin is close to the best of both.

On a GPU (--device cuda) the step is `train`'s on CUDA: fp16 autocast with a GradScaler (unscaled before
clipping), Mamba blocks on mamba_ssm's fused kernels where it imports; each step is timed between two
torch.cuda.synchronize() calls.

Prints a table and writes bench/out/train_speed.json (train_speed-cuda.json on a GPU).
"""
import argparse, json, os, platform, statistics, sys, tempfile, time
from pathlib import Path
# Before torch starts OpenMP (see Threads above): spin briefly, then sleep.
if 'OMP_WAIT_POLICY' not in os.environ: os.environ.setdefault('GOMP_SPINCOUNT', '1000')
import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure this checkout, whatever copy of pixelbytes is installed
from pixelbytes.data import build, load_built
from pixelbytes.models import PixelBytesConfig, PixelBytesModel, MODEL_NAMES
from pixelbytes.windows import Windows, IGNORE, epoch_sequences
from pixelbytes.train import _split_items, _optimizer

D_MODEL, D_STATE, N_LAYERS, SEQ = 81, 64, 2, 256
TRANSFORMER = dict(d_model=80, n_heads=4)  # 81 is odd: no head count divides it into even-sized heads
BACKBONES = ('lstm', 'transformer', 'mamba', 'bilstm', 'bimamba')

def config(name, tok, batch_size):
    backbone, bidi = MODEL_NAMES[name]
    size = TRANSFORMER if backbone == 'transformer' else dict(d_model=D_MODEL)
    return PixelBytesConfig(backbone=backbone, bidirectional=bidi, n_layers=N_LAYERS, d_state=D_STATE, seq_length=SEQ,
                            batch_size=batch_size, tokenizer=tok.to_dict(), **size)

def last_positions(tgt):
    "Index of the last position that takes a loss in each window `(batch, L)` of a causal batch."
    keep = (tgt != IGNORE).long()
    return (keep * torch.arange(tgt.shape[1], device=tgt.device)).argmax(1)

def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize()

def step(model, opt, scaler, ctx, tgt, way):
    "Seconds for one training step, and the number of targets it trained on."
    sync(ctx.device)
    start = time.perf_counter()
    with torch.autocast(ctx.device.type, dtype=torch.float16, enabled=scaler.is_enabled()):
        if not model.causal:  # one target per window, either way
            logits, t = model(ctx), tgt
        elif way == 'every':
            logits, t = model(ctx).reshape(-1, model.config.vocab_size), tgt.reshape(-1)
        else:  # the reference's way: backbone over the window, head and loss at its last real position only
            x = model.backbone(model.drop(model.embed(ctx)))
            last = last_positions(tgt)
            rows = torch.arange(len(x), device=x.device)
            logits, t = model.head(model.norm(x[rows, last])), tgt[rows, last]
    nll = F.cross_entropy(logits.float(), t, ignore_index=IGNORE, reduction='none')
    n = int((t != IGNORE).sum())
    scaler.scale(nll.sum() / n).backward()
    scaler.unscale_(opt)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(opt); scaler.update(); opt.zero_grad(set_to_none=True)
    sync(ctx.device)
    return time.perf_counter() - start, n

def measure(name, built, args):
    tok = built.tokenizer
    cfg = config(name, tok, args.batch_size)
    train_items, _ = _split_items(built.train['input_ids'], tok, cfg)
    wins = Windows(epoch_sequences(train_items, tok, cfg, 0), cfg)
    rng = np.random.default_rng(0)
    n_steps = 2 + args.repeat
    device = torch.device(args.device)
    batches = [tuple(t.to(device) for t in wins.batch(rng.choice(len(wins), args.batch_size, replace=False))) for _ in range(n_steps)]
    inputs = [int((c[..., 0] != 0).sum()) if cfg.causal else len(c) * SEQ for c, _ in batches]  # rough for bidi: full windows
    torch.manual_seed(0)
    model = PixelBytesModel(cfg).train().to(device)
    opt = _optimizer(model, cfg)
    scaler = torch.amp.GradScaler('cuda', enabled=device.type == 'cuda')
    times = {'every': [], 'one': []}
    targets = {'every': [], 'one': []}
    for k, (ctx, tgt) in enumerate(batches):
        order = ('every', 'one') if k % 2 == 0 else ('one', 'every')
        for way in order:
            t, n = step(model, opt, scaler, ctx, tgt, way)
            if k >= 2: times[way].append(t); targets[way].append(n)
    med = lambda xs: statistics.median(xs)
    rate = lambda way: med([n / t for n, t in zip(targets[way], times[way])])
    real = [int((tgt != IGNORE).sum()) if cfg.causal else len(tgt) for _, tgt in batches[2:]]
    return {'model': name, 'backbone': cfg.backbone, 'bidirectional': cfg.bidirectional, 'd_model': cfg.d_model,
            'n_heads': cfg.n_heads if cfg.backbone == 'transformer' else None, 'd_state': cfg.d_state if cfg.backbone == 'mamba' else None,
            'n_layers': cfg.n_layers, 'seq_length': cfg.seq_length, 'batch_size': cfg.batch_size,
            'parameters': sum(p.numel() for p in model.parameters()), 'train_windows': len(wins),
            'every_token': {'target_tokens_per_s': rate('every'), 'step_s': med(times['every']),
                            'targets_per_step': med(targets['every']), 'input_tokens_per_s': med([i / t for i, t in zip(inputs[2:], times['every'])])},
            'one_target': {'target_tokens_per_s': rate('one'), 'step_s': med(times['one']), 'targets_per_step': med(targets['one'])},
            'speedup_targets': rate('every') / rate('one'), 'step_times_s': times}

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('data', nargs='?', default=str(REPO.parent/'shared'/'data'/'pokemon-dev'))
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--repeat', type=int, default=7)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--backbones', default=','.join(BACKBONES))
    p.add_argument('--device', default='cpu', help='cpu or cuda')
    args = p.parse_args()
    cuda = torch.device(args.device).type == 'cuda'
    where = f"on {torch.cuda.get_device_name()} (fp16 autocast)" if cuda else f"on CPU ({args.threads} threads)"
    torch.set_num_threads(args.threads)
    names = [b.strip() for b in args.backbones.split(',') if b.strip()]
    for n in names:
        if n not in BACKBONES: p.error(f"unknown backbone {n!r}: choose from {', '.join(BACKBONES)}")
    with tempfile.TemporaryDirectory(prefix='train_speed-') as tmp:
        build(args.data, out=Path(tmp)/'data', progress=False)
        built = load_built(Path(tmp)/'data')
        rows = []
        for name in names:
            rows.append(measure(name, built, args))
            r = rows[-1]
            print(f"  {name}: {r['every_token']['target_tokens_per_s']:.0f} target tokens/s every token, "
                  f"{r['one_target']['target_tokens_per_s']:.1f} one target per window", flush=True)
    hdr = f"{'model':<12}{'size':<24}{'params':>9}{'step s':>8}{'targets/step':>13}{'target tok/s':>13}{'ref step s':>11}{'ref tok/s':>10}{'ratio':>8}"
    print(f"\nTraining throughput {where}, batch {args.batch_size} windows of {SEQ}, median of {args.repeat} steps")
    print(hdr); print('-' * len(hdr))
    for r in rows:
        size = f"d{r['d_model']}" + (f" h{r['n_heads']}" if r['n_heads'] else '') + (f" s{r['d_state']}" if r['d_state'] else '') + f" L{r['n_layers']}"
        e, o = r['every_token'], r['one_target']
        print(f"{r['model']:<12}{size:<24}{r['parameters']:>9,}{e['step_s']:>8.3f}{e['targets_per_step']:>13.0f}{e['target_tokens_per_s']:>13.0f}"
              f"{o['step_s']:>11.3f}{o['target_tokens_per_s']:>10.1f}{r['speedup_targets']:>7.0f}x")
    print("target tok/s: tokens that take a loss per second (pixelbytes: every real position of a causal window, one per window for a\n"
          "bidirectional model); ref: the same windows with one target (the last position) per window, as the reference trained.\n"
          "The transformer runs at d_model 80 with 4 heads: 81 is odd and its heads must have an even size (rotary positions).\n"
          "A bidirectional model predicts one target per window either way, so its two columns measure the same computation.")
    out = REPO/'bench'/'out'
    out.mkdir(parents=True, exist_ok=True)
    meta = {'device': where, 'torch': torch.__version__, 'python': platform.python_version(), 'machine': platform.machine(), 'threads': args.threads,
            'omp_wait_policy': os.environ.get('OMP_WAIT_POLICY'), 'gomp_spincount': os.environ.get('GOMP_SPINCOUNT'), 'load_average_1min': os.getloadavg()[0],
            'batch_size': args.batch_size, 'repeat': args.repeat, 'seq_length': SEQ, 'data': str(args.data),
            'note': 'transformer at d_model 80, 4 heads: d_model must be a multiple of 2 * n_heads and 81 is odd'}
    path = out/('train_speed-cuda.json' if cuda else 'train_speed.json')
    path.write_text(json.dumps({'meta': meta, 'results': rows}, indent=1))
    print(f"wrote {path}")

if __name__ == '__main__':
    main()
