"""Speed of `evaluate`'s two slowest generation metrics against the way they ran before, side by side, with the same scores:
`copy` drawing every image in one call (before: one call a shape of image, each a few samples drawn step by step), and
`captions` scoring every pair of captions from one array of n-gram counts an order (before: a Counter intersection a
pair, `_chrf_of`); then a whole `evaluate` of those two metrics each way, and of the default ones, which neither change
touches: the same time both ways, but for the machine's noise.

    python bench/evaluate_speed.py --model DIR --data DIR [--num 49] [--threads 1] [--repeats 3]

DIR: a trained model folder (`train`'s best/) and the dataset `build` wrote for it (pokemon-dev: its 49 test sprites,
of 37 sizes; the demo set's are all of one size, where `copy` gains nothing). Each way runs --repeats times, in turn,
its fastest run kept: on a shared machine one run's time is noisy. Prints a table and writes bench/out/evaluate_speed.json.
"""
import argparse, json, platform, sys, tempfile, time, warnings
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure this checkout, whatever copy of pixelbytes is installed
import pixelbytes.evaluate as E
from pixelbytes.evaluate import Evaluation, _chrf_of, _chrf_pairs, _copy  # this checkout's, before `before` swaps them

def timed(f):
    "(seconds, result) of `f()`."
    start = time.perf_counter()
    out = f()
    return time.perf_counter() - start, out

def copy_by_shape(ev, model, items, tok):
    "`_copy` as it ran before: one call a shape of image (a shape's prompts have one length and one room)."
    of_shape = {}
    for item in items: of_shape.setdefault(item[1].shape, []).append(item)
    right = perfect = 0
    for group in of_shape.values():
        part = Evaluation(); _copy(part, model, group, tok)
        right += round(part.value('copy', 'pixels') * part.rows[0]['n']); perfect += round(part.value('copy', 'perfect copies') * len(group))
    total = sum(px.size for _, px in items)
    ev.add('copy', 'pixels', right / max(1, total), total)
    ev.add('copy', 'perfect copies', perfect / max(1, len(items)), len(items))

def chrf_by_pair(hyps, refs, beta=2.0):
    "`_chrf_pairs` as it ran before: a Counter intersection for each pair and order."
    return [[_chrf_of(h, r, beta) for r in refs] for h in hyps]

@contextmanager
def before():
    "`evaluate` as it ran before these changes."
    now = E._copy, E._chrf_pairs
    E._copy, E._chrf_pairs = copy_by_shape, chrf_by_pair
    try: yield
    finally: E._copy, E._chrf_pairs = now

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--model', required=True, help="a trained model's folder")
    ap.add_argument('--data', required=True, help='the dataset folder it was trained on')
    ap.add_argument('--num', type=int, default=49, help='test items the generation metrics score')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--repeats', type=int, default=3, help='runs of each way, the fastest kept')
    a = ap.parse_args()
    import torch
    from pixelbytes.data import load_built
    from pixelbytes.evaluate import DEFAULT_METRICS, _caption_images, _char_ngrams, evaluate
    from pixelbytes.models import load_model
    torch.set_num_threads(a.threads)
    warnings.simplefilter('ignore')  # a model trained on other items than the split's, or a short run: not what is timed here
    model, built = load_model(a.model, 'cpu'), load_built(a.data)
    tok = model.tokenizer
    items = [(segs[0].text, segs[1].pixels) for segs in (tok.decode(s) for s in built['test']['input_ids'][:a.num])]
    written = [g.text or '' for g in _caption_images(model, items, 1.0, 0)]
    hyps, refs = [_char_ngrams(w) for w in written], [_char_ngrams(c) for c, _ in items]
    def copied(f):
        ev = Evaluation(); f(ev, model, items, tok)
        return [r['value'] for r in ev.rows]
    with tempfile.TemporaryDirectory() as tmp:
        scored = lambda metrics: lambda: evaluate(model, built, metrics=metrics, num=a.num, out=tmp, progress=False).rows
        def whole(metrics):
            def way():
                with before(): return scored(metrics)()
            return way, scored(metrics)
        cases = [('copy', lambda: copied(copy_by_shape), lambda: copied(_copy)),
                 ('captions: chrF of every pair', lambda: chrf_by_pair(hyps, refs), lambda: _chrf_pairs(hyps, refs)),
                 ('evaluate: copy, captions', *whole(['copy', 'captions'])),
                 ('evaluate: the default metrics', *whole(list(DEFAULT_METRICS)))]
        rows = []
        for name, old, new in cases:
            old(); new()  # the warm-up: first calls allocate and load what every call uses
            runs = [(timed(old), timed(new)) for _ in range(a.repeats)]
            (t_old, by_old), (t_new, by_new) = (min((r[k] for r in runs), key=lambda r: r[0]) for k in (0, 1))
            # rows hold NaN (intervals there are none of), which equals nothing: compared as JSON, where it is NaN on both sides
            same = json.dumps(by_old) == json.dumps(by_new)
            rows.append(dict(case=name, before_s=t_old, after_s=t_new, ratio=t_new / t_old, same_scores=same))
            print(f"{name:31s} before {t_old:7.3f} s, after {t_new:7.3f} s: {t_new / t_old:.2f}x the time ({t_old / t_new:.1f}x faster); "
                  f"scores {'the same' if same else 'DIFFER'}", flush=True)
    sizes = len({px.shape for _, px in items})
    print(f"{len(items)} test items of {sizes} image sizes, {model.config.backbone}, {a.threads} thread(s)")
    out = REPO/'bench'/'out'/'evaluate_speed.json'
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(dict(python=platform.python_version(), torch=torch.__version__, threads=a.threads, repeats=a.repeats,
                                   model=a.model, data=a.data, backbone=model.config.backbone, items=len(items), image_sizes=sizes, rows=rows), indent=1))
    print(f"wrote {out}")

if __name__ == '__main__': main()
