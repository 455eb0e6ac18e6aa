"""Speed of `pixelize` against the reference's per-pixel colour mapping, on real sprites.

    python bench/pixelize_speed.py [DATA_DIR] [--max-size 25] [--repeat 3]

DATA_DIR defaults to ../shared/data/pokemon-dev (relative to the repository). Both sides run the
same steps on the same images: open, first frame, composite over white, crop, unscale, resize (pixelize's
own code). Only the colour mapping differs:

- pixelbytes: `nearest_colour`, vectorised over the image's distinct colours;
- reference: `np.apply_along_axis` over the resized image, converting each pixel to Lab in plain
  Python and searching the palette for it, as the reference implementation did.

It reports images per second for the mapping alone and for the whole pipeline, the speedups, the cost of
looking for pixel art stored enlarged (pixelize against pixelize(unscale=False), side by side), and the
fraction of pixels on which both mappings agree; prints a table and writes bench/out/pixelize_speed.json.
Exits with status 1 if the agreement is below 99.9%.
"""
import argparse, json, platform, sys, time
from pathlib import Path
import numpy as np
import PIL

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure this checkout, whatever copy of pixelbytes is installed
from pixelbytes.palette import NES_PALETTE
from pixelbytes.pixelize import _block_grid, _content, _frames, _open, _pixelized, _resampling, _sized, MAX_PIXELS, nearest_colour, pixelize

def lab_of_pixel(rgb):
    "CIELAB (D65) of one sRGB pixel, written out for one pixel with the standard formulas."
    def linear(c):
        c = c / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    def f(t): return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29
    r, g, b = (linear(float(v)) for v in rgb)
    x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047
    y = (0.2126729 * r + 0.7151522 * g + 0.0721750 * b) / 1.0
    z = (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883
    fx, fy, fz = f(x), f(y), f(z)
    return np.array([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)])

def reference_mapping(rgb, palette_lab):
    "Palette indices the reference's way: a Lab conversion and a palette search per pixel."
    return np.apply_along_axis(lambda px: np.argmin(((palette_lab - lab_of_pixel(px)) ** 2).sum(1)), 2, rgb)

def prepare(path, max_size):
    "Open, first frame, composite, crop, unscale and resize: pixelize's steps before the colour mapping."
    im, name = _open(path, MAX_PIXELS, None)
    (where, rgb), = _frames(im, name, 'first', MAX_PIXELS)
    rgb, opaque, cut = _content(rgb, im, where, crop=True)
    return _sized(rgb, opaque, cut, where, max_size, _resampling('nearest'), True, *_block_grid(rgb))

def best_time(fn, repeat):
    "Shortest of `repeat` runs of `fn()`, in seconds, and its last result."
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); out = fn(); times.append(time.perf_counter() - t)
    return min(times), out

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('data', nargs='?', default=str(REPO.parent / 'shared/data/pokemon-dev'), help='folder of images (default: ../shared/data/pokemon-dev)')
    ap.add_argument('--max-size', type=int, default=25)
    ap.add_argument('--repeat', type=int, default=3, help='runs of each timing; the best is kept')
    ap.add_argument('--out', default=str(REPO / 'bench/out/pixelize_speed.json'))
    args = ap.parse_args(argv)
    paths = sorted(p for p in Path(args.data).iterdir() if p.suffix.lower() in ('.png', '.gif', '.jpg', '.jpeg', '.webp'))
    if not paths: sys.exit(f"no images in {args.data}")
    palette_lab = np.array([lab_of_pixel(c) for c in NES_PALETTE])  # once, as the reference did

    t_prep, rgbs = best_time(lambda: [prepare(p, args.max_size) for p in paths], args.repeat)
    nearest_colour(rgbs[0], NES_PALETTE)  # fill the palette cache, as a long-running process would have it
    t_ours, ours = best_time(lambda: [nearest_colour(r, NES_PALETTE) for r in rgbs], args.repeat)
    t_ref, refs = best_time(lambda: [reference_mapping(r, palette_lab) for r in rgbs], args.repeat)
    t_pixelize, direct = best_time(lambda: [pixelize(p, max_size=args.max_size) for p in paths], args.repeat)
    assert all((d == o).all() for d, o in zip(direct, ours)), "prepare() + nearest_colour() must be pixelize()"
    # side by side, each run in turn first: on a shared machine, whichever ran first would pay for a cold cache
    with_unscale, without = [], []
    for i in range(args.repeat):
        for unscale in ((True, False) if i % 2 == 0 else (False, True)):
            t = time.perf_counter(); [pixelize(p, max_size=args.max_size, unscale=unscale) for p in paths]
            (with_unscale if unscale else without).append(time.perf_counter() - t)
    t_unscale, t_plain = min(with_unscale), min(without)
    enlarged = sum(_pixelized(p, NES_PALETTE, args.max_size, 'first', 'nearest', True, True, None)[0][1] > 1 for p in paths)  # read at 1/k, k > 1

    n, pixels = len(paths), sum(r.shape[0] * r.shape[1] for r in rgbs)
    agree = sum(int((o == r).sum()) for o, r in zip(ours, refs)) / pixels
    res = {
        'data': str(Path(args.data).resolve()), 'images': n, 'pixels': pixels, 'max_size': args.max_size, 'repeat': args.repeat,
        'seconds': {'prepare': t_prep, 'mapping_pixelbytes': t_ours, 'mapping_reference': t_ref, 'pixelize_end_to_end': t_pixelize, 'pixelize_with_unscale': t_unscale, 'pixelize_without_unscale': t_plain},
        'images_per_s': {
            'mapping_pixelbytes': n / t_ours, 'mapping_reference': n / t_ref,
            'pipeline_pixelbytes': n / (t_prep + t_ours), 'pipeline_reference': n / (t_prep + t_ref),
            'pixelize_end_to_end': n / t_pixelize, 'pixelize_without_unscale': n / t_plain},
        'unscale_cost': t_unscale / t_plain, 'images_found_enlarged': int(enlarged),
        'speedup_mapping_only': t_ref / t_ours,
        'speedup_whole_pipeline': (t_prep + t_ref) / (t_prep + t_ours),
        'pixel_agreement': agree,
        'machine': {'python': platform.python_version(), 'numpy': np.__version__, 'pillow': PIL.__version__,
                    'processor': platform.processor() or platform.machine(), 'cpus': __import__('os').cpu_count()},
    }
    ips = res['images_per_s']
    print(f"{n} images from {args.data}, {pixels:,} pixels after resizing to <= {args.max_size} (best of {args.repeat})\n")
    print(f"{'':28s}{'pixelbytes':>14s}{'reference':>14s}{'speedup':>10s}")
    print(f"{'colour mapping, images/s':28s}{ips['mapping_pixelbytes']:14.1f}{ips['mapping_reference']:14.1f}{res['speedup_mapping_only']:9.1f}x")
    print(f"{'whole pipeline, images/s':28s}{ips['pipeline_pixelbytes']:14.1f}{ips['pipeline_reference']:14.1f}{res['speedup_whole_pipeline']:9.1f}x")
    print(f"\nshared steps (open, composite, crop, resize): {1e3 * t_prep / n:.3f} ms/image; "
          f"pixelize() end to end: {ips['pixelize_end_to_end']:.1f} images/s")
    print(f"pixelize(unscale=False): {ips['pixelize_without_unscale']:.1f} images/s, so looking for enlarged pixel art costs "
          f"{res['unscale_cost']:.2f}x the time; {enlarged} of the {n} images were found enlarged")
    print(f"pixels mapped to the same palette index: {100 * agree:.3f}%")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2))
    print(f"wrote {args.out}")
    if agree < 0.999: sys.exit(f"agreement {agree:.4%} is below 99.9%")

if __name__ == '__main__': main()
