"""Speed of drawing for a list of prompts (captions, or images to caption) in one `generate` call, which draws them in
batches, against a loop of one call a prompt (how `generate` and `evaluate` drew them before), side by side.

    python bench/generate_lists.py [--models DIR] [--num 24] [--max-tokens 200] [--repeats 3] [--device cuda]

Models: with --models DIR, the trained models DIR/lstm, DIR/transformer and DIR/mamba (a model folder, or a training
run's folder, whose best/ is read); without it, those backbones at their default size, freshly initialised (seed 0),
whose samples end at random lengths.

Prompts: the first --num captions and images of the demo set (`demo_items`). Each prompt's sample is drawn from its
own seed, in both ways. A list's prompts of several lengths are read in step by a causal model, so a sample may differ
from the loop's where two tokens were all but tied: the script counts the samples that differ.

Each way runs --repeats times, in turn, its fastest run kept: on a shared machine one run's time is noisy.
torch.set_num_threads(--threads). Prints a table and writes bench/out/generate_lists.json (-cuda on a GPU).
"""
import argparse, json, platform, sys, time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure this checkout, whatever copy of pixelbytes is installed

def timed(f):
    "(seconds, result) of `f()`."
    start = time.perf_counter()
    out = f()
    return time.perf_counter() - start, out

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--models', default=None, help='a folder holding lstm/, transformer/ and mamba/ (trained models); default: untrained ones')
    ap.add_argument('--backbones', default='lstm,transformer,mamba')
    ap.add_argument('--num', type=int, default=24, help='prompts in the list')
    ap.add_argument('--max-tokens', type=int, default=200, help="new tokens at most, a sample (None: generate's default)")
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--repeats', type=int, default=3, help='runs of each way, the fastest kept')
    a = ap.parse_args()
    import torch
    from pixelbytes.demo import demo_items
    from pixelbytes.generate import generate
    from pixelbytes.models import PixelBytesConfig, PixelBytesModel, sample_seeds
    torch.set_num_threads(a.threads)
    items = demo_items(a.num, seed=1)
    captions, images = [d['caption'] for d in items], [d['image'] for d in items]
    seeds = sample_seeds(0, a.num)
    rows = []
    for backbone in a.backbones.split(','):
        if a.models:
            folder = Path(a.models)/backbone
            model = PixelBytesModel.from_pretrained(folder/'best' if (folder/'best').is_dir() else folder)
        else:
            torch.manual_seed(0)
            model = PixelBytesModel(PixelBytesConfig(backbone=backbone))
        model = model.to(a.device).eval()
        for mode, given in (('caption -> image', dict(prompt=captions)), ('image -> caption', dict(image=images))):
            (key, listed), = given.items()
            one_call = lambda: generate(model, **given, seed=seeds, max_tokens=a.max_tokens)
            loop = lambda: [generate(model, **{key: x}, seed=s, max_tokens=a.max_tokens)[0] for x, s in zip(listed, seeds)]
            one_call(); loop()  # the warm-up: first calls allocate and load what every call uses
            runs = [(timed(loop), timed(one_call)) for _ in range(a.repeats)]
            (t_loop, by_loop), (t_list, by_list) = min((r[0] for r in runs), key=lambda r: r[0]), min((r[1] for r in runs), key=lambda r: r[0])
            differ = sum(g.ids != h.ids for g, h in zip(by_list, by_loop))
            new = [len(g.ids) - g.n_prompt for g in by_list]
            row = dict(backbone=backbone, mode=mode, num=a.num, new_tokens_mean=sum(new) / len(new), new_tokens_max=max(new),
                       loop_ms_per_sample=1000 * t_loop / a.num, list_ms_per_sample=1000 * t_list / a.num, samples_differing=differ)
            rows.append(row)
            print(f"{backbone:11s} {mode:16s} {a.num} prompts (new tokens: mean {row['new_tokens_mean']:.0f}, max {row['new_tokens_max']}): "
                  f"one call a prompt {row['loop_ms_per_sample']:.1f} ms/sample, one call for the list {row['list_ms_per_sample']:.1f} ms/sample "
                  f"({t_list / t_loop:.2f}x the time); samples differing: {differ}", flush=True)
    out = REPO/'bench'/'out'/f"generate_lists{'-cuda' if a.device.startswith('cuda') else ''}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(dict(python=platform.python_version(), torch=torch.__version__, threads=a.threads, device=a.device,
                                   repeats=a.repeats, max_tokens=a.max_tokens, models=a.models, rows=rows), indent=1))
    print(f"wrote {out}")

if __name__ == '__main__': main()
