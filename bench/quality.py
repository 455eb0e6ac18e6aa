"""Held-out quality of every backbone after a fixed CPU training budget, against two count models, on pokemon-dev.

    python bench/quality.py [DATA] [--minutes 10] [--backbones lstm,transformer,mamba,bilstm,bimamba] [--threads 2] [--update]

DATA: the pokemon-dev image folder (default `../shared/data/pokemon-dev`, relative to the repository root), built
with `pixelbytes.data.build` (pixelized to <=25x25 NES-palette images, caption->image token sequences, train/test
split by item: 444/49, seed 0) into a temporary folder (--keep DIR keeps the data and the trained models there).

Learned models: for each backbone, `pixelbytes.train.train` on the TRAIN split with the recipe below and
`max_minutes=--minutes` (the time includes train's own validation passes and checkpoints), torch.set_num_threads(
--threads); `train` holds out 10% of the training items (seed 0) as its validation split and returns the checkpoint
with the lowest validation loss. That model is then scored on the TEST split (49 species it never saw): every token of
every test item, in the dataset's stored order (caption, then image), `pixelbytes.train.predict` over
`pixelbytes.windows.Windows` of the model's own windows (causal: seq_length-token windows, each token scored once;
bidirectional: one window per token, stride 1), then `summarize`: bits per pixel token, bits per caption byte
(bits = nats / ln 2 of the model's probability of the true token over the whole vocabulary), and accuracy (argmax
= true token) per modality. Structure tokens (TAB, LF) are reported overall but belong to neither modality.

Count models, trained on the same training items and scored on the same test tokens:
- pixels: P(colour | left, up), where left is the previous token (the TAB/LF before a row's first pixel) and up the
  pixel above (NUL in the first row), interpolated with absolute discounting down to P(colour | left), P(colour)
  and a uniform distribution over the 55 colours;
- caption bytes: P(byte | previous 3 bytes of the caption), the caption start padded, interpolated the same way down
  to orders 2, 1, 0 and a uniform distribution over the vocabulary.
Each level's two smoothing parameters (concentration a, discount d) are tuned by coordinate search on the training
split's own validation part (the 10% of training items that `train` holds out, seed 0), never on the test split;
then the counts are refitted on all training items. Accuracy: argmax of the smoothed distribution. They only predict
their own modality (55 colours / bytes), which favours them slightly against a model that must also spend probability
on the other tokens.

Caption gain: the test items scored again with each image under the next test item's caption; the rise in bits per
pixel is what the model's drawing takes from its own caption (0: it ignores the caption).

Pixel breakdown: each test pixel falls in one category by where its true colour already is among its causal
neighbours: `left` (the token before it), else `up` (the pixel above), else `diagonal` (above-left or above-right),
else `new` (none of them). For each category: its share of the test pixels and the model's accuracy on it. It shows
where accuracy is lost: a model that only copied neighbours could at best be right on the pixels of the first three
categories.

Targets (the issue): every learned backbone beats both count models on its modality (bits and accuracy); the best
reaches >= 75% pixel accuracy and <= 2.2 bits per caption byte. bench/pixel_context.py probes how far the pixel
target is from what the training sprites can teach.

Threads: GOMP_SPINCOUNT=1000 unless the environment sets it or OMP_WAIT_POLICY (set before torch starts): OpenMP
threads that wait spin only briefly, then sleep. With libgomp's long default spin, on a 2-core machine whose other
core another process uses, each of an LSTM's many small parallel regions waits for a descheduled thread, and a
training step ran up to 100x slower; OMP_WAIT_POLICY=PASSIVE avoids that but costs up to 4x on an idle machine.

Prints a table, writes bench/out/quality.json and a figure, bench/out/quality.png (bars per backbone, the count
models and the targets as lines). About 5 x --minutes plus a few minutes of scoring.
"""
import argparse, contextlib, itertools, json, math, os, platform, shutil, sys, tempfile, time
from collections import defaultdict
from pathlib import Path
if 'OMP_WAIT_POLICY' not in os.environ: os.environ.setdefault('GOMP_SPINCOUNT', '1000')  # before torch starts OpenMP (see Threads)
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure this checkout, whatever copy of pixelbytes is installed
from pixelbytes.context import context, PREV, UP, UP_LEFT, UP_RIGHT
from pixelbytes.data import build, load_built
from pixelbytes.models import PixelBytesConfig, MODEL_NAMES
from pixelbytes.tokenizer import TEXT, PIXEL, LF
from pixelbytes.windows import Windows, item_segments
from pixelbytes.train import train, predict, _split_items
from pixelbytes.metrics import summarize

BACKBONES = ('lstm', 'transformer', 'mamba', 'bilstm', 'bimamba')
# The recipe (chosen on train's validation split, see the docstring): PixelBytesConfig fields on top of its
# defaults for every backbone, then per backbone. epochs is only a ceiling: max_minutes ends training.
RECIPE = dict(d_model=128, n_layers=2, seq_length=1024, batch_size=16, learning_rate=3e-3, warmup_steps=100, weight_decay=0.1,
              min_lr_ratio=0.1, context='pxby', mix='linear', augment_mirror=True, augment_order=True, epochs=1000, patience=0)
PER_BACKBONE = {'lstm': dict(d_model=256, dropout=0.4),
                'transformer': dict(n_heads=4, dropout=0.1),
                'mamba': dict(d_state=8, expand=1, dropout=0.1),
                'bilstm': dict(seq_length=16, batch_size=256, dropout=0.1),
                'bimamba': dict(seq_length=8, batch_size=256, d_state=8, expand=1, dropout=0.1)}
TARGET_PIXEL_ACC, TARGET_TEXT_BITS = 0.75, 2.2

@contextlib.contextmanager
def built_in_scratch(data, prefix: str, keep=None):
    "`data` built as every benchmark builds it, in a scratch folder (`keep`, when given, which stays): yields (the `Built`, its folder, the scratch folder)."
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    try:
        build(data, out=work/'data', progress=False, overwrite=True)
        yield load_built(work/'data'), work/'data', work
    finally:
        if not keep: shutil.rmtree(work, ignore_errors=True)

def recipe(name: str, minutes: float) -> dict:
    "The PixelBytesConfig fields the benchmark trains backbone `name` with."
    backbone, bidi = MODEL_NAMES[name]
    return {**RECIPE, 'backbone': backbone, 'bidirectional': bidi, **PER_BACKBONE[name], 'max_minutes': minutes}

# ---- count models -------------------------------------------------------------------------------------------------
class CountModel:
    """Counts of a symbol after contexts of increasing specificity (level 0 = no context), interpolated with absolute
    discounting: P_k(x | c_k) = (max(n(c_k, x) - d_k, 0) + (a_k + d_k T(c_k)) P_{k-1}(x | c_{k-1})) / (n(c_k) + a_k),
    T(c_k) = number of distinct symbols seen after c_k, P_{-1} uniform over `n_symbols`; an unseen context keeps P_{k-1}."""
    def __init__(self, n_symbols: int, n_levels: int):
        self.V, self.K, self.params = n_symbols, n_levels, [(1.0, 0.5)] * n_levels

    def fit(self, contexts, targets):
        counts = [defaultdict(lambda: np.zeros(self.V)) for _ in range(self.K)]
        for ctx, x in zip(contexts, targets):
            for k in range(self.K): counts[k][ctx[k]][x] += 1
        self.table = [{c: (v, v.sum(), (v > 0).sum()) for c, v in level.items()} for level in counts]
        return self

    def dist(self, ctx) -> np.ndarray:
        p = np.full(self.V, 1.0 / self.V)
        for k in range(self.K):
            e = self.table[k].get(ctx[k])
            if e is None: continue
            (v, n, T), (a, d) = e, self.params[k]
            p = (np.maximum(v - d, 0) + (a + d * T) * p) / (n + a)
        return p

    def score(self, contexts, targets):
        "(bits, correct) of every event."
        cache, bits, ok = {}, np.empty(len(targets)), np.empty(len(targets), bool)
        for i, (ctx, x) in enumerate(zip(contexts, targets)):
            p = cache.get(ctx)
            if p is None: p = cache[ctx] = self.dist(ctx)
            bits[i], ok[i] = -math.log2(p[x]), np.argmax(p) == x
        return bits, ok

    def tune(self, contexts, targets, grid_a=(0.1, 0.3, 1, 3, 10, 30, 100), grid_d=(0, 0.25, 0.5, 0.75, 0.9), rounds=2):
        "Coordinate search of each level's (a, d) for the fewest bits on (contexts, targets); returns those bits."
        best = self.score(contexts, targets)[0].mean()
        for _ in range(rounds):
            for k in range(self.K):
                for ad in itertools.product(grid_a, grid_d):
                    old, self.params[k] = self.params[k], ad
                    b = self.score(contexts, targets)[0].mean()
                    if b < best - 1e-12: best = b
                    else: self.params[k] = old
        return best

def pixel_events(seqs, n_bytes):
    "(contexts, colours) of every pixel; contexts: (), (left,), (left, up) with left = the previous token."
    ctxs, colours = [], []
    for s in seqs:
        s = np.asarray(s, np.int64); c = context(s, n_bytes)
        for t in np.flatnonzero(s >= n_bytes):
            left, up = int(c[t, PREV]), int(c[t, UP])
            ctxs.append(((), (left,), (left, up))); colours.append(int(s[t]) - n_bytes)
    return ctxs, colours

def byte_events(seqs, tok, order=3):
    "(contexts, token ids) of every caption byte; contexts: the previous 0..order bytes of its segment (0-padded)."
    ctxs, ids = [], []
    for s in seqs:
        s = np.asarray(s, np.int64); kinds, start = tok.kinds(s), 0
        for t in range(len(s)):
            if t and s[t - 1] == LF: start = t
            if kinds[t] != TEXT: continue
            h = tuple(int(x) for x in s[max(start, t - order):t])
            h = (0,) * (order - len(h)) + h
            ctxs.append(tuple(h[order - k:] if k else () for k in range(order + 1))); ids.append(int(s[t]))
    return ctxs, ids

BREAKDOWN = ('left', 'up', 'diagonal', 'new')

def breakdown(right, seqs, tok) -> dict:
    "Share of the pixels of `seqs` and accuracy in each neighbourhood category (see the docstring); `right`: one bool per pixel, in order."
    ids = np.concatenate([np.asarray(s, np.int64) for s in seqs])
    ctx = np.concatenate([context(np.asarray(s, np.int64), tok.n_bytes) for s in seqs])
    pix = tok.kinds(ids) == PIXEL
    t, c, right = ids[pix], ctx[pix], np.asarray(right, bool)
    left, up, diag = t == c[:, PREV], t == c[:, UP], (t == c[:, UP_LEFT]) | (t == c[:, UP_RIGHT])
    cats = {'left': left, 'up': up & ~left, 'diagonal': diag & ~up & ~left, 'new': ~(left | up | diag)}
    return {f'{k}_share': float(m.mean()) for k, m in cats.items()} | \
           {f'{k}_acc': float(right[m].mean()) if m.any() else math.nan for k, m in cats.items()}

def count_models(built) -> dict:
    "Test figures of the two count models, smoothing tuned on the training split's validation part."
    tok = built.tokenizer
    fit_items, val_items = _split_items(built.train['input_ids'], tok, PixelBytesConfig(tokenizer=tok.to_dict()))  # train's own split (seed 0, 10%)
    fit, val = [tok.encode(s) for s in fit_items], [tok.encode(s) for s in val_items]
    full, test = [np.asarray(x) for x in built.train['input_ids']], [np.asarray(x) for x in built.test['input_ids']]
    out = {}
    for name, events, V, K in (('pixel (left, up)', lambda s: pixel_events(s, tok.n_bytes), tok.n_colours, 3),
                               ('byte order-3', lambda s: byte_events(s, tok), tok.vocab_size, 4)):
        m = CountModel(V, K).fit(*events(fit))
        val_bits = m.tune(*events(val))
        val_acc = m.score(*events(val))[1].mean()
        params = list(m.params)
        m = CountModel(V, K).fit(*events(full)); m.params = params
        bits, ok = m.score(*events(test))
        out[name] = {'modality': 'pixel' if name.startswith('pixel') else 'text', 'bits': float(bits.mean()), 'acc': float(ok.mean()),
                     'tokens': len(bits), 'val_bits': float(val_bits), 'val_acc': float(val_acc), 'smoothing_a_d': params}
        if name.startswith('pixel'): out[name]['pixel_breakdown'] = breakdown(ok, test, tok)
    return out

# ---- learned models -----------------------------------------------------------------------------------------------
def predict_every_token(model, seqs) -> dict:
    "predict() of `model` over every token of the token sequences `seqs`, each scored once, in order."
    return predict(model, Windows([np.asarray(x, np.int64) for x in seqs], model.config, every_token=True), batch_size=64)

def score(model, seqs, tok) -> dict:
    "summarize() of `model` over every token of the token sequences `seqs`."
    return summarize(predict_every_token(model, seqs), tok)

def pixel_breakdown(pred, seqs, tok) -> dict:
    "`breakdown` of a learned model's predictions (`predict_every_token` of `seqs`)."
    ids = np.concatenate([np.asarray(s, np.int64) for s in seqs])
    if not np.array_equal(ids, pred['targets']): raise ValueError("predict() no longer scores every token once, in order")
    pix = tok.kinds(ids) == PIXEL
    return breakdown((pred['preds'] == ids)[pix], seqs, tok)

def score_test(model, built) -> dict:
    """summarize() of `model` over every token of the test items, in their stored order (caption, then image), plus
    `caption_gain_bits`: bits per pixel with each image under the NEXT test item's caption minus with its own, i.e.
    how much a model's drawing follows its caption (0 for a model that ignores it)."""
    tok = built.tokenizer
    seqs = list(built.test['input_ids'])
    pred = predict_every_token(model, seqs)
    test = summarize(pred, tok) | {'pixel_breakdown': pixel_breakdown(pred, seqs, tok)}
    items = item_segments(built.test['input_ids'], tok)
    swapped = [tok.encode([items[(i + 1) % len(items)][0], segs[1]]) for i, segs in enumerate(items)]
    return test | {'caption_gain_bits': score(model, swapped, tok)['pixel_bits'] - test['pixel_bits']}

def learned(name, built, data, work, minutes, overrides=None, label=None) -> dict:
    "Train backbone `name` with the recipe (and `overrides` of its fields) into work/models/`label`, then score it."
    cfg = {**recipe(name, minutes), **(overrides or {})}
    out = work/'models'/(label or name)
    shutil.rmtree(out, ignore_errors=True)
    start = time.time()
    model, history = train(cfg, data, out, progress=False)
    train_s = time.time() - start
    start = time.time()
    test = score_test(model, built)
    best = min(history, key=lambda h: h['val_loss'])
    keep = ('bits', 'acc', 'pixel_bits', 'pixel_acc', 'text_bits', 'text_acc', 'structure_acc')
    return {'model': name, 'config': {k: v for k, v in model.config.to_dict().items() if k != 'tokenizer'}, 'recipe': cfg,
            'parameters': sum(p.numel() for p in model.parameters()), 'train_seconds': round(train_s, 1),
            'score_seconds': round(time.time() - start, 1), 'steps': history[-1]['step'], 'epochs': history[-1]['epoch'],
            'best_step': best['step'], 'val': {k: best[f'val_{k}'] for k in keep},
            'test': {k: test[k] for k in keep + ('caption_gain_bits', 'pixel_breakdown')} | {'pixel_tokens': test['pixel_tokens'], 'text_tokens': test['text_tokens']},
            'history': history}

# ---- report -------------------------------------------------------------------------------------------------------
def verdicts(results, counts) -> dict:
    px, tx = counts['pixel (left, up)'], counts['byte order-3']
    beats = {r['model']: {'pixel_bits': r['test']['pixel_bits'] < px['bits'], 'pixel_acc': r['test']['pixel_acc'] > px['acc'],
                          'text_bits': r['test']['text_bits'] < tx['bits'], 'text_acc': r['test']['text_acc'] > tx['acc']}
             for r in results}
    best_px = max(results, key=lambda r: r['test']['pixel_acc']) if results else None
    best_tx = min(results, key=lambda r: r['test']['text_bits']) if results else None
    return {'every_backbone_beats_counts': all(all(b.values()) for b in beats.values()), 'beats_counts': beats,
            'best_pixel_acc': best_px and {'model': best_px['model'], 'value': best_px['test']['pixel_acc'],
                                           'target': TARGET_PIXEL_ACC, 'met': best_px['test']['pixel_acc'] >= TARGET_PIXEL_ACC},
            'best_text_bits': best_tx and {'model': best_tx['model'], 'value': best_tx['test']['text_bits'],
                                           'target': TARGET_TEXT_BITS, 'met': best_tx['test']['text_bits'] <= TARGET_TEXT_BITS}}

def table(results, counts, minutes, threads) -> str:
    lines = [f"Test split of pokemon-dev (49 unseen species); learned models trained {minutes:g} min each on {threads} CPU threads",
             f"{'model':<22}{'params':>9}{'epochs':>8}{'bits/pixel':>12}{'pixel acc':>11}{'bits/byte':>11}{'text acc':>10}{'caption gain':>14}"]
    lines.append('-' * len(lines[-1]))
    for r in results:
        t = r['test']
        lines.append(f"{r['model']:<22}{r['parameters']:>9,}{r['epochs']:>8.1f}{t['pixel_bits']:>12.3f}{t['pixel_acc']:>11.1%}"
                     f"{t['text_bits']:>11.3f}{t['text_acc']:>10.1%}{t['caption_gain_bits']:>14.3f}")
    px, tx = counts['pixel (left, up)'], counts['byte order-3']
    lines.append(f"{'count pixel (left, up)':<22}{'':>9}{'':>8}{px['bits']:>12.3f}{px['acc']:>11.1%}{'':>11}{'':>10}")
    lines.append(f"{'count byte order-3':<22}{'':>9}{'':>8}{'':>12}{'':>11}{tx['bits']:>11.3f}{tx['acc']:>10.1%}")
    lines.append(f"{'target (best model)':<22}{'':>9}{'':>8}{'':>12}{f'>={TARGET_PIXEL_ACC:.0%}':>11}{f'<={TARGET_TEXT_BITS}':>11}{'':>10}")
    broken = [r for r in results if 'pixel_breakdown' in r['test']]
    if broken:
        b0 = broken[0]['test']['pixel_breakdown']
        lines += ['', "Pixel accuracy by where the true colour is among the pixel's causal neighbours (share of test pixels):",
                  f"{'model':<22}" + ''.join(f"{k + ' (' + format(b0[k + '_share'], '.0%') + ')':>16}" for k in BREAKDOWN)]
        rows = [(r['model'], r['test']['pixel_breakdown']) for r in broken]
        if 'pixel_breakdown' in px: rows.append(('count pixel (left, up)', px['pixel_breakdown']))
        for name, b in rows: lines.append(f"{name:<22}" + ''.join(f"{b[k + '_acc']:>16.1%}" for k in BREAKDOWN))
    return '\n'.join(lines)

def figure(results, counts, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    px, tx = counts['pixel (left, up)'], counts['byte order-3']
    names = [r['model'] for r in results]
    panels = [('pixel_acc', 'pixel accuracy', px['acc'], TARGET_PIXEL_ACC, 'target >= 75%'),
              ('pixel_bits', 'bits per pixel', px['bits'], None, None),
              ('text_acc', 'caption byte accuracy', tx['acc'], None, None),
              ('text_bits', 'bits per caption byte', tx['bits'], TARGET_TEXT_BITS, 'target <= 2.2')]
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    for ax, (key, title, count, target, tlabel) in zip(axes, panels):
        vals = [r['test'][key] for r in results]
        bars = ax.bar(names, vals, color=[f'C{i}' for i in range(len(names))])
        ax.bar_label(bars, labels=[f'{v:.1%}' if key.endswith('acc') else f'{v:.2f}' for v in vals], fontsize=8)
        ax.axhline(count, color='grey', ls='--', label='count model')
        if target is not None: ax.axhline(target, color='red', ls=':', label=tlabel)
        lo = min(vals + [count] + ([target] if target else [])) if vals else count
        hi = max(vals + [count] + ([target] if target else [])) if vals else count
        ax.set_ylim(lo - 0.15 * (hi - lo + 1e-3) - (0.05 if key.endswith('acc') else 0.2), hi + 0.15 * (hi - lo + 1e-3))
        ax.set_title(title); ax.tick_params(axis='x', rotation=30); ax.legend(fontsize=7)
    fig.suptitle('pokemon-dev test split (unseen species)')
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('data', nargs='?', default=str(REPO.parent/'shared'/'data'/'pokemon-dev'))
    p.add_argument('--minutes', type=float, default=10, help='training budget per backbone')
    p.add_argument('--backbones', default=','.join(BACKBONES))
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--keep', help='folder for the built data and the trained models (default: a temporary folder)')
    p.add_argument('--update', action='store_true', help='keep the other backbones of an earlier bench/out/quality.json (rerun some, keep the rest)')
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    names = [b.strip() for b in args.backbones.split(',') if b.strip()]
    for n in names:
        if n not in BACKBONES: p.error(f"unknown backbone {n!r}: choose from {', '.join(BACKBONES)}")
    out = REPO/'bench'/'out'
    out.mkdir(parents=True, exist_ok=True)
    with built_in_scratch(args.data, 'quality-', args.keep) as (built, data, work):
        start = time.time()
        counts = count_models(built)
        for k, v in counts.items(): print(f"{k}: test {v['bits']:.3f} bits, {v['acc']:.1%} right (smoothing {v['smoothing_a_d']})", flush=True)
        print(f"count models: {time.time() - start:.0f} s", flush=True)
        earlier = json.loads((out/'quality.json').read_text())['results'] if args.update and (out/'quality.json').exists() else []
        kept = [r for r in earlier if r['model'] not in names]
        results = []
        for name in names:
            print(f"training {name} for {args.minutes:g} min: {recipe(name, args.minutes)}", flush=True)
            results.append(learned(name, built, data, work, args.minutes))
            r = results[-1]
            print(f"  {r['steps']} steps, {r['epochs']:.1f} epochs, best at step {r['best_step']}; test: {r['test']['pixel_bits']:.3f} bits/pixel, "
                  f"{r['test']['pixel_acc']:.1%} pixels, {r['test']['text_bits']:.3f} bits/byte, {r['test']['text_acc']:.1%} bytes "
                  f"(scored in {r['score_seconds']:.0f} s)", flush=True)
            meta = {'torch': torch.__version__, 'python': platform.python_version(), 'threads': args.threads, 'minutes': args.minutes,
                    'omp_wait_policy': os.environ.get('OMP_WAIT_POLICY'), 'gomp_spincount': os.environ.get('GOMP_SPINCOUNT'), 'data': str(args.data), 'splits': built.report['splits'],
                    'recipe': RECIPE, 'per_backbone': PER_BACKBONE}
            everything = sorted(kept + results, key=lambda r: BACKBONES.index(r['model']))
            report = {'meta': meta, 'counts': counts, 'results': everything, 'verdicts': verdicts(everything, counts)}
            (out/'quality.json').write_text(json.dumps(report, indent=1, default=float))  # after every backbone: a partial run keeps its figures
        results = everything
        print('\n' + table(results, counts, args.minutes, args.threads))
        v = report['verdicts']
        print(f"\nevery learned backbone beats both count models on its modality: {v['every_backbone_beats_counts']}")
        for m, b in v['beats_counts'].items():
            if not all(b.values()): print(f"  {m} does not beat the count model on: {', '.join(k for k, ok in b.items() if not ok)}")
        for k in ('best_pixel_acc', 'best_text_bits'):
            b = v[k]
            print(f"{k}: {b['model']} {b['value']:.3f} (target {b['target']}): {'met' if b['met'] else 'MISSED'}")
        figure(results, counts, out/'quality.png')
        print(f"wrote {out/'quality.json'} and {out/'quality.png'}")

if __name__ == '__main__':
    main()
