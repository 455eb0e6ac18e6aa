"System tests of `evaluate` and `generate` on the command line, with a tiny model trained on the demo set."
import json, os, re, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
from PIL import Image

def opened(path):
    "The image at `path`, read whole and its file closed: `Image.open` alone holds the file until the image is collected (a ResourceWarning)."
    with Image.open(path) as im: im.load()
    return im

ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1'}

def cli(*args, cwd=None, input=None):
    return subprocess.run([sys.executable, '-m', 'pixelbytes.main', *map(str, args)], capture_output=True, text=True, env=ENV, cwd=cwd, input=input, timeout=600)

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    from pixelbytes.data import build
    from pixelbytes.train import train
    root = tmp_path_factory.mktemp('gen')
    build('demo', out=root/'demo', progress=False)
    build('demo', out=root/'demo-v1', vocab='v1', progress=False)
    cfg = dict(backbone='lstm', d_model=32, n_layers=1, epochs=1, seq_length=64, learning_rate=1e-2)
    train(cfg, root/'demo', out=root/'m', progress=False)
    train(cfg, root/'demo-v1', out=root/'m1', progress=False)
    Image.new('RGB', (12, 10), (248, 56, 0)).save(root/'red.png')
    return root

@pytest.mark.parametrize('fmt', ['png', 'jpg', 'svg'])
def test_text_to_image_in_every_format(trained, fmt, tmp_path):
    r = cli('generate', '--model', trained/'m'/'best', '--prompt', 'a red circle in the middle', '--format', fmt, '--num', '4',
            '--seed', '0', '--out', tmp_path/f'g.{fmt}')
    assert r.returncode == 0, r.stderr
    assert r.stdout.count('image') >= 4 and (tmp_path/f'g.{fmt}').stat().st_size > 0
    if fmt != 'svg': assert opened(tmp_path/f'g.{fmt}').size[0] > 100
    else: assert '<svg' in (tmp_path/'g.svg').read_text()

def test_image_to_text_and_completion(trained, tmp_path):
    r = cli('generate', '--model', trained/'m'/'best', '--image', trained/'red.png', '--seed', '1', '--out', tmp_path/'c.png')
    assert r.returncode == 0 and (tmp_path/'c.png').exists(), r.stderr
    r = cli('generate', '--model', trained/'m'/'best', '--image', trained/'red.png', '--rows', '3', '--seed', '1', '--out', tmp_path/'k.png')
    assert r.returncode == 0 and (tmp_path/'k.png').exists(), r.stderr
    assert re.fullmatch(r'0: \[12x10 image\]\nsaved .*k\.png\n', r.stdout), r.stdout  # the completed image, 12x10 (width x height) as given; no text

def test_several_prompts_and_images(trained, tmp_path):
    "--prompt and --image repeated: each is drawn --num times, in turn; --columns and --text lay out the picture."
    r = cli('generate', '--model', trained/'m'/'best', '--prompt', 'a red circle', '--prompt', 'a blue square', '--num', '2', '--seed', '3',
            '--max-tokens', '30', '--columns', '4', '--text', 'below', '--out', tmp_path/'p.png')
    assert r.returncode == 0 and [l.split(':')[0] for l in r.stdout.splitlines()[:-1]] == ['0 "a red circle"', '1 "a red circle"', '2 "a blue square"', '3 "a blue square"'], (r.stdout, r.stderr)
    one = cli('generate', '--model', trained/'m'/'best', '--prompt', 'a blue square', '--num', '2', '--seed', '3', '--max-tokens', '30', '--out', tmp_path/'b.png')
    drawn = lambda out: [l.split(':', 1)[1] for l in out.splitlines()[:-1]]
    assert drawn(r.stdout)[2:] == drawn(one.stdout)  # the second prompt's samples, as drawn alone
    apart = cli('generate', '--model', trained/'m'/'best', '--prompt', 'a blue square', '--num', '2', '--seed', '3', '--max-tokens', '30', '--batch-size', '1', '--out', tmp_path/'b1.png')
    assert apart.returncode == 0 and drawn(apart.stdout) == drawn(one.stdout), apart.stderr  # one at a time: the same samples
    w, h = opened(tmp_path/'p.png').size
    assert w > h  # four samples in one row
    r = cli('generate', '--model', trained/'m'/'best', '--image', trained/'red.png', '--image', trained/'red.png', '--seed', '1', '--max-tokens', '10', '--out', tmp_path/'i.png')
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3, (r.stdout, r.stderr)
    files = cli('generate', '--model', trained/'m'/'best', '--image', trained/'red.png', trained/'red.png', '--seed', '1', '--max-tokens', '10', '--out', tmp_path/'i2.png')
    assert files.returncode == 0 and files.stdout.splitlines()[:2] == r.stdout.splitlines()[:2], files.stderr  # several files after one --image (a shell's glob)
    assert all(l.startswith(f"{i} {trained/'red.png'}: ") for i, l in enumerate(r.stdout.splitlines()[:2])), r.stdout  # each caption after its file
    r = cli('generate', '--model', trained/'m'/'best', '--prompt', 'a cross', '--image', trained/'red.png', trained/'red.png', '--rows', '1', '--seed', '1', '--max-tokens', '5', '--out', tmp_path/'i.json')
    assert r.returncode == 0 and [d['source'] for d in json.loads((tmp_path/'i.json').read_text())] == [{'prompt': 'a cross', 'image': str(trained/'red.png')}] * 2, r.stderr
    r = cli('generate', '--model', trained/'m'/'best', '--prompt', 'a red circle', '--num', '2', '--seed', '3', '--max-tokens', '30', '--out', tmp_path/'p.json')
    data = json.loads((tmp_path/'p.json').read_text())  # what the samples hold, for a script
    assert r.returncode == 0 and [d['seed'] for d in data] == [3, data[1]['seed']] and data[1]['seed'] != 3 and 'image' in data[0]['segments'][0], r.stderr

def test_captions_from_a_file(trained, tmp_path):
    "--prompts FILE: a caption a line (a BOM, CRLF, blank lines and spaces around aside), after any --prompt; '-' reads standard input."
    (tmp_path/'captions.txt').write_bytes('\ufeffa blue square\r\n\n  a red circle  \n'.encode())
    common = ('--model', trained/'m'/'best', '--num', '2', '--seed', '3', '--max-tokens', '30')
    r = cli('generate', *common, '--prompt', 'a cross', '--prompts', tmp_path/'captions.txt', '--out', tmp_path/'f.json')
    each = cli('generate', *common, '--prompt', 'a cross', '--prompt', 'a blue square', '--prompt', 'a red circle', '--out', tmp_path/'p.json')
    assert r.returncode == 0 and each.returncode == 0, (r.stderr, each.stderr)
    drawn = json.loads((tmp_path/'f.json').read_text())
    assert len(drawn) == 6 and drawn == json.loads((tmp_path/'p.json').read_text())
    piped = cli('generate', *common, '--prompts', '-', '--out', tmp_path/'s.json', input='a red circle\n')
    assert piped.returncode == 0 and json.loads((tmp_path/'s.json').read_text()) == drawn[4:], piped.stderr
    # a file of one caption completes every --image after it, as --prompt does
    (tmp_path/'one.txt').write_text('a cross\n')
    completing = ('--model', trained/'m'/'best', '--image', trained/'red.png', trained/'red.png', '--rows', '1', '--seed', '1', '--max-tokens', '5')
    r = cli('generate', *completing, '--prompts', tmp_path/'one.txt', '--out', tmp_path/'o.json')
    given = cli('generate', *completing, '--prompt', 'a cross', '--out', tmp_path/'g.json')
    assert r.returncode == 0 and given.returncode == 0, (r.stderr, given.stderr)
    assert json.loads((tmp_path/'o.json').read_text()) == json.loads((tmp_path/'g.json').read_text())

def test_picture_options_with_json_are_refused(trained, tmp_path):
    "--scale, --grid, --columns and --text lay out a picture: with .json they would do nothing, so they are refused before drawing."
    r = cli('generate', '--model', trained/'m'/'best', '--prompt', 'a red circle', '--grid', '--scale', '2', '--out', tmp_path/'s.json')
    assert r.returncode == 1 and '--scale=2, --grid: a .json file holds what the samples hold, not a picture of them; leave them out' in r.stderr and 'Generating' not in r.stderr, r.stderr
    r = cli('generate', '--model', trained/'m'/'best', '--prompt', 'a red circle', '--text', 'right', '--out', tmp_path/'s.json')
    assert r.returncode == 1 and "--text='right': a .json file holds what the samples hold" in r.stderr, r.stderr  # even as the picture's default

def test_out_is_a_file(trained, tmp_path):
    "--out - and --out DIR/ are refused before drawing; a pipe (or a device) at --out is not replaced by a file."
    for out, fmt, message in (('-', 'png', 'generate writes a file, not to standard output'), (f'{tmp_path}/dir/', 'png', "names a folder (it ends in /), and --format='png' writes a file: name a file in it, or give --format='folder'")):
        r = cli('generate', '--model', trained/'m'/'best', '--prompt', 'x', '--format', fmt, '--out', out)
        assert r.returncode == 1 and message in r.stderr and 'Generating' not in r.stderr, r.stderr
    if hasattr(os, 'mkfifo'):
        os.mkfifo(tmp_path/'pipe.png')
        r = cli('generate', '--model', trained/'m'/'best', '--prompt', 'x', '--max-tokens', '5', '--out', tmp_path/'pipe.png')
        assert r.returncode == 1 and 'is not a regular file (a device, a pipe or a socket)' in r.stderr and (tmp_path/'pipe.png').is_fifo(), r.stderr

def test_a_folder_of_sprites(trained, tmp_path):
    "--out DIR/ (or --format folder): a PNG file per sample and metadata.csv, which build reads back; a folder that holds files is refused before drawing, unless --append adds to a folder of samples."
    r = cli('generate', '--model', trained/'m'/'best', '--prompt', 'a red circle', '--num', '3', '--seed', '2', '--out', f'{tmp_path}/sprites/')
    assert r.returncode == 0 and f"pixelbytes build --path {tmp_path}/sprites/ --like {trained/'m'/'best'} reads it as the model reads images" in r.stdout, (r.stdout, r.stderr)
    first = next(p for p in sorted((tmp_path/'sprites').iterdir()) if p.suffix == '.png')
    assert max(opened(first).size) <= 25, opened(first).size  # a folder's sprites at their own size: the model's max_size at most
    names = sorted(p.name for p in (tmp_path/'sprites').iterdir())
    assert names[-1] == 'metadata.csv' and 0 < len(names) - 1 <= 3 and (tmp_path/'sprites'/'metadata.csv').read_text(encoding='utf-8-sig').startswith('file_name,caption,seed\n')
    r = cli('build', '--path', tmp_path/'sprites', '--out', tmp_path/'rebuilt', '--test-size', '0', '--quiet')
    assert r.returncode == 0 and f"rows read {len(names) - 1}, written " in r.stdout, (r.stdout, r.stderr)  # each sprite read (an all-white one is skipped)
    r = cli('generate', '--model', trained/'m'/'best', '--prompt', 'x', '--format', 'folder', '--out', tmp_path/'sprites')
    assert r.returncode == 1 and 'holds files (0000.png, ' in r.stderr and ': save the samples into a new or empty folder, or add them to it (--append)' in r.stderr and 'Generating' not in r.stderr, r.stderr
    r = cli('generate', '--model', trained/'m'/'best', '--prompt', 'a blue square', '--num', '2', '--seed', '3', '--append', '--out', f'{tmp_path}/sprites/')
    assert r.returncode == 0 and len((tmp_path/'sprites'/'metadata.csv').read_text().splitlines()) == len(names) + 2, r.stderr  # two rows more
    after = max(int(n[:4]) for n in names[:-1]) + 1
    assert sorted(p.name for p in (tmp_path/'sprites').iterdir())[len(names) - 1:] == [f'{after:04d}.png', f'{after + 1:04d}.png', 'metadata.csv']  # numbered after the first ones
    (tmp_path/'loose').mkdir(); (tmp_path/'loose'/'a.png').write_bytes(first.read_bytes())
    r = cli('generate', '--model', trained/'m'/'best', '--prompt', 'x', '--append', '--out', f'{tmp_path}/loose/')
    assert r.returncode == 1 and 'holds files (a.png) but no metadata.csv to add the samples to' in r.stderr and 'Generating' not in r.stderr, r.stderr
    (tmp_path/'notes').mkdir(); (tmp_path/'notes'/'metadata.csv').write_text('name,description\n')  # not the columns of a folder of samples
    r = cli('generate', '--model', trained/'m'/'best', '--prompt', 'x', '--append', '--out', f'{tmp_path}/notes/')
    assert r.returncode == 1 and 'names no file_name (nor image_file_name) and no caption (nor text) column' in r.stderr and 'Generating' not in r.stderr and 'drawn with seed' not in r.stderr, r.stderr
    (tmp_path/'afile').write_text('')
    r = cli('generate', '--model', trained/'m'/'best', '--prompt', 'x', '--out', f'{tmp_path}/afile/')
    assert r.returncode == 1 and 'is a file: save the samples into a new or empty folder' in r.stderr and 'Generating' not in r.stderr, r.stderr
    r = cli('generate', '--model', trained/'m'/'best', '--prompt', 'a blue square', '--format', 'folder', cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path/'generated'/'metadata.csv').exists(), r.stderr  # the default: generated/
    r = cli('generate', '--model', trained/'m'/'best', '--prompt', 'a red circle', '--num', '3', '--seed', '2', '--transparent', '--out', f'{tmp_path}/clear/')
    assert r.returncode == 0, r.stderr
    clear, opaque = (np.asarray(opened(tmp_path/d/first.name).convert('RGBA')) for d in ('clear', 'sprites'))  # the same sample, drawn again
    assert (clear[..., :3] == opaque[..., :3]).all() and (opaque[..., 3] == 255).all() and (clear[..., 3] == 0).any()
    assert (opaque[clear[..., 3] == 0][:, :3] == 252).all()  # only the background (the palette's white) is made transparent
    r = cli('generate', '--model', trained/'m'/'best', '--prompt', 'a red circle', '--scale', '2', '--max-tokens', '30', '--out', f'{tmp_path}/big/')
    assert r.returncode == 0 and 'at --scale 2, which build --like reads as larger images, resized, not pixel for pixel' in r.stdout and 'reads it as the model reads' not in r.stdout, r.stdout  # the demo model's images are read as they are
    r = cli('generate', '--model', trained/'m'/'best', '--prompt', 'x', '--transparent', '--out', tmp_path/'x.png')
    assert r.returncode == 1 and '--transparent makes the sprites of --format folder transparent' in r.stderr and 'Generating' not in r.stderr, r.stderr
    r = cli('generate', '--model', trained/'m'/'best', '--prompt', 'x', '--columns', '4', '--out', f'{tmp_path}/sheet/')
    assert r.returncode == 1 and '--columns=4: a folder of sprites holds a file per sample, each sprite alone, not a picture of them all; leave it out' in r.stderr and 'Generating' not in r.stderr, r.stderr
    r = cli('generate', '--model', trained/'m'/'best', '--prompt', 'x', '--grid', '--text', 'below', '--out', f'{tmp_path}/sheet/')
    assert r.returncode == 1 and "--grid, --text='below': a folder of sprites holds a file per sample" in r.stderr and 'Generating' not in r.stderr, r.stderr
    r = cli('generate', '--model', trained/'m'/'best', '--prompt', 'x', '--append', '--out', tmp_path/'x.png')
    assert r.returncode == 1 and '--append adds the samples to a folder of sprites' in r.stderr and 'Generating' not in r.stderr, r.stderr

def test_out_is_not_an_image_given(trained, tmp_path):
    "An --out that is one of the --image files (the default generated.png, captioned) is refused before drawing, the image kept; a link there is replaced, not its target."
    (tmp_path/'generated.png').write_bytes((trained/'red.png').read_bytes())
    (tmp_path/'alias.png').symlink_to(tmp_path/'generated.png')
    for given, args in (('generated.png', ('--image', 'generated.png')), ('alias.png', ('--image', 'red.png', '--image', 'alias.png', '--out', 'generated.png'))):
        (tmp_path/'red.png').write_bytes((trained/'red.png').read_bytes())
        r = cli('generate', '--model', trained/'m'/'best', '--max-tokens', '5', *args, cwd=tmp_path)
        assert r.returncode == 1 and f"--out 'generated.png' is --image '{given}', which the samples would replace; name another file (--out)" in r.stderr, r.stderr
        assert 'Generating' not in r.stderr and (tmp_path/'generated.png').read_bytes() == (trained/'red.png').read_bytes()
    r = cli('generate', '--model', trained/'m'/'best', '--max-tokens', '5', '--image', 'generated.png', '--out', 'alias.png', cwd=tmp_path)
    assert r.returncode == 0 and not (tmp_path/'alias.png').is_symlink() and (tmp_path/'generated.png').read_bytes() == (trained/'red.png').read_bytes(), r.stderr

def test_a_reader_that_stops_early_is_no_error(trained, tmp_path):
    "Output to a pipe whose reader has gone (as after `| head -1`): status 0, no broken-pipe message; --quiet draws no progress bar."
    r, w = os.pipe(); os.close(r)
    p = subprocess.run([sys.executable, '-m', 'pixelbytes.main', 'generate', '--model', str(trained/'m'/'best'), '--prompt', 'x', '--num', '3',
                        '--max-tokens', '5', '--quiet', '--out', str(tmp_path/'x.png')], stdout=w, stderr=subprocess.PIPE, text=True, env=ENV, timeout=600)
    os.close(w)
    assert p.returncode == 0 and 'Broken pipe' not in p.stderr and 'Exception ignored' not in p.stderr and 'Generating' not in p.stderr, p.stderr

def test_rendering_and_crop_options(trained, tmp_path):
    "--scale and --grid shape the picture; --crop / --no-crop say how --image is read (the demo model reads whole images)."
    framed = trained/'framed.png'
    im = Image.new('RGB', (12, 10), 'white'); im.paste((248, 56, 0), (4, 4, 8, 8)); im.save(framed)
    size = {}
    for name, opts in (('plain', []), ('small', ['--scale', '2']), ('grid', ['--grid']), ('cropped', ['--crop']), ('whole', ['--no-crop'])):
        r = cli('generate', '--model', trained/'m'/'best', '--image', framed, '--temperature', '0', '--max-tokens', '5', *opts, '--out', tmp_path/f'{name}.png')
        assert r.returncode == 0, r.stderr
        size[name] = opened(tmp_path/f'{name}.png').size
    assert size['small'][0] < size['plain'][0] and size['whole'] == size['plain'] and size['cropped'][1] < size['plain'][1]
    assert (tmp_path/'grid.png').read_bytes() != (tmp_path/'plain.png').read_bytes()

def test_default_output_name(trained, tmp_path):
    r = cli('generate', '--model', trained/'m'/'best', '--max-tokens', '20', cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path/'generated.png').exists(), r.stderr

def test_a_broken_link_at_out_is_named(tmp_path):
    (tmp_path/'gone').symlink_to(tmp_path/'nowhere')  # refused before the model is loaded: no model needed
    for out in (f'{tmp_path}/gone/', tmp_path/'gone'):
        r = cli('generate', '--model', tmp_path/'no-model', '--format', 'folder', '--out', out)
        assert r.returncode == 1 and f"gone is a link to {tmp_path/'nowhere'}, which does not exist" in r.stderr and 'is a file' not in r.stderr, r.stderr

def test_a_drawn_seed_is_told(trained, tmp_path):
    r = cli('generate', '--model', trained/'m'/'best', '--num', '3', '--out', tmp_path/'a.png')  # no --seed: one is drawn
    seed = re.search(r'\(seed (\d+): --seed \1 draws them again\)', r.stdout)
    assert r.returncode == 0 and seed, (r.stdout, r.stderr)
    r = cli('generate', '--model', trained/'m'/'best', '--num', '3', '--seed', seed[1], '--out', tmp_path/'b.png')
    assert r.returncode == 0 and 'draws them again' not in r.stdout
    assert (tmp_path/'a.png').read_bytes() == (tmp_path/'b.png').read_bytes()
    if hasattr(os, 'mkfifo'):  # a pipe at --out: found when the samples, drawn, are saved
        os.mkfifo(tmp_path/'pipe.png')
        r = cli('generate', '--model', trained/'m'/'best', '--max-tokens', '5', '--out', tmp_path/'pipe.png')
        assert r.returncode == 1 and 'is not a regular file' in r.stderr, r.stderr
        assert re.search(r'the samples were drawn with seed (\d+): --seed \1 draws them again', r.stderr), r.stderr  # the way to draw them again, kept

def test_output_name_sets_the_format(trained, tmp_path):
    r = cli('generate', '--model', trained/'m'/'best', '--max-tokens', '20', '--out', tmp_path/'samples')
    assert r.returncode == 0 and opened(tmp_path/'samples').format == 'PNG', r.stderr  # no extension: a PNG
    assert f"a PNG picture of them all (--out {tmp_path/'samples'}/ writes a file per sample in a folder)" in r.stdout, r.stdout
    r = cli('generate', '--model', trained/'m'/'best', '--max-tokens', '20', '--format', 'svg', '--out', tmp_path/'vector')
    assert r.returncode == 0 and '<svg' in (tmp_path/'vector').read_text() and 'PNG picture' not in r.stdout, r.stdout  # --format names it: no hint of PNG
    r = cli('generate', '--model', trained/'m'/'best', '--max-tokens', '20', '--out', tmp_path/'s.gif')
    assert r.returncode == 1 and "unknown image format '.gif'" in r.stderr and 'Generating' not in r.stderr  # refused before drawing
    # its remedy is a name, not --format, which a .gif refuses as well
    assert "; name the file .png, .jpg or .svg; or .json for what the samples hold, or a name that ends in / for a folder of PNG files" in r.stderr, r.stderr
    r = cli('generate', '--model', trained/'m'/'best', '--max-tokens', '20', '--out', tmp_path/'s.gif', '--format', 'png')
    assert r.returncode == 1 and "--format='png' does not match the extension of" in r.stderr and r.stderr.rstrip().endswith('; name the file .png'), r.stderr
    r = cli('generate', '--model', trained/'m'/'best', '--max-tokens', '20', '--out', tmp_path/'s.png')
    assert r.returncode == 0 and opened(tmp_path/'s.png').format == 'PNG', r.stderr

def test_output_paths(trained, tmp_path):
    r = cli('generate', '--model', trained/'m'/'best', '--max-tokens', '20', '--out', tmp_path)
    assert r.returncode == 1 and 'is a folder; name a file in it (--format folder writes' in r.stderr and 'Generating' not in r.stderr, r.stderr
    r = cli('generate', '--model', trained/'m'/'best', '--max-tokens', '20', '--out', tmp_path/'new'/'deeper'/'g.png')
    assert r.returncode == 0 and (tmp_path/'new'/'deeper'/'g.png').exists(), r.stderr  # missing folders are made, as build and train do
    r = cli('generate', '--model', trained/'m'/'best', '--image', tmp_path)
    assert r.returncode == 1 and 'a folder; name an image file in it' in r.stderr, r.stderr
    (tmp_path/'afile').write_text('')
    r = cli('generate', '--model', trained/'m'/'best', '--max-tokens', '20', '--out', tmp_path/'afile'/'g.png')
    assert r.returncode == 1 and "is a file, not a folder" in r.stderr and 'Generating' not in r.stderr, r.stderr  # said before drawing

@pytest.mark.parametrize('args, message', [
    (['--model', '/no/such/model'], 'is not a folder saved with save_pretrained'),
    (['--model', 'someone/missing-model'], 'cannot load model someone/missing-model'),
    (['--model', '{m1}', '--prompt', 'A Red Circle'], "character 'A' at position 0 is not in the 'v1' vocabulary"),
    (['--model', '{m}', '--image', '{notimg}'], 'not an image'),
    (['--model', '{nomodel}', '--image', '{red}', '{notimg}'], "notimg.png': not an image"),  # before the model is loaded: no model is there
    (['--model', '{m}', '--image', '{red}', '--rows', '99'], '--rows=99: the image has'),
    (['--model', '{m}', '--image', '/no/such.png'], 'no such file'),
    (['--model', '{m}', '--image', '{red}', '--image', '/no/such.png'], "--image '/no/such.png': no such file"),
    (['--model', '{m}', '--prompts', '/no/such.txt'], "--prompts '/no/such.txt': no such file"),
    (['--model', '{m}', '--prompts', ''], "--prompts '': name a text file of captions"),  # an unset shell variable: not whole items drawn without a word
    (['--model', '{m}', '--prompts', '{blank}'], 'holds no captions: write one a line'),
    (['--model', '{m}', '--prompts', '{latin1}'], 'latin1.txt\', line 2: byte 0xe9 is not UTF-8'),
    (['--model', '{m1}', '--prompts', '{upper}'], "upper.txt', line 3: character 'A' at position 0 is not in the 'v1' vocabulary"),
    (['--model', '{m1}', '--prompt', 'a red circle', '--prompt', 'A cross'], "--prompt 'A cross': character 'A' at position 0 is not in the 'v1' vocabulary"),
    (['--model', '{m}', '--prompt', 'a red circle', '--prompt', ' '], "--prompt ' ' is blank: give a caption, or leave --prompt out"),
    (['--model', '{m}', '--prompt', 'x', '--image', '{red}'], 'an --image together complete the image after the caption: give --rows'),
    (['--model', '{run}'], 'it holds a training run: load'),
    (['--model', '{m}', '--prompt', 'x', '--top-p', '-0.1'], '--top-p=-0.1 must be in (0, 1], or left out (no nucleus filtering)'),
    (['--model', '{m}', '--prompt', 'x', '--top-k', '0'], '--top-k=0 must be 1 or more, or left out (no top-k filtering)'),
    (['--model', '{m}', '--prompt', 'x', '--temperature', '-1'], '--temperature=-1.0 must be 0'),
    (['--model', '{m}', '--prompt', 'x', '--num', '0'], '--num=0'),
    (['--model', '{m}', '--prompt', 'x', '--max-tokens', '-5'], '--max-tokens=-5'),
    (['--model', '{m}', '--prompt', 'x', '--batch-size', '0'], '--batch-size=0: draw at least 1 sample at a time'),
    (['--model', '{m}', '--prompt', 'x', '--format', 'svg'], "--format='svg' does not match the extension"),
    (['--model', '{m}', '--prompt', 'x', '--scale', '0'], '--scale=0: give 1 or more'),
    (['--model', '{m}', '--prompt', 'x', '--columns', '0'], '--columns=0: give 1 or more'),
    (['--model', '{m}', '--prompt', 'x', '--rows', '2'], '--rows=2: completes the first rows of an --image'),
    (['--model', '{m}', '--prompt', 'x', '--no-crop'], '--no-crop: says how an image is read, and there is none; give the image (--image=FILE), or leave crop out'),
    (['--model', '{m}', '--prompt', 'a', '--prompt', 'b', '--image', '{red}', '{red}', '{red}', '--rows', '1'], '--prompt/--prompts give 2 captions and --image 3 files'),
    (['--model', '{m}', '--prompt', 'x', '--device', 'gpu'], "device 'gpu' is not a device: give 'cpu', 'cuda' or 'cuda:N'"),
])
def test_generate_bad_input(trained, args, message, tmp_path):
    (tmp_path/'notimg.png').write_text('hello')
    (tmp_path/'blank.txt').write_text('\n  \n')
    (tmp_path/'latin1.txt').write_bytes('a red circle\na café\n'.encode('latin-1'))
    (tmp_path/'upper.txt').write_text('a red circle\n\nA Red Circle\n')
    subs = {'m': trained/'m'/'best', 'm1': trained/'m1'/'best', 'run': trained/'m', 'notimg': tmp_path/'notimg.png', 'nomodel': tmp_path/'no-model', 'red': trained/'red.png',
            **{k: tmp_path/f'{k}.txt' for k in ('blank', 'latin1', 'upper')}}
    r = cli('generate', *[a.format(**subs) for a in args], '--out', tmp_path/'x.png')
    assert r.returncode != 0 and message in r.stderr and 'Traceback' not in r.stderr, r.stderr

def test_evaluate_command(trained, tmp_path):
    r = cli('evaluate', '--model', trained/'m'/'best', '--data', trained/'demo', '--metrics', 'accuracy', 'precision', 'recall', 'bleu',
            '--num', '2', '--seed', '7', '--temperature', '0.5', '--batch-size', '8', '--device', 'cpu', '--out', tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'accuracy' in r.stdout and 'pixel' in r.stdout and 'bleu' in r.stdout
    saved = json.loads((tmp_path/'evaluation.json').read_text())
    assert {r['metric'] for r in saved['rows']} == {'accuracy', 'precision', 'recall', 'bleu'}
    assert saved['settings']['split'] == 'test' and saved['settings']['num'] == 2 and saved['settings']['data'] == str(trained/'demo')
    assert (saved['settings']['seed'], saved['settings']['temperature'], saved['settings']['batch_size'], saved['settings']['device']) == (7, 0.5, 8, 'cpu')
    assert (tmp_path/'evaluation.csv').read_text().startswith('metric,modality,value,n')
    assert 'Evaluating' in r.stderr
    r = cli('evaluate', '--model', trained/'m'/'best', '--data', trained/'demo', '--metrics', 'loss', '--split', 'train', '--out', tmp_path, '--quiet', '--resamples', '200')
    assert r.returncode == 0 and 'evaluation-train.csv' in r.stdout and 'Evaluating' not in r.stderr, r.stderr  # --quiet: no progress bar
    assert r.stdout.splitlines()[0].endswith('95% CI') and 'bits        all' in r.stdout  # the table, with its intervals
    assert {k: json.loads((tmp_path/'evaluation-train.json').read_text())['settings'][k] for k in ('split', 'resamples')} == {'split': 'train', 'resamples': 200}
    assert json.loads((tmp_path/'evaluation.json').read_text())['settings']['split'] == 'test'  # the test scores stay

def test_evaluate_bad_input(trained):
    r = cli('evaluate', '--model', trained/'m'/'best', '--data', trained/'demo-v1')
    assert r.returncode == 1 and f"is not that of {trained/'demo-v1'}" in r.stderr
    r = cli('evaluate', '--model', trained/'m'/'best', '--data', trained/'demo', '--metrics', 'perplexity')
    assert r.returncode == 2 and 'invalid choice' in r.stderr
    r = cli('evaluate', '--model', trained/'m'/'best', '--data', trained/'demo', '--out', trained/'red.png')
    assert r.returncode == 1 and 'is a file; choose a folder' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    r = cli('evaluate', '--model', trained/'m'/'best', '--data', trained/'demo', '--device', 'cuda:x')
    assert r.returncode == 1 and "device 'cuda:x' is not a device" in r.stderr and 'Traceback' not in r.stderr, r.stderr
    r = cli('evaluate', '--model', trained/'m'/'best', '--data', trained/'demo', '--batch-size', '0')
    assert r.returncode == 1 and '--batch-size must be 1 or more' in r.stderr, r.stderr
    r = cli('evaluate', '--model', trained/'m'/'best', '--data', trained/'demo', '--resamples', '10')
    assert r.returncode == 1 and '--resamples=10: give 100 or more' in r.stderr and 'Traceback' not in r.stderr, r.stderr

def test_generated_text_cannot_act_on_the_terminal(trained, tmp_path):
    import torch
    from pixelbytes.models import PixelBytesModel, PixelBytesConfig
    m = PixelBytesModel(PixelBytesConfig(backbone='lstm', d_model=32, n_layers=1))
    esc = int(m.tokenizer.byte_to_id[27])
    with torch.no_grad(): m.norm.weight.zero_(); m.norm.bias.fill_(1.0); m.head.weight.zero_(); m.head.weight[esc] = 1.0  # ESC, whatever it reads
    m.save_pretrained(tmp_path/'esc')
    r = cli('generate', '--model', tmp_path/'esc', '--image', trained/'red.png', '--max-tokens', '20', '--seed', '0', '--out', tmp_path/'o.png')
    assert r.returncode == 0 and r.stdout.startswith('0: ' + '?' * 20) and '\x1b' not in r.stdout, r.stdout

def test_an_image_is_read_with_the_models_resample(trained, tmp_path):
    import shutil
    from pixelbytes.generate import build_prompt
    from pixelbytes.models import PixelBytesModel
    # the demo model, as if its data had been built with --resample box: it reads an image given as that data was read
    shutil.copytree(trained/'m'/'best', tmp_path/'boxed')
    config = json.loads((tmp_path/'boxed'/'config.json').read_text()); (tmp_path/'boxed'/'config.json').write_text(json.dumps({**config, 'resample': 'box'}))
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 60, 3), dtype=np.uint8)).save(tmp_path/'grain.png')
    prompts = {}
    for name, model in (('nearest', trained/'m'/'best'), ('box', tmp_path/'boxed')):
        r = cli('generate', '--model', model, '--image', tmp_path/'grain.png', '--seed', '1', '--max-tokens', '1', '--out', tmp_path/f'{name}.json')
        assert r.returncode == 0, r.stderr
        g, = json.loads((tmp_path/f'{name}.json').read_text())
        prompts[name] = g['ids'][:g['n_prompt']]
    model = PixelBytesModel.from_pretrained(tmp_path/'boxed')
    assert model.config.resample == 'box' and prompts['box'] != prompts['nearest']
    assert prompts['box'] == build_prompt(model.tokenizer, image=tmp_path/'grain.png', crop=model.config.crop, resample='box')[0]

STOPPED_IN = """
import signal, sys
import pixelbytes.files as f, pixelbytes.generate as g, pixelbytes.main as m
where = sys.argv[1]
real = getattr(f if where == '_replace' else g, where)
def ctrl_c(*args, **kw):
    signal.raise_signal(signal.SIGINT)  # in a save's renames, held to their end; in the drawing of a sprite, taken at once
    return real(*args, **kw)
setattr(f if where == '_replace' else g, where, ctrl_c)
m.main(sys.argv[2:])
"""

@pytest.mark.skipif(sys.platform == 'win32', reason='raise_signal(SIGINT) on Windows')
def test_a_stop_says_whether_the_samples_were_saved(trained, tmp_path):
    "A Ctrl-C as the samples are saved: after their renames, all are in --out, and so said (--append again would add them twice); before, none, and the drawn seed is said."
    def stopped(where, *args):
        return subprocess.run([sys.executable, '-c', STOPPED_IN, where, 'generate', '--model', trained/'m'/'best', '--num', '2', '--quiet', *map(str, args)],
                              capture_output=True, text=True, env=ENV, timeout=600)
    folder = f"{tmp_path/'s'}/"  # a Path drops the '/' that makes --out a folder of sprites
    assert cli('generate', '--model', trained/'m'/'best', '--num', '2', '--seed', '1', '--out', folder).returncode == 0
    r = stopped('_replace', '--seed', '2', '--out', folder, '--append')
    assert f"pixelbytes generate: interrupted after the save: {tmp_path/'s'}/ holds all 2 samples; the same command again would add them a second time" in r.stderr, r.stderr
    assert len((tmp_path/'s'/'metadata.csv').read_text().splitlines()) == 5  # the header, and both saves' rows
    r = stopped('_sprite', '--out', folder, '--append')  # no --seed: one is drawn
    assert re.search(r'the samples were drawn with seed (\d+): --seed \1 draws them again\npixelbytes generate: interrupted\n$', r.stderr), r.stderr
    assert len((tmp_path/'s'/'metadata.csv').read_text().splitlines()) == 5  # none added
    r = stopped('_replace', '--out', tmp_path/'one.png')
    assert re.search(rf"interrupted after the save: {re.escape(str(tmp_path/'one.png'))} holds all 2 samples \(seed \d+\)\n$", r.stderr), r.stderr

def test_an_image_over_the_pixel_limit(trained, tmp_path):
    "generate has no --max-pixels: its remedy is a smaller file, and the file scaled down is read."
    big = Image.new('RGB', (4100, 4100), 'white'); big.paste((248, 56, 0), (0, 0, 2050, 2050)); big.save(tmp_path/'big.png')
    r = cli('generate', '--model', trained/'m'/'best', '--image', tmp_path/'big.png', '--out', tmp_path/'g.png')
    assert r.returncode == 1 and 'pixels is over the limit of 16,777,216 (scale the file down first)' in r.stderr and 'max' not in r.stderr, r.stderr
    big.resize((410, 410), Image.Resampling.NEAREST).save(tmp_path/'big.png')
    r = cli('generate', '--model', trained/'m'/'best', '--image', tmp_path/'big.png', '--max-tokens', '5', '--out', tmp_path/'g.png')
    assert r.returncode == 0 and (tmp_path/'g.png').exists(), r.stderr

def test_a_request_outside_the_training_data_is_warned_of(trained, tmp_path):
    "The demo model trained on 16x16 sprites and captions of 42 bytes at most: a larger image or a longer caption gets one warning naming both sizes; a model saved before the record, none."
    Image.new('RGB', (25, 20), (248, 56, 0)).save(tmp_path/'wide.png')
    r = cli('generate', '--model', trained/'m'/'best', '--image', tmp_path/'wide.png', '--max-tokens', '5', '--out', tmp_path/'w.png')
    said = [l for l in r.stderr.splitlines() if 'trained on' in l]  # (the model's windows of 64 tokens are warned of apart)
    assert r.returncode == 0 and said == ['pixelbytes generate: warning: the image is 25x20 pixels (width x height, as the model reads it), wider or taller than any image it '
                                          'trained on (16 pixels wide and 16 high at most): the model never learnt from such a request, and what it makes of it may mean nothing'], r.stderr
    r = cli('generate', '--model', trained/'m'/'best', '--prompt', 'a red circle above a blue square ' * 3, '--max-tokens', '5', '--out', tmp_path/'p.png')
    assert r.returncode == 0 and 'warning: the caption is 100 tokens, longer than any caption the model trained on (43 tokens at most)' in r.stderr, r.stderr
    # the same model as saved before the record: no warning
    import shutil
    shutil.copytree(trained/'m'/'best', tmp_path/'old')
    config = json.loads((tmp_path/'old'/'config.json').read_text()); del config['trained_on']
    (tmp_path/'old'/'config.json').write_text(json.dumps(config))
    r = cli('generate', '--model', tmp_path/'old', '--image', tmp_path/'wide.png', '--prompt', 'a red circle above a blue square ' * 3, '--rows', '2', '--max-tokens', '5', '--out', tmp_path/'o.png')
    assert r.returncode == 0 and 'trained on' not in r.stderr, r.stderr
