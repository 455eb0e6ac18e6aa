"""Peak memory and speed of drawing many samples: `generate(num=N)` in one batch (`batch_size=N`, as generate drew
them before it had `batch_size`) against batches of the default size, side by side, on CPU or a GPU.

    python bench/generate_memory.py [--models DIR] [--nums 16,128,512] [--sweep 16,32,64,128,256] [--device cuda]
    python bench/generate_memory.py --against ../old --nums 512 --sweep '' --repeats 3   # this checkout against another

Models: with --models DIR, the trained models DIR/lstm, DIR/transformer and DIR/mamba (a model folder, or a training
run's folder, whose best/ is read); without it, those backbones at their default size (d_model 128, 2 layers),
freshly initialised (seed 0). An untrained model's samples end at random lengths: its captions run long (about 250
bytes), its drawings short.

Modes: `prompt` (a caption; the model draws the image after it) and `caption` (a 16x16 image of stripes; the model
writes its caption), each at generate's default max_tokens, temperature 1, seed 0.

What is measured: each case runs in a process of its own, which loads the model and draws one sample of a few tokens
first (the warm-up), so that the figures are those of the call: `peak` is the process's peak resident memory
(ru_maxrss) after the call, `added` its rise during the call (what the samples, their states and the batch's work
took), and on a GPU `gpu peak` is torch.cuda.max_memory_allocated during the call. `ms/sample` is the call's wall
time over num. Every batch size must give the same samples: the script fails where two batch sizes of one case
drew different token ids (it compares a SHA-1 of them).

--sweep: the batch sizes also measured at the largest num, for choosing the default (the speed a batch size gives
against one batch of them all). torch.set_num_threads(--threads).

--against DIR: another checkout of PixelBytes (`git worktree add ../old HEAD~1`, say), whose generate is measured on
every case too, in the same run, beside this one's: a line per case gives both ms/sample and peak memory, and the
script fails where the two drew different samples. --repeats N: each case run N times (the checkouts in turn), its
fastest run kept: on a shared machine one run's time is noisy.

Prints the tables and writes bench/out/generate_memory.json (generate_memory-cuda.json on a GPU).
"""
import argparse, hashlib, json, os, platform, resource, subprocess, sys, time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure this checkout, whatever copy of pixelbytes is installed

BACKBONES, MODES = ('lstm', 'transformer', 'mamba'), ('prompt', 'caption')

def child(case: dict) -> dict:
    "One generate call, measured in this process."
    sys.path.insert(0, case['repo'])
    import numpy as np, torch
    from pixelbytes.models import PixelBytesConfig, PixelBytesModel
    from pixelbytes.generate import generate
    torch.set_num_threads(case['threads'])
    if case['models']:
        folder = Path(case['models'])/case['backbone']
        model = PixelBytesModel.from_pretrained(folder/'best' if (folder/'best').is_dir() else folder)
    else:
        torch.manual_seed(0)
        model = PixelBytesModel(PixelBytesConfig(backbone=case['backbone']))
    model = model.to(case['device']).eval()
    given = dict(prompt='a red circle above a blue square') if case['mode'] == 'prompt' else dict(image=np.arange(256).reshape(16, 16) // 16 % 55)
    generate(model, seed=1, max_tokens=5, **given)  # the warm-up: first calls allocate and load what every call uses
    cuda = torch.device(case['device']).type == 'cuda'
    if cuda: torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    gens = generate(model, num=case['num'], seed=0, batch_size=case['batch_size'], **given)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    new = [len(g.ids) - g.n_prompt for g in gens]
    return dict(case, peak_mb=peak / 1024, added_mb=(peak - before) / 1024, gpu_peak_mb=torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
                seconds=seconds, ms_per_sample=1000 * seconds / case['num'], new_tokens_mean=float(np.mean(new)), new_tokens_max=max(new),
                sha1=hashlib.sha1(json.dumps([g.ids for g in gens]).encode()).hexdigest())

def run(case: dict) -> dict:
    "`child(case)` in a process of its own: peak memory is a process's."
    out = subprocess.run([sys.executable, __file__, '--child', json.dumps(case)], capture_output=True, text=True,
                         env={**os.environ, 'OMP_NUM_THREADS': str(case['threads'])})
    if out.returncode: sys.exit(f"case {case} failed:\n{out.stderr}")
    return json.loads(out.stdout.splitlines()[-1])

def fastest(cases: list, repeats: int) -> list:
    "The fastest of `repeats` runs of each of `cases`, run in turn (so that a slow spell of the machine falls on all of them)."
    runs = [[run(c) for c in cases] for _ in range(repeats)]
    return [min(rs, key=lambda r: r['seconds']) for rs in zip(*runs)]

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--models', default=None, help='a folder holding lstm/, transformer/ and mamba/ (trained models); default: untrained ones')
    ap.add_argument('--nums', default='16,128,512')
    ap.add_argument('--sweep', default='16,32,64,128,256', help="batch sizes also measured at the largest num ('' for none)")
    ap.add_argument('--backbones', default=','.join(BACKBONES))
    ap.add_argument('--modes', default=','.join(MODES))
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--against', default=None, help='another checkout of PixelBytes, measured beside this one')
    ap.add_argument('--repeats', type=int, default=1, help='runs of each case, the fastest kept')
    ap.add_argument('--child', default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child: print(json.dumps(child(json.loads(a.child)))); return
    from pixelbytes.models import GENERATE_BATCH
    nums, sweep = [int(n) for n in a.nums.split(',')], [int(b) for b in a.sweep.split(',') if b]
    repos = [REPO] + ([Path(a.against).resolve()] if a.against else [])
    rows = []
    for backbone in a.backbones.split(','):
        for mode in a.modes.split(','):
            for num in nums:
                sizes = dict.fromkeys([num, min(GENERATE_BATCH, num)] + (sweep if num == max(nums) else []))
                cases = [dict(backbone=backbone, mode=mode, num=num, batch_size=b, models=a.models, device=a.device, threads=a.threads, repo=str(repo))
                         for b in sizes for repo in repos]
                measured = fastest(cases, a.repeats)
                if len({g['sha1'] for g in measured}) > 1:
                    sys.exit(f"{backbone} {mode} num={num}: the batch sizes or checkouts drew different samples: {[(g['batch_size'], g['repo'], g['sha1'][:10]) for g in measured]}")
                rows += measured
                got, other = measured[::len(repos)], measured[1::len(repos)]
                by_size = {g['batch_size']: g for g in got}
                one, default = by_size[num], by_size[min(GENERATE_BATCH, num)]
                gpu = f" | gpu peak {one['gpu_peak_mb']:.0f} -> {default['gpu_peak_mb']:.0f} MB" if one['gpu_peak_mb'] is not None else ''
                by_default = ('' if default is one else  # num within the default batch size: the one batch is the default's
                              f" | batch_size={default['batch_size']} peak {default['peak_mb']:.0f} MB (+{default['added_mb']:.0f}), {default['ms_per_sample']:.1f} ms/sample, "
                              f"{default['ms_per_sample'] / one['ms_per_sample']:.2f}x the time")
                print(f"{backbone:11s} {mode:7s} num {num:4d} (new tokens: mean {one['new_tokens_mean']:.0f}, max {one['new_tokens_max']}): "
                      f"one batch peak {one['peak_mb']:.0f} MB (+{one['added_mb']:.0f}), {one['ms_per_sample']:.1f} ms/sample{by_default}{gpu}", flush=True)
                for g in got[len({num, default['batch_size']}):]:
                    print(f"{'':21s} batch_size={g['batch_size']:4d}: peak {g['peak_mb']:.0f} MB (+{g['added_mb']:.0f}), {g['ms_per_sample']:.1f} ms/sample, "
                          f"{g['ms_per_sample'] / one['ms_per_sample']:.2f}x one batch's time", flush=True)
                for g, o in zip(got, other):
                    print(f"{'':21s} batch_size={g['batch_size']:4d} against {a.against}: {o['ms_per_sample']:.1f} -> {g['ms_per_sample']:.1f} ms/sample "
                          f"({g['ms_per_sample'] / o['ms_per_sample']:.2f}x the time), peak {o['peak_mb']:.0f} -> {g['peak_mb']:.0f} MB, the same samples", flush=True)
    out = REPO/'bench'/'out'/f"generate_memory{'-cuda' if a.device.startswith('cuda') else ''}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(dict(default_batch_size=GENERATE_BATCH, python=platform.python_version(), against=a.against, repeats=a.repeats, rows=rows), indent=1))
    print(f"wrote {out}")

if __name__ == '__main__': main()
