"""How much a wider causal neighbourhood tells about a pixel of an unseen species, on pokemon-dev.

    python bench/pixel_context.py [DATA] [--sizes 1,2,3,5] [--colours-seen 3] [--fractions 0.25,0.5] [--epochs 8] [--threads 2]

A probe of the pixel-accuracy target of bench/quality.py, with no sequence model at all: for each size k, a small
MLP sees only a pixel's causal neighbourhood (the k rows above it, from column c-k to c+k, and the k pixels to its
left; `outside` where the image ends) and its row and column, and predicts its colour. With --colours-seen K, the
size-K probe also gets how often each palette colour was already used in the image (raster order), which covers
the long-range knowledge a sequence model can carry: "this sprite is green and has a black outline". With
--fractions, the size-2 probe is also trained on that share of the training sprites (drawn at random, seed 0): the
learning curve shows whether more sprites would help.

Data as in bench/quality.py: DATA (default `../shared/data/pokemon-dev`) built with `pixelbytes.data.build`
(<=25x25 NES-palette images, train/test split by item 444/49, seed 0). Each probe trains on the images of the
training items minus `train`'s own 10% validation split (seed 0), mirrored left-right too (as `train` augments),
keeps the epoch with the fewest validation bits, and is scored there on every pixel of the 49 test species.

If bench/out/quality.json exists, its count model and learned backbones are printed beside the probes: a sequence
model that reaches what the size-1 probe reaches (the same four neighbours the models' input holds) gains nothing
from the rest of the sequence; a wide probe that stays far below 75% says the 444 training sprites do not hold
enough about unseen species to predict 75% of their pixels from anything local.

Writes bench/out/pixel_context.json and bench/out/pixel_context.png (test accuracy against k). A few minutes per probe.
"""
import argparse, json, os, platform, shutil, sys, tempfile, time
from pathlib import Path
if 'OMP_WAIT_POLICY' not in os.environ: os.environ.setdefault('GOMP_SPINCOUNT', '1000')  # see bench/quality.py, Threads
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from pixelbytes.data import build, load_built
from pixelbytes.models import PixelBytesConfig, MAX_POSITION
from pixelbytes.windows import item_segments, mirror as train_mirror
from pixelbytes.train import _split_items
from quality import TARGET_PIXEL_ACC

def images(items) -> list:
    "The palette-index image of every item (its segments)."
    return [next(s for s in segs if not isinstance(s, str)) for segs in items]

def neighbourhoods(img: np.ndarray, k: int, n_colours: int, seen: bool) -> tuple:
    "For every pixel of `img` in raster order: (its k-neighbourhood, row and column, colours used before it, its colour)."
    h, w = img.shape
    outside = n_colours
    pad = np.full((h + k, w + 2 * k), outside, np.int64)
    pad[k:, k:k + w] = img
    r, c = np.divmod(np.arange(h * w), w)
    cols = c[:, None] + np.arange(2 * k + 1)                                   # columns c-k..c+k in padded coordinates
    above = [pad[(r + k - dr)[:, None], cols] for dr in range(k, 0, -1)]       # (h*w, 2k+1) per row above
    left = pad[(r + k)[:, None], c[:, None] + np.arange(k)]                     # (h*w, k): columns c-k..c-1
    x = np.concatenate(above + [left], 1)
    pos = np.stack([np.minimum(r + 1, MAX_POSITION), np.minimum(c + 1, MAX_POSITION)], 1)
    flat = img.reshape(-1).astype(np.int64)
    hist = np.zeros((h * w, n_colours if seen else 0), np.float32)
    if seen:
        onehot = np.eye(n_colours, dtype=np.float32)[flat]
        hist = np.cumsum(onehot, 0) - onehot                                     # colours strictly before each pixel
    return x, pos, hist, flat

def tensors(imgs, k, n_colours, seen, mirror=False):
    "Neighbourhood tensors of every pixel of `imgs` (and of their mirror images)."
    if mirror: imgs = imgs + train_mirror(imgs)
    parts = [neighbourhoods(i, k, n_colours, seen) for i in imgs]
    return [torch.from_numpy(np.concatenate([p[j] for p in parts])) for j in range(4)]

class Probe(nn.Module):
    "An MLP over embedded neighbours, row and column (and optionally the colours seen so far)."
    def __init__(self, n_neighbours, n_colours, seen, d=32, hidden=512, dropout=0.3):
        super().__init__()
        self.colour, self.pos = nn.Embedding(n_colours + 1, d), nn.Embedding(MAX_POSITION + 1, d)
        width = (n_neighbours + 2) * d + (n_colours if seen else 0)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, n_colours))

    def forward(self, x, pos, hist):
        return self.mlp(torch.cat([self.colour(x).flatten(1), self.pos(pos).flatten(1), torch.log1p(hist)], 1))

@torch.no_grad()
def scores(model, data) -> tuple:
    "(bits per pixel, accuracy) of `model` on `data`."
    model.eval()
    x, pos, hist, y = data
    logits = torch.cat([model(x[i:i + 8192], pos[i:i + 8192], hist[i:i + 8192]) for i in range(0, len(y), 8192)])
    return F.cross_entropy(logits, y).item() / np.log(2), (logits.argmax(1) == y).float().mean().item()

def probe(fit, val, test, k, n_colours, seen, epochs, seed=0) -> dict:
    "Train the size-`k` probe on the images `fit`, pick its epoch on `val`, score it on `test`."
    start = time.time()
    torch.manual_seed(seed)
    tr = tensors(fit, k, n_colours, seen, mirror=True)
    va, te = tensors(val, k, n_colours, seen), tensors(test, k, n_colours, seen)
    model = Probe(tr[0].shape[1], n_colours, seen)
    opt = torch.optim.AdamW(model.parameters(), 2e-3, weight_decay=0.1)
    best = None
    for epoch in range(epochs):
        model.train()
        for idx in torch.randperm(len(tr[3])).split(512):
            loss = F.cross_entropy(model(tr[0][idx], tr[1][idx], tr[2][idx]), tr[3][idx])
            opt.zero_grad(); loss.backward(); opt.step()
        (vb, vacc), (tb, tacc) = scores(model, va), scores(model, te)
        if best is None or vb < best['val_bits']:
            best = {'epoch': epoch + 1, 'val_bits': vb, 'val_acc': vacc, 'test_bits': tb, 'test_acc': tacc}
    return {'k': k, 'colours_seen': seen, 'neighbours': tr[0].shape[1], 'train_sprites': len(fit), 'train_pixels': len(tr[3]), 'test_pixels': len(te[3]),
            **best, 'seconds': round(time.time() - start, 1)}

def figure(rows, curve, quality, path):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2 if curve else 1, figsize=(11 if curve else 6, 3.6), squeeze=False, sharey=True)
    ax = axes[0, 0]
    plain = [r for r in rows if not r['colours_seen']]
    ax.plot([r['k'] for r in plain], [r['test_acc'] for r in plain], 'o-', label='neighbourhood probe')
    for r in rows:
        if r['colours_seen']: ax.plot(r['k'], r['test_acc'], 's', color='C1', label='probe + colours seen so far')
    if quality:
        ax.axhline(quality['counts']['pixel (left, up)']['acc'], color='grey', ls='--', label='count model (left, up)')
        best = max(quality['results'], key=lambda r: r['test']['pixel_acc'])
        ax.axhline(best['test']['pixel_acc'], color='C2', ls='-.', label=f"best sequence model ({best['model']})")
    ax.axhline(TARGET_PIXEL_ACC, color='red', ls=':', label='target')
    ax.set_xlabel('neighbourhood size k (k rows above, 2k+1 wide; k pixels left)'); ax.set_ylabel('test pixel accuracy')
    ax.set_xticks(sorted({r['k'] for r in rows}))
    ax.set_title('pokemon-dev test split (unseen species)', fontsize=10); ax.legend(fontsize=7)
    if curve:
        ax = axes[0, 1]
        ax.plot([r['train_sprites'] for r in curve], [r['test_acc'] for r in curve], 'o-', color='C3')
        for r in curve: ax.annotate(f"{r['test_acc']:.1%}", (r['train_sprites'], r['test_acc']), textcoords='offset points', xytext=(0, 6), ha='center', fontsize=8)
        ax.axhline(TARGET_PIXEL_ACC, color='red', ls=':')
        ax.set_xscale('log'); ax.minorticks_off(); ax.set_xticks([r['train_sprites'] for r in curve], [str(r['train_sprites']) for r in curve])
        ax.set_xlabel('training sprites (log scale)'); ax.set_ylabel('test pixel accuracy')
        ax.set_title(f"size-{curve[0]['k']} probe: learning curve", fontsize=10)
    fig.tight_layout(); fig.savefig(path, dpi=90); plt.close(fig)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('data', nargs='?', default=str(REPO.parent/'shared'/'data'/'pokemon-dev'))
    p.add_argument('--sizes', default='1,2,3,5', help="neighbourhood sizes k ('' for none)")
    p.add_argument('--colours-seen', type=int, default=3, help='also probe this size with the colours seen so far (0: no)')
    p.add_argument('--fractions', default='0.25,0.5', help='shares of the training sprites for the size-2 learning curve (empty: none)')
    p.add_argument('--epochs', type=int, default=8)
    p.add_argument('--threads', type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    out = REPO/'bench'/'out'; out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix='pixel-context-'))
    try:
        build(a.data, out=work/'data', progress=False, overwrite=True)
        built = load_built(work/'data')
        tok = built.tokenizer
        fit, val = map(images, _split_items(built.train['input_ids'], tok, PixelBytesConfig(tokenizer=tok.to_dict())))  # train's own split
        test = images(item_segments(built.test['input_ids'], tok))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    runs = [(int(k), False) for k in a.sizes.split(',') if k] + ([(a.colours_seen, True)] if a.colours_seen else [])
    rows = []
    for k, seen in runs:
        rows.append(probe(fit, val, test, k, tok.n_colours, seen, a.epochs))
        r = rows[-1]
        print(f"k={k}{' + colours seen' if seen else ''}: {r['neighbours']} neighbours, best epoch {r['epoch']}; "
              f"val {r['val_acc']:.1%}; test {r['test_acc']:.1%} right, {r['test_bits']:.3f} bits/pixel ({r['seconds']:.0f} s)", flush=True)
    curve = []
    shuffled = [fit[i] for i in np.random.default_rng(0).permutation(len(fit))]
    for f in sorted(float(x) for x in a.fractions.split(',') if x.strip()):
        curve.append(probe(shuffled[:max(1, round(f * len(fit)))], val, test, 2, tok.n_colours, False, a.epochs))
        r = curve[-1]
        print(f"k=2 on {r['train_sprites']} sprites: test {r['test_acc']:.1%} right, {r['test_bits']:.3f} bits/pixel ({r['seconds']:.0f} s)", flush=True)
    full = next((r for r in rows if r['k'] == 2 and not r['colours_seen']), None)
    if curve and full: curve.append(full)
    qpath = out/'quality.json'
    quality = json.loads(qpath.read_text()) if qpath.exists() else None
    if quality:
        c = quality['counts']['pixel (left, up)']
        print(f"\nfrom {qpath.relative_to(REPO)}: count model (left, up) {c['acc']:.1%} right, {c['bits']:.3f} bits/pixel")
        for r in quality['results']: print(f"  {r['model']}: {r['test']['pixel_acc']:.1%} right, {r['test']['pixel_bits']:.3f} bits/pixel")
    print(f"target: {TARGET_PIXEL_ACC:.0%}")
    meta = {'torch': torch.__version__, 'python': platform.python_version(), 'threads': a.threads, 'epochs': a.epochs, 'data': str(a.data),
            'split': {'fit': len(fit), 'val': len(val), 'test': len(test)}}
    (out/'pixel_context.json').write_text(json.dumps({'meta': meta, 'probes': rows, 'learning_curve': curve}, indent=1))
    figure(rows, curve, quality, out/'pixel_context.png')
    print(f"wrote {out/'pixel_context.json'} and {out/'pixel_context.png'}")

if __name__ == '__main__':
    main()
