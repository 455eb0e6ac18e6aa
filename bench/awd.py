"""Does the AWD-LSTM's regularisation score unseen captions better? bench/quality.py's LSTM recipe against variants
with the dropouts of Merity et al., "Regularizing and Optimizing LSTM Language Models" (2017), on pokemon-dev.

    python bench/awd.py [DATA] --variant base|locked|weightdrop|embeddrop [--epochs 16] [--d-model 256] [--threads 1] [--keep DIR]
    python bench/awd.py --show [DIR ...] [--epochs 16] [--d-model 256]
    python bench/awd.py --score DIR

One variant per process (it patches the LSTM in place), so that several train at once on a machine's cores; each
writes bench/out/awd-VARIANT.json, then the table of every variant there trained for as many epochs at the same width
is printed, with their validation curves: the loss and the bits per caption byte at every evaluation, and the
training bits per caption byte (under dropout), side by side, and as a figure, bench/out/awd-curves.png. A run whose
caption loss turns up shows there. --keep DIR keeps a run's data and checkpoints in DIR; --show DIR prints the curves
of the runs going on in those folders (from the metrics.csv train rewrites at each evaluation), beside the finished
ones, without training anything; --score DIR scores such a run's best checkpoint so far as a finished run's, into
bench/out/awd-VARIANT.json, and the table says it is unfinished and how many epochs it reached.
- base: the recipe as it is: dropout (0.4) on every embedding element at every position, and nn.LSTM's dropout
  between its layers, a fresh mask at every time step;
- locked: variational dropout in their place, one mask per sequence, the same at every time step, on the LSTM's
  inputs (the embeddings), between its layers and on its outputs (which the recipe leaves undropped), at the
  recipe's rate; the layers are one nn.LSTM each;
- weightdrop: the recipe, and DropConnect on every layer's hidden-to-hidden weights (--weight-drop 0.3 of them zeroed,
  one mask per batch), through torch.func.functional_call so that nn.LSTM's fused kernel still runs;
- embeddrop: the recipe, and whole rows of the token embedding dropped (--embed-drop 0.1 of the vocabulary, one mask
  per batch, the rest scaled up): a token missing wherever it stands in a batch, as a neighbour or the previous token.
All of them are off in eval mode, so that validation, checkpoints and scoring are as the recipe's.

Training: the recipe of bench/quality.py for 'lstm', a cosine schedule over --epochs (deterministic: the same seed
trains to the same weights whatever the machine's load; the variants draw their masks from the same generator, so
their batches' dropout differs from the first step on). Scoring: every token of the 49 test species, as
bench/quality.py scores them (no caption gain), with each run's checkpoint of the lowest validation loss.
"""
import argparse, csv, json, math, platform, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality as q  # sets the OpenMP spin before torch starts (see its Threads)
import torch, torch.nn as nn, torch.nn.functional as F
from torch.func import functional_call
import pixelbytes.models as M
import pixelbytes.train as T
from pixelbytes.data import load_built

VARIANTS = ('base', 'locked', 'weightdrop', 'embeddrop')

def locked_dropout(x, p: float, training: bool):
    "`x` `(batch, time, d)` with one dropout mask per sequence, the same at every time step."
    if not training or p == 0: return x
    return x * x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - p) / (1 - p)

class LockedLSTM(M.LSTMBackbone):
    "The LSTM with variational dropout on its inputs, between its layers and on its outputs; one nn.LSTM per layer."
    def __init__(self, cfg):
        super().__init__(cfg)
        self.p = cfg.dropout
        self.rnn = nn.ModuleList(nn.LSTM(cfg.d_model, cfg.d_model, batch_first=True) for _ in range(cfg.n_layers))

    def forward(self, x, return_state=False):
        y, state = self._rnn(locked_dropout(x, self.p, self.training))
        y = locked_dropout(y, self.p, self.training)
        return (y, state) if return_state else y

    def _rnn(self, x, state=None):
        hs, cs = [], []
        for i, layer in enumerate(self.rnn):
            if i: x = locked_dropout(x, self.p, self.training)
            x, (h, c) = layer(x, None if state is None else (state[0][i:i + 1].contiguous(), state[1][i:i + 1].contiguous()))
            hs.append(h); cs.append(c)
        return x, (torch.cat(hs), torch.cat(cs))

    def init_state(self, batch, device=None, dtype=None):
        w = self.rnn[0].weight_hh_l0
        z = torch.zeros(len(self.rnn), batch, w.shape[1], device=device or w.device, dtype=dtype or w.dtype)
        return (z, z.clone())

class WeightDropLSTM(M.LSTMBackbone):
    "The LSTM with DropConnect on its hidden-to-hidden weights while training."
    p = 0.3
    def _rnn(self, x, *state):
        if not self.training: return super()._rnn(x, *state)
        w = dict(self.rnn.named_parameters())
        for name in w:
            if name.startswith('weight_hh'): w[name] = F.dropout(w[name], self.p, True)
        return functional_call(self.rnn, w, (x, *state))

def embed_drop(p: float):
    "A PxByEmbedding.forward that drops whole rows of the token embedding while training."
    forward = M.PxByEmbedding.forward
    def dropping(self, ctx):
        if not self.training or getattr(self, '_dropped', False): return forward(self, ctx)
        w = self.token.weight
        self._dropped = True  # functional_call calls this forward again, with the dropped rows in place
        try: return functional_call(self, {'token.weight': w * w.new_empty(w.shape[0], 1).bernoulli_(1 - p) / (1 - p)}, (ctx,))
        finally: self._dropped = False
    return dropping

def patch(variant: str, weight_drop: float, embed_drop_p: float):
    "Make every LSTM model of this process the `variant`'s (train builds it, from_pretrained reloads the best)."
    if variant == 'locked':
        M.BACKBONES['lstm'] = LockedLSTM
        init = M.PixelBytesModel.__init__
        def no_step_dropout(self, config):  # the locked masks take the place of the per-element one on the embeddings
            init(self, config)
            self.drop = nn.Identity()
        M.PixelBytesModel.__init__ = no_step_dropout
    elif variant == 'weightdrop':
        WeightDropLSTM.p = weight_drop
        M.BACKBONES['lstm'] = WeightDropLSTM
    elif variant == 'embeddrop':
        M.PxByEmbedding.forward = embed_drop(embed_drop_p)

def scores(model, built, history) -> dict:
    "The figures of a run of `history` whose best checkpoint is `model`: its best and last evaluations, and the best's scores on the test split."
    best = min(history, key=lambda h: h['val_loss'])
    test = q.summarize(q.predict_every_token(model, list(built.test['input_ids'])), built.tokenizer)
    keep = ('pixel_bits', 'pixel_acc', 'text_bits', 'text_acc')
    last = history[-1]
    return {'best_step': best['step'], 'val_loss': best['val_loss'], 'val_text_bits': best['val_text_bits'],
            'last_train_text_bits': last['train_text_bits'], 'last_val_text_bits': last['val_text_bits'],
            **{k: test[k] for k in keep}, 'steps': last['step'], 'epochs': last['epoch'], 'history': history}

def run(built, data, work, cfg) -> dict:
    "Train `cfg` and score its best checkpoint on the test split."
    model, history = T.train(cfg, data, work/'models'/'awd', progress=False)
    return scores(model, built, history)

def score_run(folder: Path) -> dict:
    "The figures of the run going on (or stopped) in `folder`, a --keep folder, as `run` gives a finished run's, with its best checkpoint so far."
    meta, history = run_history(folder)
    if not history: raise SystemExit(f"--score: the run in {folder} has not been evaluated yet")
    patch(meta['variant'], meta['weight_drop'], meta['embed_drop'])  # locked's checkpoints hold its own layers
    while True:  # the history that goes with the checkpoint: train saves best/, then rewrites metrics.csv
        model = M.PixelBytesModel.from_pretrained(folder/'models'/'awd'/'best')
        meta, now = run_history(folder)
        if len(now) == len(history): break
        history = now
    return {'meta': meta, **scores(model, load_built(folder/'data'), history), 'seconds': history[-1]['minutes'] * 60, 'finished': False}

def table(out: Path, epochs: int, d_model: int):
    "Print every variant's figures in `out` of a run of `epochs` epochs at width `d_model` (of a run scored unfinished, the epochs it reached)."
    print(f"{'variant':<12}{'epochs':>8}{'best step':>10}{'val loss':>10}{'val bits/byte':>15}{'bits/pixel':>12}{'pixel acc':>11}"
          f"{'bits/byte':>11}{'byte acc':>10}{'minutes':>9}")
    for v in VARIANTS:
        f = out/f'awd-{v}.json'
        if not f.exists(): continue
        r = json.loads(f.read_text())
        if (r['meta']['recipe']['epochs'], r['meta']['recipe']['d_model']) != (epochs, d_model): continue
        print(f"{v:<12}{r['epochs']:>8g}{r['best_step']:>10}{r['val_loss']:>10.4f}{r['val_text_bits']:>15.3f}{r['pixel_bits']:>12.3f}"
              f"{r['pixel_acc']:>11.2%}{r['text_bits']:>11.3f}{r['text_acc']:>10.2%}{r['seconds'] / 60:>9.1f}"
              + ('' if r.get('finished', True) else '  (unfinished: its best checkpoint so far)'))

def run_history(folder: Path) -> tuple:
    "(meta, history so far) of a run going on in `folder` (a --keep folder), from the metrics.csv that train rewrites at each evaluation."
    meta = json.loads((folder/'awd-meta.json').read_text())
    path = folder/'models'/'awd'/'metrics.csv'
    with open(path, newline='') as f: rows = list(csv.DictReader(f)) if path.exists() else []
    return meta, [{k: int(v) if k == 'step' else float(v) if v else math.nan for k, v in r.items()} for r in rows]

def histories(out: Path, epochs: int, d_model: int, running=()) -> dict:
    "Each variant's validation history: of its finished run in `out` of `epochs` epochs at width `d_model`, else of its run going on in one of the `running` folders (newer than its scores so far)."
    found, finished = {}, set()
    for v in VARIANTS:
        f = out/f'awd-{v}.json'
        if not f.exists(): continue
        r = json.loads(f.read_text())
        if (r['meta']['recipe']['epochs'], r['meta']['recipe']['d_model']) != (epochs, d_model): continue
        found[v] = r['history']
        if r.get('finished', True): finished.add(v)
    for folder in map(Path, running):
        meta, history = run_history(folder)
        if (meta['recipe']['epochs'], meta['recipe']['d_model']) == (epochs, d_model) and meta['variant'] not in finished: found[meta['variant']] = history
    return {v: found[v] for v in VARIANTS if v in found}

def curves(runs: dict):
    "Print each variant's validation loss and bits per caption byte, and training's under dropout, at every evaluation; * marks its best."
    at = {v: {h['epoch']: h for h in hs} for v, hs in runs.items()}
    best = {v: min(hs, key=lambda h: h['val_loss'])['epoch'] for v, hs in runs.items() if hs}
    print(f"{'':>6}" + ''.join(f"{v:>34}" for v in runs))
    print(f"{'epoch':>6}" + f"{'val loss':>12}{'bits/byte':>11}{'(train)':>11}" * len(runs))
    for e in sorted({h['epoch'] for hs in runs.values() for h in hs}):
        cells = [f"{'*' if best[v] == e else '':>2}{h['val_loss']:>10.4f}{h['val_text_bits']:>11.3f}{h['train_text_bits']:>11.3f}"
                 if (h := at[v].get(e)) else ' ' * 34 for v in runs]
        print(f"{e:>6g}" + ''.join(cells))

def figure(runs: dict, path: Path):
    "Bits per caption byte (validation, and training's under dropout) and validation loss against epochs, one colour per variant."
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (text, loss) = plt.subplots(1, 2, figsize=(12, 4))
    for i, (v, hs) in enumerate(runs.items()):
        e = [h['epoch'] for h in hs]
        text.plot(e, [h['val_text_bits'] for h in hs], color=f'C{i}', label=f'{v} validation')
        text.plot(e, [h['train_text_bits'] for h in hs], color=f'C{i}', ls='--', label=f'{v} training')
        loss.plot(e, [h['val_loss'] for h in hs], color=f'C{i}', label=v)
    for ax, key in ((text, 'val_text_bits'), (loss, 'val_loss')):  # the first epochs' losses, far above, would flatten the rest
        low = min(h[key] for hs in runs.values() for h in hs)
        ax.set_ylim(low * 0.95, low * 1.25)
    text.set(title='bits per caption byte', xlabel='epoch'); text.legend(fontsize=7)
    loss.set(title='validation loss (every token, nats)', xlabel='epoch'); loss.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)

def show(out: Path, epochs: int, d_model: int, running=()):
    "Print the table of the finished runs and every variant's curves (going on in the `running` folders too); write their figure."
    table(out, epochs, d_model)
    runs = histories(out, epochs, d_model, running)
    if not runs: return
    print()
    curves(runs)
    figure(runs, out/'awd-curves.png')
    print(f"wrote {out/'awd-curves.png'}")

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('data', nargs='?', default=str(q.REPO.parent/'shared'/'data'/'pokemon-dev'))
    p.add_argument('--variant', choices=VARIANTS)
    p.add_argument('--epochs', type=int, default=16, help='cosine schedule over this many epochs')
    p.add_argument('--d-model', type=int, default=256, help="the LSTM's width (the recipe's: 256)")
    p.add_argument('--weight-drop', type=float, default=0.3, help="weightdrop: the share of hidden-to-hidden weights zeroed")
    p.add_argument('--embed-drop', type=float, default=0.1, help="embeddrop: the share of the embedding's rows dropped")
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--keep', help="folder for the built data and the run (its metrics.csv, best/ and last/), which stays, to watch the run as it trains (default: a temporary folder)")
    p.add_argument('--show', nargs='*', metavar='FOLDER', help="train nothing: print the table and the curves of the runs of --epochs at --d-model, "
                   "finished ones and those going on in the --keep FOLDERs named, and write bench/out/awd-curves.png")
    p.add_argument('--score', metavar='FOLDER', help="train nothing: score the best checkpoint so far of the run going on (or stopped) in the --keep FOLDER, "
                   "as a finished run's, into bench/out/awd-VARIANT.json, marked unfinished (a finished run of the variant replaces it)")
    args = p.parse_args()
    out = q.REPO/'bench'/'out'
    for f in ([args.score] if args.score else []) + (args.show or []):
        if not (Path(f)/'awd-meta.json').exists(): p.error(f"{f} is not the --keep folder of a run of this script (it has no awd-meta.json)")
    if args.score:
        torch.set_num_threads(args.threads)
        r = score_run(Path(args.score))
        out.mkdir(parents=True, exist_ok=True)
        (out/f"awd-{r['meta']['variant']}.json").write_text(json.dumps(r, indent=1, default=float))
        return show(out, r['meta']['recipe']['epochs'], r['meta']['recipe']['d_model'])
    if args.show is not None:
        return show(out, args.epochs, args.d_model, args.show)
    if args.variant is None: p.error("--variant: name the variant to train (or --show the runs)")
    for name in ('weight_drop', 'embed_drop'):
        if not 0 <= getattr(args, name) < 1: p.error(f"--{name.replace('_', '-')}: a share in [0, 1), not {getattr(args, name):g}")
    torch.set_num_threads(args.threads)
    patch(args.variant, args.weight_drop, args.embed_drop)
    cfg = {**q.recipe('lstm', None), 'epochs': args.epochs, 'd_model': args.d_model}
    meta = {'torch': torch.__version__, 'python': platform.python_version(), 'threads': args.threads, 'recipe': cfg,
            'variant': args.variant, 'weight_drop': args.weight_drop, 'embed_drop': args.embed_drop, 'data': args.data}
    out.mkdir(parents=True, exist_ok=True)
    with q.built_in_scratch(args.data, 'awd-', args.keep) as (built, data, work):
        (work/'awd-meta.json').write_text(json.dumps(meta, indent=1))  # for --show, while the run goes on
        start = time.time()
        r = run(built, data, work, cfg)
        r['seconds'] = time.time() - start
        print(f"{args.variant}: {r['steps']} steps, {r['epochs']:.1f} epochs in {r['seconds']:.0f} s on {args.threads} CPU threads")
        (out/f'awd-{args.variant}.json').write_text(json.dumps({'meta': meta, **r}, indent=1, default=float))
    show(out, args.epochs, args.d_model)

if __name__ == '__main__':
    main()
