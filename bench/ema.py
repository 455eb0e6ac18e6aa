"""Does an average of the weights score unseen species better? bench/quality.py's LSTM recipe with exponential moving
averages (EMA, Polyak averaging) of its weights kept beside it, on pokemon-dev.

    python bench/ema.py [DATA] [--epochs 16 | --minutes M] [--decays 0.98,0.995,0.999] [--corrected] [--threads 1]

`train` has no such option: this script wraps its optimizer step and its validation. After every optimizer step each
average moves towards the weights, `avg += (1 - d) * (w - avg)`. The decay d warms up as min(d, (1 + t) / (10 + t))
at step t (TensorFlow's `ExponentialMovingAverage` with num_updates), so that the first weights do not linger; over a
few hundred steps that ramp is below every decay from 0.98 up, and those averages are the same. With --corrected, the
decay is d from the first step, the average starts at zero and is divided by 1 - d^t (Adam's bias correction): an
average over the last ~1 / (1 - d) steps, which the ramp never reaches in a short run. At every evaluation each average
is scored on `train`'s validation split as the raw weights are, and its checkpoint with the lowest validation loss is
kept. The raw trajectory is the same for all (the averages do not touch it), so they differ only by the averaging.

Training: the recipe of bench/quality.py for 'lstm', with a cosine schedule over --epochs (deterministic: the same
seed trains to the same weights, whatever the machine's load), or over --minutes as bench/quality.py trains (the
averages' validation passes then take their time out of the budget). Scoring: every token of the 49 test species,
as bench/quality.py scores them.

Prints a table and writes bench/out/ema.json.
"""
import argparse, copy, json, platform, shutil, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality as q  # sets the OpenMP spin before torch starts (see its Threads)
import torch
import pixelbytes.train as T

class Averages:
    "EMAs of a model's weights, one per decay, each with its best checkpoint by validation loss."
    def __init__(self, decays, corrected: bool):
        self.decays, self.corrected, self.step = decays, corrected, 0
        self.sums, self.best, self.history = {}, {d: (float('inf'), None, None) for d in decays}, {d: [] for d in decays}

    def update(self, model):
        "One optimizer step's move of every average towards `model`'s weights."
        self.step += 1
        ps = [p.detach() for p in model.parameters()]
        for d in self.decays:
            if d not in self.sums: self.sums[d] = [torch.zeros_like(p) for p in ps] if self.corrected else [p.clone() for p in ps]
            elif not self.corrected: torch._foreach_lerp_(self.sums[d], ps, 1 - min(d, self.step / (9 + self.step)))
            if self.corrected: torch._foreach_lerp_(self.sums[d], ps, 1 - d)

    def weights(self, d) -> list:
        return torch._foreach_div(self.sums[d], 1 - d ** self.step) if self.corrected else self.sums[d]

    def validate(self, scores, model, *args):
        "Score every average with `scores(model, *args)`, the weights put back after; keep each one's best."
        params = list(model.parameters())
        raw = [p.detach().clone() for p in params]
        for d in self.sums:
            w = self.weights(d)
            with torch.no_grad(): torch._foreach_copy_(params, w)
            row = scores(model, *args)
            self.history[d].append({'step': self.step, **{k: row[k] for k in ('val_loss', 'val_pixel_bits', 'val_text_bits')}})
            if row['val_loss'] < self.best[d][0]: self.best[d] = (row['val_loss'], self.step, [x.clone() for x in w])
        with torch.no_grad(): torch._foreach_copy_(params, raw)

def run(built, data, work, cfg, avg: Averages) -> dict:
    "Train the recipe `cfg` with `avg` kept beside it; the test figures of the raw best checkpoint and of each average's."
    step, scores = T._optimizer_step, T._scores
    def averaged_step(model, *a, **k):
        step(model, *a, **k)
        with torch.no_grad(): avg.update(model)
    def averaged_scores(model, *a):
        row = scores(model, *a)
        avg.validate(scores, model, *a)
        return row
    T._optimizer_step, T._scores = averaged_step, averaged_scores
    out = work/'models'/'ema'
    shutil.rmtree(out, ignore_errors=True)
    try: model, history = T.train(cfg, data, out, progress=False)
    finally: T._optimizer_step, T._scores = step, scores
    keep = ('pixel_bits', 'pixel_acc', 'text_bits', 'text_acc')
    best = min(history, key=lambda h: h['val_loss'])
    rows = [{'weights': 'raw', 'best_step': best['step'], 'val_loss': best['val_loss'], 'val_text_bits': best['val_text_bits'],
             **{k: q.score_test(model, built)[k] for k in keep}}]
    for d in avg.decays:
        loss, at, w = avg.best[d]
        m = copy.deepcopy(model)
        with torch.no_grad(): torch._foreach_copy_(list(m.parameters()), w)
        h = next(h for h in avg.history[d] if h['step'] == at)
        rows.append({'weights': f"ema {d:g}{' corrected' if avg.corrected else ''}", 'best_step': at, 'val_loss': loss,
                     'val_text_bits': h['val_text_bits'], **{k: q.score_test(m, built)[k] for k in keep}})
    return {'rows': rows, 'steps': history[-1]['step'], 'epochs': history[-1]['epoch'], 'history': history,
            'averages': {str(d): h for d, h in avg.history.items()}}

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('data', nargs='?', default=str(q.REPO.parent/'shared'/'data'/'pokemon-dev'))
    p.add_argument('--epochs', type=int, default=16, help='cosine schedule over this many epochs (ignored with --minutes)')
    p.add_argument('--minutes', type=float, help="train as bench/quality.py does, for this long")
    p.add_argument('--decays', default='0.98,0.995,0.999')
    p.add_argument('--corrected', action='store_true', help='the decay from the first step, bias-corrected, instead of warmed up')
    p.add_argument('--threads', type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    decays = [float(d) for d in args.decays.split(',')]
    for d in decays:
        if not 0 < d < 1: p.error(f"--decays: each decay is between 0 and 1, not {d:g}")
    cfg = q.recipe('lstm', args.minutes) if args.minutes else {**q.recipe('lstm', None), 'epochs': args.epochs}
    out = q.REPO/'bench'/'out'
    out.mkdir(parents=True, exist_ok=True)
    with q.built_in_scratch(args.data, 'ema-') as (built, data, work):
        start = time.time()
        r = run(built, data, work, cfg, Averages(decays, args.corrected))
        print(f"lstm recipe: {r['steps']} steps, {r['epochs']:.1f} epochs in {time.time() - start:.0f} s on {args.threads} CPU threads")
        print(f"{'weights':<22}{'best step':>10}{'val loss':>10}{'val bits/byte':>15}{'bits/pixel':>12}{'pixel acc':>11}{'bits/byte':>11}{'byte acc':>10}")
        for x in r['rows']:
            print(f"{x['weights']:<22}{x['best_step']:>10}{x['val_loss']:>10.4f}{x['val_text_bits']:>15.3f}{x['pixel_bits']:>12.3f}"
                  f"{x['pixel_acc']:>11.2%}{x['text_bits']:>11.3f}{x['text_acc']:>10.2%}")
        meta = {'torch': torch.__version__, 'python': platform.python_version(), 'threads': args.threads, 'recipe': cfg,
                'decays': decays, 'corrected': args.corrected, 'data': args.data}
        (out/'ema.json').write_text(json.dumps({'meta': meta, **r}, indent=1, default=float))
        print(f"wrote {out/'ema.json'}")

if __name__ == '__main__':
    main()
