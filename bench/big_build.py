"""`build` and `palette` end to end on 2,000 to 100,000 sprites made from pokemon-dev's: time, peak memory, before and after.

    python bench/big_build.py [--sizes 2000,20000] [--before REV] [--work DIR] [--source ../shared/data/pokemon-dev]

Makes N sprites from pokemon-dev's 493 (each mirrored, its colours turned by a permutation of R, G and B, or set beside
the next one: a different image every time up to 24 x 493 = 11,832, then the same images under other captions) in a
folder of PNGs with a metadata.csv, DIR/folderN, and the same rows as a Hugging Face parquet folder, DIR/parquetN
(kept: a later run reuses them). Then, side by side in one run, runs `pixelbytes build` on each and `pixelbytes palette`
on the PNG folder with this checkout and with the checkout of `--before` (default: origin/main; a copy made with
`git archive`), each in a process of its own under /usr/bin/time -v (wall and CPU seconds: the CPU seconds tell more on a shared machine), standard error to a log file as a job's is. Prints
a table (seconds, peak RSS, lines of progress written to the log) and the ratios before/after, checks that the built
files and the palettes are byte for byte the same, and writes bench/out/big_build.json.

On a shared 2-core CPU (load about 12), 20,000 sprites, before (0bcc7bb) and after: build of the PNG folder 34.9 and
25.8 CPU seconds, peak 286 and 274 MB; of the parquet folder 29.0 and 21.6 s, 331 and 328 MB; palette 16.8 and 13.4 s,
139 and 112 MB, its bar 203 redraws in the log and 2. 2,000 sprites: 4.5 and 3.8 s, 195 and 190 MB; the same output.
Those ran before the merge that keeps each row's `file` in a built dataset and builds captions in NFC: at this
commit a build differs from 0bcc7bb's, and `--before 0bcc7bb` says `same output: False` for it (2,000 sprites: 3.7 and
3.2 CPU seconds); give `--before` a revision after that merge to check the output.
"""
import argparse, csv, filecmp, json, os, re, subprocess, sys, tarfile, io, tempfile, time
from pathlib import Path
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent/'shared'/'data'/'pokemon-dev'
SIDES = ('', 'facing the other way', 'in turned colours', 'mirrored and in turned colours')

def _sprites(source: Path):
    "pokemon-dev's images (RGBA arrays) and captions, in row order."
    from PIL import Image
    with open(source/'metadata.csv', newline='') as f: rows = list(csv.DictReader(f))
    return [np.asarray(Image.open(source/r['file_name']).convert('RGBA')) for r in rows], [r['caption'] for r in rows]

def variant(images, captions, i: int):
    "Sprite `i`: base sprite i % n mirrored, its colours permuted or beside the next sprite, as i // n says; its caption says which."
    n = len(images); v = i // n
    img, cap = images[i % n], captions[i % n]
    if v & 1: img = img[:, ::-1]
    perm = (v >> 1) % 6  # one of the 6 orders of R, G and B
    img = np.concatenate([img[..., list([(0, 1, 2), (1, 2, 0), (2, 0, 1), (0, 2, 1), (2, 1, 0), (1, 0, 2)][perm])], img[..., 3:]], -1)
    if (v >> 1) // 6 % 2: img, cap = np.concatenate([img, images[(i + 1) % n]], 1), f"{cap} beside {captions[(i + 1) % n][:40]}"
    words = [w for w, on in (('mirrored', v & 1), (f'colours {perm}', perm)) if on]
    return np.ascontiguousarray(img), f"{cap} ({', '.join(words + [f'number {i}'])})"

def make_folder(n: int, out: Path, source: Path):
    "`n` sprites as PNG files with a metadata.csv in `out`."
    from PIL import Image
    if (out/'metadata.csv').exists(): return
    images, captions = _sprites(source)
    tmp = out.with_name(out.name + '.part'); tmp.mkdir(parents=True, exist_ok=True)
    with open(tmp/'metadata.csv', 'w', newline='') as f:
        w = csv.writer(f); w.writerow(['file_name', 'caption'])
        for i in range(n):
            img, cap = variant(images, captions, i)
            name = f'{i // 1000:03d}/{i:06d}.png'  # a thousand a folder, as large sets are kept
            (tmp/name).parent.mkdir(exist_ok=True)
            Image.fromarray(img, 'RGBA').save(tmp/name)
            w.writerow([name, cap])
    tmp.rename(out)

def make_parquet(n: int, out: Path, folder: Path):
    "The rows of the PNG folder `folder` as a Hub-layout parquet folder `out` (data/train-*.parquet, image bytes and caption), 5,000 rows a file."
    import pyarrow as pa, pyarrow.parquet as pq
    if (out/'data').exists(): return
    with open(folder/'metadata.csv', newline='') as f: rows = list(csv.DictReader(f))
    tmp = out.with_name(out.name + '.part'); (tmp/'data').mkdir(parents=True, exist_ok=True)
    shards = range(0, n, 5000)
    for k, s in enumerate(shards):
        part = rows[s:s + 5000]
        image = pa.array([{'bytes': (folder/r['file_name']).read_bytes(), 'path': r['file_name']} for r in part],
                         pa.struct([('bytes', pa.binary()), ('path', pa.string())]))
        table = pa.table({'image': image, 'caption': [r['caption'] for r in part]})
        # datasets reads the column as images where the schema says so, as push_to_hub writes it
        meta = {b'huggingface': json.dumps({'info': {'features': {'image': {'_type': 'Image'}, 'caption': {'dtype': 'string', '_type': 'Value'}}}}).encode()}
        pq.write_table(table.replace_schema_metadata(meta), tmp/'data'/f'train-{k:05d}-of-{len(shards):05d}.parquet')
    tmp.rename(out)

def checkout(rev: str, work: Path) -> Path:
    "The files of `rev` of this repository in `work`/code-<rev> (a copy: nothing is installed)."
    sha = subprocess.run(['git', '-C', str(REPO), 'rev-parse', rev], check=True, capture_output=True, text=True).stdout.strip()
    out = work/f'code-{sha[:10]}'
    if not out.exists():
        data = subprocess.run(['git', '-C', str(REPO), 'archive', sha], check=True, capture_output=True).stdout
        tarfile.open(fileobj=io.BytesIO(data)).extractall(out.with_name(out.name + '.part'))
        out.with_name(out.name + '.part').rename(out)
    return out

def timed(code: Path, args: list, log: Path) -> dict:
    "`python -m pixelbytes.main ARGS` with `code` first on the path, under /usr/bin/time -v: seconds, peak MB, and the lines its standard error (a file) holds."
    env = {**os.environ, 'PYTHONPATH': str(code), 'HF_HUB_OFFLINE': '1', 'OMP_NUM_THREADS': '1'}
    env.pop('TQDM_DISABLE', None)
    t0 = time.time()
    with open(log, 'w') as err:
        # in `code`: python -m puts the working folder first on the path, before PYTHONPATH
        done = subprocess.run(['/usr/bin/time', '-v', sys.executable, '-m', 'pixelbytes.main', *args], env=env, cwd=code, stdout=subprocess.PIPE, stderr=err, text=True)
    text = log.read_text(errors='replace')
    if done.returncode: raise SystemExit(f"{' '.join(args)} failed ({code}):\n{text[-3000:]}")
    peak = int(re.search(r'Maximum resident set size \(kbytes\): (\d+)', text)[1]) // 1024
    cpu = sum(float(re.search(rf'{kind} time \(seconds\): ([\d.]+)', text)[1]) for kind in ('User', 'System'))
    bars = text.split('\tCommand being timed')[0]
    return {'seconds': round(time.time() - t0, 1), 'cpu_seconds': round(cpu, 1), 'peak_mb': peak, 'log_lines': len(re.split(r'[\r\n]', bars.strip())) if bars.strip() else 0,
            'log_bytes': len(bars)}

def same_files(a: Path, b: Path) -> bool:
    "Whether folders `a` and `b` hold the same files, byte for byte, the build report's time and date aside."
    fa = sorted(p.relative_to(a) for p in a.rglob('*') if p.is_file())
    if fa != sorted(p.relative_to(b) for p in b.rglob('*') if p.is_file()): return False
    for f in fa:
        if f.name == 'build_report.json':
            ra, rb = (json.loads((x/f).read_text()) for x in (a, b))
            for r in (ra, rb): r.pop('seconds', None); r.pop('date', None)
            if ra != rb: return False
        elif not filecmp.cmp(a/f, b/f, shallow=False): return False
    return True

def arguments(doc: str) -> argparse.ArgumentParser:
    "The options of a big-data benchmark (this one, big_train.py): sizes, the revision to compare with, where to work, the source sprites."
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument('--sizes', default='2000,20000')
    ap.add_argument('--before', default='origin/main', help='the revision to compare with (default: origin/main)')
    ap.add_argument('--work', default=str(Path(tempfile.gettempdir())/'pixelbytes-big-build'))
    ap.add_argument('--source', default=str(SOURCE), help="pokemon-dev, the sprites the synthetic ones are made of")
    return ap

def main():
    ap = arguments(__doc__)
    ap.add_argument('--kinds', default='folder,parquet,palette', help='what to run: folder (build a PNG folder), parquet (build a parquet folder), palette')
    args = ap.parse_args()
    work = Path(args.work); work.mkdir(parents=True, exist_ok=True)
    codes = {'before': checkout(args.before, work), 'after': REPO}
    kinds, rows = args.kinds.split(','), []
    for n in map(int, args.sizes.split(',')):
        make_folder(n, work/f'folder{n}', Path(args.source))
        if 'parquet' in kinds: make_parquet(n, work/f'parquet{n}', work/f'folder{n}')
        for kind in kinds:
            got = {}
            for who, code in codes.items():
                out = work/f'out-{who}-{kind}{n}'
                if kind == 'palette': cmd = ['palette', '--path', str(work/f'folder{n}'), '--out', str(out) + '.hex', '--overwrite']
                else: cmd = ['build', '--path', str(work/f'{kind}{n}'), '--out', str(out), '--overwrite']
                got[who] = timed(code, cmd, work/f'log-{who}-{kind}{n}.txt')
            a, b = (work/f'out-{w}-{kind}{n}' for w in codes)
            same = filecmp.cmp(f'{a}.hex', f'{b}.hex', shallow=False) if kind == 'palette' else same_files(a, b)
            rows.append({'kind': kind, 'sprites': n, **{f'{w}_{k}': v for w in got for k, v in got[w].items()}, 'same_output': same,
                         'time_ratio': round(got['before']['seconds'] / got['after']['seconds'], 2),
                         'cpu_ratio': round(got['before']['cpu_seconds'] / got['after']['cpu_seconds'], 2),
                         'memory_ratio': round(got['before']['peak_mb'] / got['after']['peak_mb'], 2)})
            r = rows[-1]
            print(f"{kind:>8} {n:>7,}: before {r['before_seconds']:>6.1f} s ({r['before_cpu_seconds']:>6.1f} CPU) {r['before_peak_mb']:>5} MB {r['before_log_lines']:>4} log lines | "
                  f"after {r['after_seconds']:>6.1f} s ({r['after_cpu_seconds']:>6.1f} CPU) {r['after_peak_mb']:>5} MB {r['after_log_lines']:>4} log lines | "
                  f"x{r['time_ratio']} time, x{r['cpu_ratio']} CPU, x{r['memory_ratio']} memory, same output: {same}", flush=True)
    (REPO/'bench'/'out').mkdir(parents=True, exist_ok=True)
    (REPO/'bench'/'out'/'big_build.json').write_text(json.dumps({'before': args.before, 'rows': rows}, indent=1))

if __name__ == '__main__': main()
