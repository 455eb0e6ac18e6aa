"""Peak memory of `build` against the number of sprites, on synthetic captioned sprites.

    python bench/build_memory.py [--sizes 1000,5000,20000] [--work DIR]

Writes N random sprites (16 to 64 pixels a side, a few rectangles of NES colours on a transparent background, a
caption of 6 to 24 words) with a metadata.csv into DIR/srcN (kept: a later run reuses them), then builds each in a
process of its own and reads that process's peak RSS (`ru_maxrss`), and the part of it taken while the rows are split
into train and test (`_split`, sampled every 5 ms). Prints a table and writes bench/out/build_memory.json.

On a shared 2-core CPU, 20,000 sprites (9.2 million tokens): 541 MB peak, +329 MB and 7.0 s in `_split`, when the split
read the `input_ids` column as Python lists; 251 MB, +30 MB and 1.5 s reading it as arrays, a batch at a time (5,000
sprites: 256 MB against 194 MB).
"""
import argparse, csv, json, os, subprocess, sys, tempfile
from pathlib import Path
import numpy as np

REPO = Path(__file__).resolve().parents[1]
WORDS = ('red blue green small large round spiky fire water grass flying ghost dragon cute angry sleepy tall wide with a the '
         'and its tail wings horn eyes').split()

def make_sprites(n: int, out: Path):
    "n random captioned sprites in `out`, with their metadata.csv."
    from PIL import Image
    from pixelbytes.palette import load_palette
    if (out/'metadata.csv').exists(): return
    out.mkdir(parents=True, exist_ok=True)
    rng, pal = np.random.default_rng(n), np.asarray(load_palette(None), np.uint8)
    with open(out/'metadata.csv', 'w', newline='') as f:
        w = csv.writer(f); w.writerow(['file_name', 'caption'])
        for i in range(n):
            s = int(rng.integers(16, 65)); h = int(rng.integers(max(8, s // 2), s + 1))
            img, cols = np.zeros((h, s, 4), np.uint8), pal[rng.integers(0, len(pal), 5)]
            for _ in range(int(rng.integers(2, 7))):
                y0, x0 = rng.integers(0, h), rng.integers(0, s)
                y1, x1 = min(h, y0 + rng.integers(2, h)), min(s, x0 + rng.integers(2, s))
                img[y0:y1, x0:x1, :3] = cols[rng.integers(0, 5)]; img[y0:y1, x0:x1, 3] = 255
            Image.fromarray(img, 'RGBA').save(out/f'{i:06d}.png')
            w.writerow([f'{i:06d}.png', ' '.join(rng.choice(WORDS, int(rng.integers(6, 25))))])

CHILD = r"""
import json, resource, sys, threading, time, warnings
warnings.simplefilter('ignore')
import pixelbytes.data as D
def rss():
    with open('/proc/self/status') as f: return next(int(l.split()[1]) // 1024 for l in f if l.startswith('VmRSS'))
split, seen = D._split, {}
def sampled(*a, **k):
    top, stop = [rss()], []
    def watch():
        while not stop: top[0] = max(top[0], rss()); time.sleep(0.005)
    t = threading.Thread(target=watch, daemon=True); t.start(); start, t0 = rss(), time.time()
    try: return split(*a, **k)
    finally: stop.append(1); t.join(); seen.update(split_mb=top[0] - start, split_s=round(time.time() - t0, 2))
D._split = sampled
t0 = time.time()
report = D.build(sys.argv[1], out=sys.argv[2], overwrite=True, progress=False)
print(json.dumps({**seen, 'seconds': round(time.time() - t0, 1), 'peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                  'rows': report['rows_written'], 'tokens_median': report['tokens_per_row']['median']}))
"""

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--sizes', default='1000,5000,20000')
    ap.add_argument('--work', default=str(Path(tempfile.gettempdir())/'pixelbytes-build-memory'))
    args = ap.parse_args()
    work, rows = Path(args.work), []
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')]), 'HF_HUB_OFFLINE': '1'}
    for n in map(int, args.sizes.split(',')):
        make_sprites(n, work/f'src{n}')
        out = subprocess.run([sys.executable, '-c', CHILD, str(work/f'src{n}'), str(work/f'built{n}')], env=env, check=True, capture_output=True, text=True)
        rows.append({'sprites': n, **json.loads(out.stdout.strip().splitlines()[-1])})
        r = rows[-1]
        print(f"{n:>7,} sprites: build peak {r['peak_mb']:>5} MB, {r['seconds']:>6.1f} s; _split +{r['split_mb']} MB, {r['split_s']} s "
              f"({r['rows']:,} rows, median {r['tokens_median']:g} tokens)", flush=True)
    (REPO/'bench'/'out').mkdir(parents=True, exist_ok=True)
    (REPO/'bench'/'out'/'build_memory.json').write_text(json.dumps(rows, indent=1))

if __name__ == '__main__': main()
