"""`train` and `evaluate` start-up on 2,000 to 20,000 sprites made from pokemon-dev's: time, CPU and peak memory to the first step, before and after.

    python bench/big_train.py [--sizes 2000,20000] [--before REV] [--work DIR] [--source ../shared/data/pokemon-dev]

Makes N sprites as bench/big_build.py makes them (DIR/folderN, shared with it) and builds them with this checkout
(DIR/builtN). Then, side by side in one run, with this checkout and with the checkout of `--before` (default:
origin/main), each in a process of its own under /usr/bin/time -v and OMP_NUM_THREADS=1:

- `pixelbytes train --epochs 1 --dim 16 --depth 1 --eval-every 3`, stopped at its first evaluation (a callback, which the
  command line has none of, in place of --stop-after, whose minutes stop it after as many steps as the machine's load
  allows): 3 steps, a validation and a save;
- `pixelbytes evaluate` of the model that before's run saved (its best/) on the test split, scored into a folder of each side's own.

Each records the moment its first step starts (train's first forward pass, evaluate's token scoring, where its progress
bar first moves): wall seconds from the launch, CPU seconds and peak RSS of the process by then; and the whole command's
CPU seconds and peak RSS. The machine is shared: the CPU seconds tell more than the wall. Checks that both sides saved
the same weights, config, record of the data and history (its minutes aside), and the same scores, and writes
bench/out/big_train.json.

On a shared 2-core CPU (other jobs running), 20,000 sprites (18,000 to train on), before (267e0eb) and after: train's
first step after 13.1 and 9.2 CPU seconds (54 and 37 s of wall), peak 694 and 700 MB by then; the whole command 26.2
and 22.1 CPU seconds, 1,092 and 1,039 MB (the validation's attention is most of that peak). evaluate's first step (a
test split of 2,000 items) after 2.3 CPU seconds both, 368 and 371 MB. 2,000 sprites: train 4.3 and 3.8 CPU seconds to
its first step, 439 and 438 MB; evaluate 2.1 and 2.0. The same weights, history, record of the data and scores.
"""
import json, os, re, subprocess, sys, time
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parent))
from big_build import REPO, make_folder, checkout, arguments

STEPS = 3  # a run's steps before it stops
# run in each process: notes the moment the first step starts, then runs the command as `python -m pixelbytes.main` would
HOOK = """
import json, os, resource, runpy, sys, time
import pixelbytes.train as T, pixelbytes.evaluate as E
def first(module, name):
    inner = getattr(module, name)
    def noted(*a, **k):
        if not os.path.exists(os.environ['BENCH_FIRST']):
            with open(os.environ['BENCH_FIRST'], 'w') as f:
                json.dump({'seconds': time.time() - float(os.environ['BENCH_T0']), 'cpu_seconds': time.process_time(),
                           'peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}, f)
        return inner(*a, **k)
    setattr(module, name, noted)
first(T, '_accumulate'); first(E, '_token_scores')
if os.environ.get('BENCH_STOP'):  # the run stops at its first evaluation: a step fixed in advance, where --stop-after's minutes are not
    trains = T.train
    T.train = lambda *a, **k: trains(*a, **{**k, 'callback': lambda row: True})
sys.argv = ['pixelbytes', *sys.argv[1:]]
runpy.run_module('pixelbytes.main', run_name='__main__', alter_sys=True)
"""

def timed(code: Path, args: list, log: Path) -> dict:
    "`pixelbytes ARGS` with `code` first on the path, under /usr/bin/time -v: the first step's figures (`first_`), and the whole command's."
    mark = log.with_suffix('.first.json'); mark.unlink(missing_ok=True)
    env = {**os.environ, 'PYTHONPATH': str(code), 'HF_HUB_OFFLINE': '1', 'OMP_NUM_THREADS': '1', 'BENCH_FIRST': str(mark), 'BENCH_STOP': '1'}
    env.pop('TQDM_DISABLE', None)
    env['BENCH_T0'] = str(time.time())
    with open(log, 'w') as err:
        done = subprocess.run(['/usr/bin/time', '-v', sys.executable, '-c', HOOK, *args], env=env, cwd=code, stdout=subprocess.PIPE, stderr=err, text=True)
    text = log.read_text(errors='replace')
    if done.returncode: raise SystemExit(f"{' '.join(args)} failed ({code}):\n{text[-3000:]}")
    first = json.loads(mark.read_text())
    cpu = sum(float(re.search(rf'{kind} time \(seconds\): ([\d.]+)', text)[1]) for kind in ('User', 'System'))
    return {**{f'first_{k}': round(v, 1) if isinstance(v, float) else v for k, v in first.items()},
            'cpu_seconds': round(cpu, 1), 'peak_mb': int(re.search(r'Maximum resident set size \(kbytes\): (\d+)', text)[1]) // 1024}

def same_run(a: Path, b: Path) -> bool:
    "Whether the runs in `a` and `b` saved the same weights (best/ and last/), config, record of their data and history, its minutes aside."
    for f in ('best/model.safetensors', 'best/config.json', 'last/model.safetensors', 'best/trained_items.safetensors'):
        if (a/f).read_bytes() != (b/f).read_bytes(): return False
    sa, sb = (torch.load(x/'train_state.pt', weights_only=True) for x in (a, b))
    rows = lambda s: [{k: v for k, v in r.items() if k != 'minutes'} for r in json.loads(s['history'])]
    return (sa['data'] == sb['data'] and rows(sa) == rows(sb) and all(torch.equal(sa['model'][k], sb['model'][k]) for k in sa['model'])
            and (sa['step'], sa['epoch'], sa['batch']) == (sb['step'], sb['epoch'], sb['batch']) and sa['step'] == STEPS)

def same_scores(a: Path, b: Path) -> bool:
    "Whether the evaluations saved in `a` and `b` hold the same scores and settings, the date aside."
    ea, eb = (json.loads((x/'evaluation.json').read_text()) for x in (a, b))
    for e in (ea, eb): e['settings'].pop('date', None)
    return ea == eb and (a/'evaluation.csv').read_text() == (b/'evaluation.csv').read_text()

def main():
    args = arguments(__doc__).parse_args()
    work = Path(args.work); work.mkdir(parents=True, exist_ok=True)
    codes = {'before': checkout(args.before, work), 'after': REPO}
    rows = []
    for n in map(int, args.sizes.split(',')):
        make_folder(n, work/f'folder{n}', Path(args.source))
        data = work/f'built{n}'
        if not (data/'dataset_dict.json').exists():
            subprocess.run([sys.executable, '-m', 'pixelbytes.main', 'build', '--path', str(work/f'folder{n}'), '--out', str(data), '--overwrite', '--quiet'],
                           cwd=REPO, env={**os.environ, 'PYTHONPATH': str(REPO), 'HF_HUB_OFFLINE': '1', 'OMP_NUM_THREADS': '1'}, check=True, capture_output=True)
        for kind in ('train', 'evaluate'):
            got = {}
            for who, code in codes.items():
                out = work/f'{kind}-{who}{n}'
                if kind == 'train': cmd = ['train', '--data', str(data), '--out', str(out), '--epochs', '1', '--dim', '16', '--depth', '1', '--eval-every', str(STEPS), '--overwrite']
                else: cmd = ['evaluate', '--model', str(work/f'train-before{n}'/'best'), '--data', str(data), '--out', str(out)]
                got[who] = timed(code, cmd, work/f'log-{who}-{kind}{n}.txt')
            a, b = (work/f'{kind}-{w}{n}' for w in codes)
            same = same_run(a, b) if kind == 'train' else same_scores(a, b)
            ratio = lambda k: round(got['before'][k] / max(got['after'][k], 0.1), 2)
            rows.append({'kind': kind, 'sprites': n, **{f'{w}_{k}': v for w in got for k, v in got[w].items()}, 'same_output': same,
                         'first_cpu_ratio': ratio('first_cpu_seconds'), 'first_memory_ratio': ratio('first_peak_mb'), 'cpu_ratio': ratio('cpu_seconds')})
            r = rows[-1]
            say = lambda w: (f"{w} first step {r[f'{w}_first_seconds']:>5.1f} s ({r[f'{w}_first_cpu_seconds']:>5.1f} CPU, {r[f'{w}_first_peak_mb']:>5} MB), "
                             f"all {r[f'{w}_cpu_seconds']:>5.1f} CPU {r[f'{w}_peak_mb']:>5} MB")
            print(f"{kind:>8} {n:>7,}: {say('before')} | {say('after')} | to the first step x{r['first_cpu_ratio']} CPU, x{r['first_memory_ratio']} memory; "
                  f"all x{r['cpu_ratio']} CPU; same output: {same}", flush=True)
    (REPO/'bench'/'out').mkdir(parents=True, exist_ok=True)
    (REPO/'bench'/'out'/'big_train.json').write_text(json.dumps({'before': args.before, 'rows': rows}, indent=1))

if __name__ == '__main__': main()
