"""Training speed and peak memory of pixelbytes' pure-PyTorch Mamba against mambapy 1.2, on CPU or a GPU.

    python bench/mamba_speed.py [--repeat 5] [--threads 2] [--device cuda]

Needs mambapy, a dev dependency: `pip install mambapy==1.2.0`.

Model: mambapy's own two-layer `Mamba` (d_model 128, d_state 16, expand 2, d_conv 4; each layer is
x + mixer(RMSNorm(x))). The pixelbytes model is the same model with each layer's mixer replaced by
`pixelbytes.mamba.Mamba`, loaded strictly from that mixer's weights: both compute the same function
on the same weights (the script checks that the outputs agree) and differ only in the mixer's code.

Throughput: one training step is forward + backward of mean(y**2) on a (8, 1024, 128) batch, with
torch.set_num_threads(--threads). After one warm-up step each, --repeat timed steps of each model alternate
(pixelbytes, mambapy, pixelbytes, ...) so that both see the same machine state; tokens/s is
8 * 1024 / the median step time.

mambapy mode: mambapy trains with a parallel scan (pscan=True) or a sequential one (pscan=False).
Both are timed on a short sequence (length 128) and the faster is used. (At length 1024 pscan=False
is far slower still: about 160 s per step against 2.5 s on the 2-core machine this was written on.)

Peak memory: each model runs one training step in a fresh subprocess, and the peak is the
process's resident-set high-water mark after the step (VmHWM in /proc/self/status) minus its
resident set just before it (VmRSS, model and batch already built): the memory a training step adds
(activations kept for backward, temporaries, gradients) as the OS sees it. A fresh process per model
because the high-water mark only grows (and, unlike ru_maxrss, VmHWM starts anew at exec instead of
inheriting the parent's); no warm-up step there, because memory the allocator keeps after a step
would raise the baseline and hide part of the peak.

On a GPU (--device cuda): the same models and batch in float32 (TF32 off, so that the outputs can be
compared); a step is timed between two torch.cuda.synchronize() calls; mambapy's mode is its parallel scan
(pscan=True, what it is for); the peak is torch.cuda.max_memory_allocated during the step minus the memory
allocated before it, in this process. Where mamba_ssm imports, a third row runs pixelbytes' block on its fused
kernels (the same weights), next to the pure-PyTorch code (`use_fast_path=False`).

Prints a table and writes bench/out/mamba_speed.json (mamba_speed-cuda.json on a GPU). Exits with status 1
if the models' outputs disagree.
"""
import argparse, json, platform, statistics, subprocess, sys, time
from pathlib import Path
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure this checkout, whatever copy of pixelbytes is installed
try:
    from mambapy.mamba import Mamba as MambaPy, MambaConfig
except ImportError:
    sys.exit("mambapy is missing: pip install mambapy==1.2.0")
from pixelbytes.mamba import Mamba, HAS_MAMBA_SSM
BATCH, LENGTH, D_MODEL, D_STATE, EXPAND, D_CONV, LAYERS = 8, 1024, 128, 16, 2, 4, 2
PROBE_LENGTH = 128

def build(which, pscan=True, device="cpu"):
    "The benchmark model: mambapy's, or the same with pixelbytes' block as every layer's mixer (same weights; `fused`: on mamba_ssm's kernels)."
    torch.manual_seed(0)
    model = MambaPy(MambaConfig(d_model=D_MODEL, n_layers=LAYERS, d_state=D_STATE, expand_factor=EXPAND,
                                d_conv=D_CONV, pscan=pscan))
    if which != "mambapy":
        for layer in model.layers:
            mixer = Mamba(D_MODEL, d_state=D_STATE, d_conv=D_CONV, expand=EXPAND, use_fast_path=which == "fused")
            mixer.load_state_dict(layer.mixer.state_dict(), strict=True)
            layer.mixer = mixer
    return model.to(device)

def batch(length=LENGTH, device="cpu"):
    "The same random input for every model."
    return torch.randn(BATCH, length, D_MODEL, generator=torch.Generator().manual_seed(1)).to(device)

def sync(device):
    if torch.device(device).type == "cuda": torch.cuda.synchronize()

def train_step(model, x):
    "Seconds for one forward + backward pass."
    model.zero_grad(set_to_none=True)
    sync(x.device)
    start = time.perf_counter()
    model(x).square().mean().backward()
    sync(x.device)
    return time.perf_counter() - start

def faster_pscan_mode():
    "mambapy's pscan setting that trains faster here, and the probe's step times."
    x, times = batch(PROBE_LENGTH), {}
    for pscan in (True, False):
        model = build("mambapy", pscan)
        train_step(model, x)
        times[pscan] = train_step(model, x)
    return min(times, key=times.get), {f"pscan={k}": round(v, 4) for k, v in times.items()}

def memory_bytes(field):
    "A memory figure of this process from /proc/self/status: VmRSS (now) or VmHWM (peak)."
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"): return int(line.split()[1]) * 1024  # reported in kB

def peak_of_step(which, pscan):
    "Child process: bytes one training step adds to the resident set at its peak."
    model, x = build(which, pscan), batch()
    before = memory_bytes("VmRSS")
    train_step(model, x)
    return memory_bytes("VmHWM") - before

def cuda_peak_of_step(model, x):
    "Bytes of GPU memory one training step allocates at its peak, above what was allocated before it."
    model.zero_grad(set_to_none=True)
    torch.cuda.synchronize(); torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    train_step(model, x)
    return torch.cuda.max_memory_allocated() - before

def peak_in_fresh_process(which, pscan, threads):
    "Run `peak_of_step` in a new interpreter and return its answer in bytes."
    cmd = [sys.executable, __file__, "--peak-of", which, "--pscan", str(int(pscan)), "--threads", str(threads)]
    return int(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.split()[-1])

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5, help="timed steps per model")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--peak-of", choices=["pixelbytes", "mambapy"], help=argparse.SUPPRESS)
    p.add_argument("--pscan", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.peak_of: return print(peak_of_step(args.peak_of, bool(args.pscan)))
    cuda = torch.device(args.device).type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        pscan, probe = True, {}
    else:
        pscan, probe = faster_pscan_mode()
    names = ["pixelbytes"] + (["fused"] if cuda and HAS_MAMBA_SSM else []) + ["mambapy"]
    models = {name: build(name, pscan, args.device) for name in names}
    x = batch(device=args.device)
    with torch.no_grad():
        outputs = {name: model(x) for name, model in models.items()}
    theirs = outputs["mambapy"]
    disagreements = {name: ((y - theirs).abs().max() / theirs.abs().max()).item() for name, y in outputs.items() if name != "mambapy"}
    disagreement = max(disagreements.values())

    times = {name: [] for name in models}
    for name, model in models.items(): train_step(model, x)  # warm-up
    for _ in range(args.repeat):
        for name, model in models.items(): times[name].append(train_step(model, x))
    if cuda: peaks = {name: cuda_peak_of_step(model, x) for name, model in models.items()}
    else: peaks = {name: peak_in_fresh_process(name, pscan, args.threads) for name in models}

    rows = {}
    for name in models:
        step = statistics.median(times[name])
        rows[name] = {"tokens_per_s": BATCH * LENGTH / step, "median_step_s": step, "step_s": times[name],
                      "peak_step_memory_mb": peaks[name] / 2**20}
    speedup = rows["pixelbytes"]["tokens_per_s"] / rows["mambapy"]["tokens_per_s"]
    memory_ratio = peaks["pixelbytes"] / peaks["mambapy"]
    labels = {"pixelbytes": "pixelbytes.mamba (selective_scan)", "fused": "pixelbytes.mamba on mamba_ssm kernels",
              "mambapy": f"mambapy 1.2 (pscan={pscan})"}
    where = torch.cuda.get_device_name() if cuda else f"{args.threads} threads"
    print(f"Mamba training step, {LAYERS} layers, d_model {D_MODEL}, d_state {D_STATE}, expand {EXPAND}, "
          f"batch {BATCH} x length {LENGTH}, {where}, median of {args.repeat}")
    if probe: print(f"mambapy mode: pscan={pscan} (probe at length {PROBE_LENGTH}, step seconds: {probe})")
    print(f"{'model':36} {'tokens/s':>10} {'step s':>8} {'peak MB':>9}")
    for name, r in rows.items():
        print(f"{labels[name]:36} {r['tokens_per_s']:10.0f} {r['median_step_s']:8.3f} {r['peak_step_memory_mb']:9.0f}")
    print(f"{'pixelbytes / mambapy':36} {speedup:9.2f}x {'':8} {memory_ratio:8.2f}x")
    if "fused" in rows:
        print(f"{'fused / mambapy':36} {rows['fused']['tokens_per_s'] / rows['mambapy']['tokens_per_s']:9.2f}x {'':8} "
              f"{peaks['fused'] / peaks['mambapy']:8.2f}x")
    print(f"outputs agree to {disagreement:.1e} (max |difference| / max |mambapy output|)")

    result = {"config": {"batch": BATCH, "length": LENGTH, "d_model": D_MODEL, "d_state": D_STATE, "expand": EXPAND,
                         "d_conv": D_CONV, "layers": LAYERS, "threads": args.threads, "repeat": args.repeat},
              "mambapy_pscan": pscan, "pscan_probe_step_s": probe, "results": rows, "speedup": speedup,
              "memory_ratio": memory_ratio, "output_disagreement": disagreements,
              "memory_method": ("torch.cuda.max_memory_allocated during one training step minus memory_allocated before it" if cuda
                                else "VmHWM after one training step minus VmRSS before it, fresh process per model"),
              "device": torch.cuda.get_device_name() if cuda else "cpu",
              "torch": torch.__version__, "python": platform.python_version(), "machine": platform.processor() or platform.machine()}
    out = REPO / "bench" / "out" / ("mamba_speed-cuda.json" if cuda else "mamba_speed.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out.relative_to(REPO)}")
    # fused kernels reorder the float32 sums: they agree with the reference to ~1e-4, not ~1e-6
    limits = {"pixelbytes": 1e-4, "fused": 1e-3}
    bad = {name: d for name, d in disagreements.items() if d > limits[name]}
    if bad: sys.exit(f"outputs disagree: {bad}")

if __name__ == "__main__":
    main()
