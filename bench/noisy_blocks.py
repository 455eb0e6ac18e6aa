"""How well `pixelize` reads pixel art that was stored enlarged and saved as a JPEG, and how rarely it takes other images for such art.

    python bench/noisy_blocks.py [DATA_DIR] [--every 7]

DATA_DIR defaults to ../shared/data/pokemon-dev. Every `every`-th sprite is enlarged 2, 3, 4 and 8 times and saved as a
JPEG at quality 50, 75 and 90, with and without colour subsampling: on its own, with a white margin that puts the grid
of blocks off the image's corner, and cut through its outer blocks (a tight crop). `_block_grid` must find its block
size; where the grid starts at the corner, the sprite read back (`_one_per_block`) is compared with the sprite's own
palette colours, pixel by pixel; with a margin or cut, `pixelize` must read it at its own size, no line more or less. The images that are not enlarged
pixel art, which must come back with a block size of 1: every sprite as it is, the sampled ones at 1, 1.5 and 2.5 times
their size as JPEGs, matplotlib's sample photograph at eight sizes and two crops, its sample drawing, text, charts drawn on a
grid, smooth and noisy fields. Prints the counts and writes bench/out/noisy_blocks.json; exits with status 1 on any
image taken for enlarged pixel art that is not.
"""
import argparse, io, json, os, sys
from pathlib import Path
import numpy as np
from PIL import Image, ImageDraw, ImageFont
import matplotlib

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure this checkout, whatever copy of pixelbytes is installed
from pixelbytes.palette import NES_PALETTE
from pixelbytes.pixelize import _block_grid, _box, _content, _frames, _one_per_block, _open, MAX_PIXELS, nearest_colour, pixelize

def as_jpeg(rgb, quality, subsampling=2):
    "`rgb` saved as a JPEG (subsampling 2: colour at half resolution, as most encoders do; 0: none) and read back."
    buf = io.BytesIO(); Image.fromarray(rgb).save(buf, 'JPEG', quality=quality, subsampling=subsampling)
    return np.asarray(Image.open(buf).convert('RGB'))

def sprite_rgb(path):
    "A sprite as `pixelize` sees it before looking for blocks: on white, cropped."
    im, name = _open(path, MAX_PIXELS, None)
    (where, rgb), = _frames(im, name, 'first', MAX_PIXELS)
    return _content(rgb, im, where, crop=True)[0]

def others(rng):
    "(what, rgb) of images that are not enlarged pixel art, besides the sprites."
    sample = os.path.join(matplotlib.get_data_path(), 'sample_data')
    photo = Image.open(os.path.join(sample, 'grace_hopper.jpg')).convert('RGB')
    for s in (1, 0.75, 0.7, 0.5, 0.4, 0.3, 0.2, 0.1): yield f'photograph at {s:g}', np.asarray(photo.resize((int(photo.width * s), int(photo.height * s))))
    for c in range(2): yield 'photograph, cropped', np.asarray(photo)[c * 100:c * 100 + 120, 100:220]
    drawing = np.asarray(Image.open(os.path.join(sample, 'Minduka_Present_Blue_Pack.png')).convert('RGB'))
    yield 'drawing', drawing
    for q in (60, 85): yield f'drawing, JPEG {q}', as_jpeg(drawing, q)
    for size in (10, 14, 20, 30):
        im = Image.new('RGB', (200, 60), 'white')
        ImageDraw.Draw(im).text((5, 5), 'Hello pixel art 0123456789', fill='black', font=ImageFont.load_default(size=size))
        yield f'text {size}px', np.asarray(im)
        yield f'text {size}px, JPEG', as_jpeg(np.asarray(im), 75)
    for _ in range(5):
        field = np.asarray(Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).resize((150, 150), Image.BICUBIC))
        yield 'smooth field', as_jpeg(np.clip(field + rng.normal(0, 8, field.shape), 0, 255).astype(np.uint8), 80)
        yield 'noise', rng.integers(0, 255, (60, 60, 3), dtype=np.uint8)
        im = Image.new('RGB', (200, 160), 'white'); d = ImageDraw.Draw(im)
        for x in range(0, 200, 20): d.line((x, 0, x, 160), fill=(200, 200, 200))
        for y in range(0, 160, 20): d.line((0, y, 200, y), fill=(200, 200, 200))
        d.line([(j * 20, int(p)) for j, p in enumerate(rng.integers(0, 160, 10))], fill='blue', width=2)
        yield 'chart on a grid of 20', as_jpeg(np.asarray(im), 80)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('data', nargs='?', default=str(REPO.parent / 'shared/data/pokemon-dev'))
    ap.add_argument('--every', type=int, default=7, help='enlarge every N-th sprite (default 7: 71 of pokemon-dev)')
    ap.add_argument('--out', default=str(REPO / 'bench/out/noisy_blocks.json'))
    args = ap.parse_args(argv)
    paths = sorted(p for p in Path(args.data).iterdir() if p.suffix.lower() in ('.png', '.gif', '.jpg', '.jpeg', '.webp'))
    if not paths: sys.exit(f"no images in {args.data}")
    found, agree, missed, taken = 0, [], {}, []
    tried, sized, wrong_size = 0, 0, {}
    for i, path in enumerate(paths):
        rgb = sprite_rgb(path)
        if _block_grid(rgb)[0] != 1: taken.append(f'{path.name} as it is')
        if i % args.every: continue
        own = nearest_colour(rgb, NES_PALETTE)
        own_size = rgb[_box(rgb, path.name)].shape[:2]  # on white: what a crop of the JPEG can find
        for k in (2, 3, 4, 8):
            big = np.kron(rgb, np.ones((k, k, 1), np.uint8))
            for q in (50, 75, 90):
                for sub in (0, 2):
                    for how in ('alone', 'margin', 'cut'):
                        cut = (i + k) % (k - 1) + 1  # 1 to k - 1 lines off the top and left, one off the bottom and right
                        img = as_jpeg({'alone': big, 'margin': np.pad(big, ((3, 5), (1, 2), (0, 0)), constant_values=255), 'cut': big[cut:-1, cut:-1]}[how], q, sub)
                        got, start = _block_grid(img)
                        tried += 1
                        if got != k: missed[f'k={k} q={q}'] = missed.get(f'k={k} q={q}', 0) + 1; continue
                        found += 1
                        if how != 'alone':
                            if pixelize(Image.fromarray(img), max_size=10**4).shape == own_size: sized += 1
                            else: wrong_size[f'k={k} q={q}'] = wrong_size.get(f'k={k} q={q}', 0) + 1
                        if how == 'alone':
                            back = nearest_colour(_one_per_block(img, k, start), NES_PALETTE)
                            if back.shape == own.shape:  # the same colour, and one within 8 in every channel (the palette has two whites)
                                agree.append((k, q, (back == own).mean(), (np.abs(NES_PALETTE[back].astype(int) - NES_PALETTE[own]).max(-1) <= 8).mean()))
        for q in (75, 95):
            for s in (1, 1.5, 2.5):
                im = Image.fromarray(rgb).resize((round(rgb.shape[1] * s), round(rgb.shape[0] * s)), Image.NEAREST)
                if _block_grid(as_jpeg(np.asarray(im), q))[0] != 1: taken.append(f'{path.name} at {s}x, JPEG {q}')
    rest = list(others(np.random.default_rng(0)))
    taken += [what for what, rgb in rest if _block_grid(rgb)[0] != 1]
    negatives = len(paths) + len(range(0, len(paths), args.every)) * 6 + len(rest)
    res = {'data': str(Path(args.data).resolve()), 'enlarged_jpegs': tried, 'found': found, 'missed': missed,
           'framed_or_cut': 2 * tried // 3, 'read_at_own_size': sized, 'wrong_size': wrong_size,
           'pixels_same_colour': float(np.mean([a[2] for a in agree])), 'pixels_within_8': float(np.mean([a[3] for a in agree])),
           'pixels_same_colour_by_k_quality': {f'k={k} q={q}': float(np.mean([a[2] for a in agree if a[:2] == (k, q)])) for k in (2, 3, 4, 8) for q in (50, 75, 90)}, 'not_enlarged': negatives, 'taken_for_enlarged': taken}
    print(f"enlarged sprites saved as JPEGs: block size found for {found} of {tried}; missed: {missed or 'none'}")
    print(f"with a margin or cut through its blocks: {sized} of {2 * tried // 3} read at the sprite's own size; wrong: {wrong_size or 'none'}")
    print(f"pixels read back as the sprite's own palette colour: {100 * res['pixels_same_colour']:.1f}%, "
          f"as a colour within 8 of it in every channel: {100 * res['pixels_within_8']:.1f}%")
    by = res['pixels_same_colour_by_k_quality']
    print('the same colour, by block size (rows) and JPEG quality (columns):\n' + f"{'':>6}" + ''.join(f'{q:>8}' for q in (50, 75, 90)))
    for k in (2, 3, 4, 8): print(f'{k:>6}' + ''.join(f"{100 * by[f'k={k} q={q}']:>7.1f}%" for q in (50, 75, 90)))
    print(f"images that are not enlarged pixel art: {len(taken)} of {negatives} taken for it{': ' + ', '.join(taken) if taken else ''}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2))
    print(f"wrote {args.out}")
    if taken: sys.exit(1)

if __name__ == '__main__': main()
