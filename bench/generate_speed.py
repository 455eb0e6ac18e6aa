"""Generation speed of every backbone: milliseconds per new token against the prefix length, and against
re-running the full forward for every new token (the reference implementation's way), on CPU or a GPU.

    python bench/generate_speed.py [--new-tokens 64] [--repeat 5] [--threads 2] [--profile BACKBONE] [--device cuda]

Targets (the issue): for a causal backbone (lstm, transformer, mamba) a new token after a 2048-token
prefix costs at most 1.5x one after a 64-token prefix, and at a 1024-token prefix generating is at least
20x faster per token than re-running the full forward. The bidirectional models (bilstm, bimamba) cannot
keep a state: they re-read their last `seq_length` (256) positions for every token, by design; their figures
are reported, the two targets are not applied to them.

Models: `PixelBytesModel(PixelBytesConfig(backbone=..., d_model=128, n_layers=2, d_state=16, seq_length=256))`, the
default vocabulary, freshly initialised (seed 0; the weights do not change the work per token), eval
mode, torch.no_grad, batch 1, float32, torch.set_num_threads(--threads).

Prefix: real token sequences, the built-in demo items (`pixelbytes.demo.demo_items`) encoded with
`pixelbytes.tokenizer.Tokenizer` as caption then image (16 rows of 16 pixels + TAB/LF, about 300 tokens
an item), concatenated and cut to 64, 512, 1024 or 2048 tokens; so a prompt ends inside an image and the
new tokens have rows above them, as when a model draws a sprite.

What is timed, and why this way: `generate` spends its time in two parts, prefilling the prompt (for a causal
model, one forward pass over the prompt that also returns the state) and then one loop iteration per new token. The issue asks
for the second part alone. Timing `generate(max_new_tokens=N)` minus `generate(max_new_tokens=0)` would
subtract two runs that both hold the prefill to find a few tens of milliseconds, so the difference would be
noisy. Instead the script prefills once per (backbone, prefix) exactly as `generate` does
(`model(context(prompt), return_state=True)`), and times N new tokens of the same
loop body `generate` runs for each new token: the next context from a `ContextTracker` (causal) or
the window slid by one context (bidirectional: it starts as `bidirectional_window(prompt, config)`,
the last seq_length rows of `context(prompt + [LF])`, zero-padded in front), `model.step` / `model(...)`, `logits.float().cpu()`,
temperature-1 sampling with `torch.multinomial` and a seeded generator, `tracker.append`. Each timed
run starts from a copy of the prefilled state and tracker (the copy is not timed; the transformer's
cache is updated in place, so it must be copied), so every repeat generates the same N tokens from the
same point. Two checks keep this honest: (1) the loop must produce token for token what
`model.generate(prompt, N, seed=...)` produces (checked for every backbone at the 64 prefix; the script
fails otherwise), and (2) the table's `gen()@64` column gives `generate`'s own per-token time at the
64 prefix, measured as the difference above, where the prefill is short enough for it to be meaningful.
The prefill is not in ms/token, but its time is reported (`prefill@2048`: the wait before the first new
token of a 2048-token prompt, one run), beside the time of reading the same prompt one `step` per token
(`by steps`, the way `generate` read prompts before it read them in one pass). The prefixes are powers of two, so the transformer's first new token
also doubles its key/value cache (as in `generate`): that one-off copy is inside the timed runs.

Reference way: for every new token, `context(ids + [LF])` over the whole sequence and a full forward
over it, the last position's logits (a bidirectional model's forward already returns only those: its
baseline reads the whole prefix, not a window), then the same sampling. Timed at the 1024 prefix over
--ref-tokens new tokens.

Repeats: after one untimed warm-up run of each case, --repeat rounds, each round timing every case once
(interleaved, so that all cases see the same machine state); a figure is the median over the rounds of
(time for the run / tokens in the run).

On a GPU (--device cuda) the models and their states live on the GPU, as with `model.to('cuda')` before
`generate`; every new token's logits come back to the CPU for sampling (as in `generate`), which also
synchronises the GPU, so the wall-clock timings are complete.

Prints a table and writes bench/out/generate_speed.json (generate_speed-cuda.json on a GPU). With
--profile BACKBONE, also profiles that backbone's loop at the 2048 prefix with cProfile and prints where the
time goes.
"""
import argparse, copy, cProfile, io, json, os, platform, pstats, statistics, sys, time
from pathlib import Path
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure this checkout, whatever copy of pixelbytes is installed
from pixelbytes.context import context, ContextTracker
from pixelbytes.demo import demo_items
from pixelbytes.models import PixelBytesConfig, PixelBytesModel, MODEL_NAMES, bidirectional_window, _draw, _filter_logits
from pixelbytes.tokenizer import Tokenizer, LF

BACKBONES = ('lstm', 'transformer', 'mamba', 'bilstm', 'bimamba')
PREFIXES = (64, 512, 2048)
REF_PREFIX = 1024
MODEL = dict(d_model=128, n_layers=2, d_state=16, seq_length=256)
RATIO_TARGET, SPEEDUP_TARGET = 1.5, 20.0
SEED = 1234  # of the sampling generator

def build_model(name, device='cpu'):
    backbone, bidirectional = MODEL_NAMES[name]
    torch.manual_seed(0)
    return PixelBytesModel(PixelBytesConfig(backbone=backbone, bidirectional=bidirectional, **MODEL)).eval().to(device)

def device_of(model): return next(model.parameters()).device

def demo_sequence(length):
    "At least `length` tokens of demo items (caption, then image), concatenated."
    tok, parts, n, seed = Tokenizer(), [], 0, 0
    while n < length:
        for item in demo_items(64, seed=seed):
            parts.append(tok.encode([item['caption'], item['image']]))
            n += len(parts[-1])
            if n >= length: break
        seed += 1
    return [int(t) for t in np.concatenate(parts)[:length]]

def clone(state):
    "A deep copy of a generation state (tensors, tuples, lists, dicts of them)."
    if torch.is_tensor(state): return state.clone()
    if isinstance(state, dict): return {k: clone(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)): return type(state)(clone(v) for v in state)
    return state

def prefill(model, prompt, by_steps=False):
    "What `generate` does before its first new token: the tracker of the prompt and (causal) the state after it."
    tracker = ContextTracker(model.config.n_bytes)
    tracker.extend(prompt)
    state = None
    if model.causal:
        full = torch.from_numpy(context(prompt, model.config.n_bytes)).to(device_of(model))
        if by_steps:  # one step per prompt token: the slow way, for comparison
            state = model.init_state(1)
            for t in range(len(prompt)): _, state = model.step(full[t].expand(1, -1), state)
        else: state = model(full[None], return_state=True)[1]
        sync(model)
    else: state = bidirectional_window(prompt, model.config)  # its window, which slides by one context a token
    return tracker, state

def sync(model):
    "Wait for the GPU's queued work, so that a wall-clock time is complete."
    if device_of(model).type == 'cuda': torch.cuda.synchronize()

def draws(n):
    "The uniform draws of `generate`'s sample seeded `SEED`, one for each of `n` new tokens."
    return iter(torch.rand(n, generator=torch.Generator().manual_seed(SEED), dtype=torch.float64))

def sample(logits, u, temperature=1.0):
    "`generate`'s sampling at `temperature` with no top-k / top-p, with its uniform draw `u`."
    return _draw(_filter_logits(logits, temperature, None, None).softmax(-1), u[None])

def new_tokens(model, tracker, state, n, gen):
    "`generate`'s loop body, `n` times (batch 1, no stop): appends the sampled tokens to `tracker`."
    dev = device_of(model)
    for _ in range(n):
        if model.causal:
            logits, state = model.step(torch.from_numpy(np.stack([tracker.next_context()])).to(dev), state)
        else:
            logits = model(torch.from_numpy(state[None]).to(dev))
        logits = logits.float().cpu()
        for t in sample(logits, next(gen)).tolist(): tracker.append(t)
        if not model.causal: state = np.concatenate([state[1:], tracker.next_context()[None]])
    return tracker

def full_rerun_tokens(model, ids, n, gen):
    "The reference's way: for every new token, the context of the whole sequence and a full forward over it."
    ids = list(ids)
    for _ in range(n):
        out = model(torch.from_numpy(context(ids + [LF], model.config.n_bytes))[None].to(device_of(model)))
        logits = (out[:, -1] if model.causal else out).float().cpu()
        ids += sample(logits, next(gen)).tolist()
    return ids

class Case:
    "One timed thing: a backbone at a prefix, the incremental loop or the full re-run."
    def __init__(self, name, model, prompt, n, kind):
        self.name, self.model, self.prompt, self.n, self.kind = name, model, prompt, n, kind
        self.times = []
        if kind == 'step':
            t0 = time.perf_counter()
            self.tracker, self.state = prefill(model, prompt)
            self.prefill_s = time.perf_counter() - t0
            self.prefill_by_steps_s = None
            if model.causal and len(prompt) == PREFIXES[-1]:
                t0 = time.perf_counter()
                prefill(model, prompt, by_steps=True)
                self.prefill_by_steps_s = time.perf_counter() - t0

    def run(self, record=True):
        if self.kind == 'step':
            tracker, state, gen = copy.deepcopy(self.tracker), clone(self.state), draws(self.n)
            t0 = time.perf_counter()
            new_tokens(self.model, tracker, state, self.n, gen)
        else:
            gen = draws(self.n)
            t0 = time.perf_counter()
            full_rerun_tokens(self.model, self.prompt, self.n, gen)
        dt = time.perf_counter() - t0
        if record: self.times.append(dt / self.n)

    @property
    def ms(self): return 1e3 * statistics.median(self.times)

def check_matches_generate(model, prompt, n):
    "The benchmark loop must generate exactly what `model.generate` does from the same seed."
    tracker, state = prefill(model, prompt)
    ours = new_tokens(model, tracker, state, n, draws(n)).ids
    theirs = model.generate(prompt, max_new_tokens=n, temperature=1.0, seed=SEED)[0]
    return ours == theirs

def generate_difference_ms(model, prompt, n, repeat):
    "`generate`'s own ms per new token: (time of max_new_tokens=n - time of max_new_tokens=0) / n, median."
    diffs = []
    for _ in range(repeat):
        t0 = time.perf_counter(); model.generate(prompt, max_new_tokens=0, seed=SEED)
        t1 = time.perf_counter(); model.generate(prompt, max_new_tokens=n, seed=SEED)
        t2 = time.perf_counter()
        diffs.append(((t2 - t1) - (t1 - t0)) / n)
    return 1e3 * statistics.median(diffs)

def profile(model, prompt, n, top=18):
    "cProfile of the loop at `prompt`: the functions with the most own time, per new token."
    tracker, state = prefill(model, prompt)
    new_tokens(model, copy.deepcopy(tracker), clone(state), 8, draws(8))  # warm-up
    prof = cProfile.Profile()
    prof.enable()
    new_tokens(model, tracker, state, n, draws(n))
    prof.disable()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats('tottime').print_stats(top)
    return s.getvalue()

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--new-tokens', type=int, default=64, help='new tokens per timed run of the incremental loop')
    p.add_argument('--ref-tokens', type=int, default=8, help='new tokens per timed run of the full re-run')
    p.add_argument('--repeat', type=int, default=5, help='timed rounds')
    p.add_argument('--threads', type=int, default=2, help='torch.set_num_threads')
    p.add_argument('--backbones', nargs='+', default=list(BACKBONES), choices=BACKBONES)
    p.add_argument('--profile', nargs='*', choices=BACKBONES, help='profile these backbones at the 2048 prefix')
    p.add_argument('--device', default='cpu', help='cpu or cuda')
    args = p.parse_args()
    cuda = torch.device(args.device).type == 'cuda'
    where = torch.cuda.get_device_name() if cuda else f"CPU, {args.threads} threads"
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    start, load_before = time.perf_counter(), os.getloadavg()[0]

    seq = demo_sequence(max(PREFIXES + (REF_PREFIX,)))
    models = {name: build_model(name, args.device) for name in args.backbones}
    cases = {}
    for name, model in models.items():
        for P in sorted(set(PREFIXES + (REF_PREFIX,))):
            cases[name, P, 'step'] = Case(name, model, seq[:P], args.new_tokens, 'step')
        cases[name, REF_PREFIX, 'full'] = Case(name, model, seq[:REF_PREFIX], args.ref_tokens, 'full')
    matches = {name: check_matches_generate(model, seq[:PREFIXES[0]], args.new_tokens) for name, model in models.items()}
    for c in cases.values(): c.run(record=False)  # warm-up
    for _ in range(args.repeat):
        for c in cases.values(): c.run()
    gen_ms = {name: generate_difference_ms(model, seq[:PREFIXES[0]], args.new_tokens, args.repeat) for name, model in models.items()}

    rows = {}
    for name, model in models.items():
        ms = {P: cases[name, P, 'step'].ms for P in sorted(set(PREFIXES + (REF_PREFIX,)))}
        full = cases[name, REF_PREFIX, 'full'].ms
        ratio, speedup = ms[PREFIXES[-1]] / ms[PREFIXES[0]], full / ms[REF_PREFIX]
        rows[name] = {
            'causal': model.causal, 'ms_per_token': {str(P): v for P, v in ms.items()},
            'ms_per_token_runs': {str(P): [1e3 * t for t in cases[name, P, 'step'].times] for P in ms},
            'prefill_s': {str(P): cases[name, P, 'step'].prefill_s for P in ms},
            'prefill_by_steps_s_at_2048': cases[name, PREFIXES[-1], 'step'].prefill_by_steps_s,
            'full_rerun_ms_per_token_at_1024': full,
            'full_rerun_runs': [1e3 * t for t in cases[name, REF_PREFIX, 'full'].times],
            'ratio_2048_over_64': ratio, 'speedup_vs_full_rerun_at_1024': speedup,
            'ratio_target_met': ratio <= RATIO_TARGET if model.causal else None,
            'speedup_target_met': speedup >= SPEEDUP_TARGET if model.causal else None,
            'loop_matches_generate': matches[name], 'generate_ms_per_token_at_64': gen_ms[name],
            'parameters': sum(p.numel() for p in model.parameters())}

    yn = lambda v: '-' if v is None else ('yes' if v else 'NO')
    print(f"Generation on {where}: d_model {MODEL['d_model']}, {MODEL['n_layers']} layers, "
          f"d_state {MODEL['d_state']} (mamba), window {MODEL['seq_length']} (bidirectional), batch 1, float32; "
          f"ms per new token, median of {args.repeat} runs of {args.new_tokens} tokens "
          f"(full re-run: {args.ref_tokens} tokens), prefill excluded")
    head = (f"{'backbone':12}" + ''.join(f"{'@' + str(P):>8}" for P in PREFIXES) + f"{'2048/64':>9}{'<=1.5x':>7}"
            f"{'@1024':>8}{'full@1024':>10}{'speedup':>9}{'>=20x':>6}{'gen()@64':>9}{'prefill@2048':>13}{'by steps':>9}")
    print(head)
    for name, r in rows.items():
        m = r['ms_per_token']
        print(f"{name:12}" + ''.join(f"{m[str(P)]:8.3f}" for P in PREFIXES)
              + f"{r['ratio_2048_over_64']:8.2f}x{yn(r['ratio_target_met']):>7}{m[str(REF_PREFIX)]:8.3f}"
              f"{r['full_rerun_ms_per_token_at_1024']:10.2f}{r['speedup_vs_full_rerun_at_1024']:8.1f}x"
              f"{yn(r['speedup_target_met']):>6}{r['generate_ms_per_token_at_64']:9.3f}"
              f"{r['prefill_s'][str(PREFIXES[-1])]:12.3f}s"
              + ('        -' if r['prefill_by_steps_s_at_2048'] is None else f"{r['prefill_by_steps_s_at_2048']:8.2f}s"))
    causal = [r for r in rows.values() if r['causal']]
    met = all(r['ratio_target_met'] and r['speedup_target_met'] for r in causal)
    print("bidirectional models re-read their window for every token: the two targets apply to the causal ones")
    print(f"benchmark loop = generate(), token for token: {yn(all(matches.values()))}; "
          f"causal targets met: {yn(met) if causal else '-'}")

    profiles = {}
    for name in args.profile or []:
        model = models.get(name) or build_model(name, args.device)
        profiles[name] = profile(model, seq[:PREFIXES[-1]], 4 * args.new_tokens)
        print(f"\n--- profile: {name} at prefix {PREFIXES[-1]}, {4 * args.new_tokens} new tokens ---\n{profiles[name]}")

    result = {'config': {**MODEL, 'batch': 1, 'threads': args.threads, 'repeat': args.repeat, 'new_tokens': args.new_tokens,
                         'ref_tokens': args.ref_tokens, 'prefixes': list(PREFIXES), 'ref_prefix': REF_PREFIX,
                         'temperature': 1.0, 'seed': SEED},
              'targets': {'ratio_2048_over_64_at_most': RATIO_TARGET, 'speedup_at_1024_at_least': SPEEDUP_TARGET},
              'results': rows, 'causal_targets_met': met, 'profiles': profiles,
              'wall_s': time.perf_counter() - start,
              'load_average_1min': {'start': load_before, 'end': os.getloadavg()[0]},  # other work on the machine skews figures
              'device': where, 'torch': torch.__version__, 'python': platform.python_version(),
              'machine': platform.processor() or platform.machine()}
    out = REPO / 'bench' / 'out' / ('generate_speed-cuda.json' if cuda else 'generate_speed.json')
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out.relative_to(REPO)} ({result['wall_s']:.0f} s)")
    if not all(matches.values()): sys.exit("the benchmark loop no longer matches generate(): update new_tokens()")

if __name__ == '__main__':
    main()
