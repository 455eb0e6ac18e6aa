"System tests of the command line: the `build` task through a subprocess, as users run it."
import json, os, subprocess, sys
from pathlib import Path
import pytest
from PIL import Image

def run(*args, cwd=None, **more_env):
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', **more_env}
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)

def test_help_lists_tasks():
    r = run(sys.executable, '-m', 'pixelbytes.main', '--help')
    assert r.returncode == 0
    for task in ('build', 'train', 'evaluate', 'generate'): assert task in r.stdout
    r = run(sys.executable, '-m', 'pixelbytes.main')  # no task: a usage error, as argparse reports one
    assert r.returncode == 2 and all(task in r.stderr for task in ('build', 'train', 'evaluate', 'generate'))

def test_build_demo_with_console_script(tmp_path):
    r = run('pixelbytes', 'build', '--path', 'demo', '--out', str(tmp_path/'demo'))
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path/'demo'/'build_report.json').read_text())
    assert report['rows_written'] == report['rows_read'] > 100 and report['rows_skipped'] == 0
    assert 'rows read' in r.stdout

def test_default_path_falls_back_to_demo_offline(tmp_path):
    r = run(sys.executable, '-m', 'pixelbytes.main', 'build', '--out', str(tmp_path/'d'))
    assert r.returncode == 0, r.stderr
    assert 'pixelbytes build: warning: the Hub dataset' in r.stderr and 'building the built-in demo set instead' in r.stderr  # said on stderr, not among the results
    assert json.loads((tmp_path/'d'/'build_report.json').read_text())['source'] == 'demo'
    for asked in (['--config-name', 'small'], ['--revision', 'v2']):  # something asked of the Hub dataset: the demo set is not it
        r = run(sys.executable, '-m', 'pixelbytes.main', 'build', '--out', str(tmp_path/'e'), *asked)
        assert r.returncode == 1 and 'could not load dataset' in r.stderr and not (tmp_path/'e').exists(), r.stderr

@pytest.fixture
def folder(tmp_path):
    src = tmp_path/'imgs'; src.mkdir()
    Image.new('RGB', (8, 8), (248, 56, 0)).save(src/'a.png')
    (src/'b.png').write_bytes(b'\x89PNG broken')
    (src/'metadata.csv').write_text('file_name,caption\na.png,a red block\nb.png,broken\n')
    return src

def test_a_warning_made_an_error_is_one_line(tmp_path):
    "PYTHONWARNINGS=error (a CI's setting) makes PixelBytes' own warning the command's error: one line, status 1, nothing built."
    r = run('pixelbytes', 'build', '--path', 'demo', '--out', str(tmp_path/'d'), '--max-size', '64', '--quiet', PYTHONWARNINGS='error')
    assert r.returncode == 1 and r.stderr.startswith('pixelbytes build: error: --max-size 64 is above 63') and r.stderr.count('\n') == 1, r.stderr
    assert r.stderr.endswith(' (a warning, made an error by -W error or PYTHONWARNINGS)\n') and not (tmp_path/'d').exists()

def test_bad_row_is_skipped_and_reported(folder, tmp_path):
    r = run('pixelbytes', 'build', '--path', str(folder), '--out', str(tmp_path/'o'), '--test-size', '0')
    assert r.returncode == 0, r.stderr
    assert 'skipped row 1: b.png' in r.stdout

def test_on_error_raise_names_row_without_traceback(folder, tmp_path):
    r = run('pixelbytes', 'build', '--path', str(folder), '--out', str(tmp_path/'o'), '--on-error', 'raise')
    assert r.returncode == 1 and 'row 1: b.png' in r.stderr and 'Traceback' not in r.stderr
    assert not (tmp_path/'o').exists() and not [p for p in tmp_path.iterdir() if p.name.startswith('.')]

@pytest.mark.parametrize('args, message', [
    (['--path', '/no/such/dir'], "there is no folder '/no/such/dir' here"),
    (['--path', 'demo', '--palette', '/no/palette.gpl'], 'does not exist'),
    (['--path', 'demo', '--test-size', '1.5'], '--test-size must be a fraction in [0, 1) or a whole number of items, not 1.5'),
    (['--path', 'demo', '--vocab', 'v1', '--on-error', 'raise'], None),
    (['--path', 'demo', '--revision', 'v1'], "revision='v1' is for a Hub dataset; 'demo' is the built-in demo set"),
    (['--path', 'demo', '--max-pixels', '0'], '--max-pixels must be a whole number of pixels, at least 1, not 0'),
])
def test_bad_input_is_one_clear_line(args, message, tmp_path):
    r = run(sys.executable, '-m', 'pixelbytes.main', 'build', '--out', str(tmp_path/'o'), *args)
    if message is None: assert r.returncode == 0, r.stderr  # demo captions are all inside v1
    else: assert r.returncode == 1 and message in r.stderr and 'Traceback' not in r.stderr

def test_task_help():
    for task in ('build', 'train', 'evaluate', 'generate'):
        r = run(sys.executable, '-m', 'pixelbytes.main', task, '--help')
        assert r.returncode == 0 and '--' in r.stdout

def test_characters_the_console_lacks_are_escaped(tmp_path):
    "A file name or caption that the console's encoding cannot show is escaped: the command does not fail after its work is done."
    src = tmp_path/'src'; src.mkdir()
    Image.new('RGB', (8, 8), (248, 56, 0)).save(src/'a.png')
    (src/'metadata.csv').write_text('file_name,caption\na.png,赤いブロック\nない.png,ないファイル\n', encoding='utf-8')
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'PYTHONIOENCODING': 'ascii'}
    r = subprocess.run(['pixelbytes', 'build', '--path', str(src), '--out', str(tmp_path/'o'), '--test-size', '0'],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0 and 'skipped row 1: \\u306a\\u3044.png: file not found' in r.stdout, (r.stdout, r.stderr)

def test_build_like_a_model(tmp_path):
    from pixelbytes.models import PixelBytesConfig, PixelBytesModel
    from pixelbytes.tokenizer import Tokenizer
    PixelBytesModel(PixelBytesConfig(backbone='lstm', d_model=8, n_layers=1, tokenizer=Tokenizer('v1', max_size=12).to_dict())).save_pretrained(tmp_path/'m')
    r = run(sys.executable, '-m', 'pixelbytes.main', 'build', '--path', 'demo', '--out', str(tmp_path/'d'), '--like', str(tmp_path/'m'))
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path/'d'/'build_report.json').read_text())
    assert (report['vocab'], report['max_size'], report['like']) == ('v1', 12, f'{tmp_path.name}/m')
    r = run(sys.executable, '-m', 'pixelbytes.main', 'build', '--path', 'demo', '--out', str(tmp_path/'e'), '--like', str(tmp_path/'m'), '--max-size', '20')
    # the model as it was given, and each setting as the option that sets it
    assert r.returncode == 1 and f"--like={str(tmp_path/'m')!r} reads images as the model does, --max-size=12; --max-size=20 says otherwise: give one or the other" in r.stderr and 'Traceback' not in r.stderr, r.stderr
    r = run(sys.executable, '-m', 'pixelbytes.main', 'build', '--path', 'demo', '--out', str(tmp_path/'e'), '--like', str(tmp_path/'m'), '--max-size', '25')
    assert r.returncode == 1 and '--max-size=25 says otherwise' in r.stderr, r.stderr  # build's default, given: not taken for one left out

def test_resample_is_recorded_and_taken_from_the_model(tmp_path):
    import numpy as np
    from pixelbytes.models import PixelBytesConfig, PixelBytesModel
    src = tmp_path/'photos'; src.mkdir()  # a photo's grain, 60 pixels a side: scaled down to 25, nearest and box read it otherwise
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 60, 3), dtype=np.uint8)).save(src/'a.png')
    (src/'metadata.csv').write_text('file_name,caption\na.png,grain\n')
    reports, ids = {}, {}
    for how in ('nearest', 'box'):
        r = run('pixelbytes', 'build', '--path', str(src), '--out', str(tmp_path/how), '--test-size', '0', '--resample', how, '--quiet')
        assert r.returncode == 0, r.stderr
        reports[how] = json.loads((tmp_path/how/'build_report.json').read_text())
    assert (reports['nearest']['resample'], reports['box']['resample']) == ('nearest', 'box')
    from pixelbytes.data import load_built
    assert load_built(tmp_path/'nearest').train[0]['input_ids'] != load_built(tmp_path/'box').train[0]['input_ids']
    assert 'scaled down with box' in r.stdout
    r = run('pixelbytes', 'build', '--path', str(src), '--out', str(tmp_path/'bad'), '--resample', 'smooth')
    assert r.returncode == 2 and "--resample: invalid choice: 'smooth'" in r.stderr and not (tmp_path/'bad').exists(), r.stderr
    PixelBytesModel(PixelBytesConfig(backbone='lstm', d_model=8, n_layers=1, resample='box')).save_pretrained(tmp_path/'m')
    r = run('pixelbytes', 'build', '--path', str(src), '--out', str(tmp_path/'like'), '--test-size', '0', '--like', str(tmp_path/'m'), '--quiet')
    assert r.returncode == 0 and json.loads((tmp_path/'like'/'build_report.json').read_text())['resample'] == 'box', r.stderr
    r = run('pixelbytes', 'build', '--path', str(src), '--out', str(tmp_path/'unlike'), '--like', str(tmp_path/'m'), '--resample', 'nearest')
    assert r.returncode == 1 and "reads images as the model does, --resample='box'; --resample='nearest' says otherwise" in r.stderr and 'Traceback' not in r.stderr, r.stderr

def test_palette_of_an_image_over_the_pixel_limit(tmp_path):
    "palette has no --max-pixels: its remedy is a smaller file, and the file scaled down is read."
    big = Image.new('RGB', (4100, 4100), 'white'); big.paste((248, 56, 0), (0, 0, 2050, 2050)); big.save(tmp_path/'big.png')
    r = run('pixelbytes', 'palette', '--path', str(tmp_path), '--out', str(tmp_path/'p.hex'), '--quiet')
    assert r.returncode == 1 and 'pixels is over the limit of 16,777,216 (scale the file down first)' in r.stderr and 'max' not in r.stderr, r.stderr
    big.resize((410, 410), Image.Resampling.NEAREST).save(tmp_path/'big.png')
    r = run('pixelbytes', 'palette', '--path', str(tmp_path), '--out', str(tmp_path/'p.hex'), '--quiet')
    assert r.returncode == 0 and (tmp_path/'p.hex').read_text().split() == ['f83800', 'ffffff'], r.stderr

def test_palette_resample(tmp_path):
    r = run('pixelbytes', 'palette', '--path', str(tmp_path), '--resample', 'sharp')
    assert r.returncode == 2 and "--resample: invalid choice: 'sharp'" in r.stderr, r.stderr

STOPPED_AS_REPORTED = """
import signal, sys
import pixelbytes.data as D, pixelbytes.main as m
real = D.format_report
def ctrl_c(*args, **kw):
    signal.raise_signal(signal.SIGINT)  # as build prints its report: the dataset is in place
    return real(*args, **kw)
D.format_report = ctrl_c
sys.exit(m.main(sys.argv[1:]))
"""

@pytest.mark.skipif(sys.platform == 'win32', reason='raise_signal(SIGINT) on Windows')
def test_a_stop_as_build_prints_its_report(tmp_path):
    "A Ctrl-C as build (without --quiet) prints its report says that the dataset is in place, as one after it does."
    r = run(sys.executable, '-c', STOPPED_AS_REPORTED, 'build', '--path', 'demo', '--out', str(tmp_path/'demo'))
    assert r.returncode == 130 and r.stderr.endswith(f"pixelbytes build: interrupted after the build: {tmp_path/'demo'} holds the dataset\n"), r.stderr
    assert (tmp_path/'demo'/'dataset_dict.json').exists()

def test_a_rebuild_keeps_the_split_and_says_what_changed(tmp_path):
    "A rebuild into the same folder (--overwrite) keeps the split of the build it replaces, --split-of that of another folder, --new-split draws one anew; each report says so."
    assert run('pixelbytes', 'build', '--path', 'demo', '--out', str(tmp_path/'d'), '--quiet').returncode == 0
    for args, says in ((['--out', str(tmp_path/'d'), '--overwrite'], '(its split kept)'), (['--out', str(tmp_path/'e'), '--split-of', str(tmp_path/'d')], '(its split kept)'),
                       (['--out', str(tmp_path/'d'), '--overwrite', '--new-split'], '(drawn anew, the same)')):
        r = run('pixelbytes', 'build', '--path', 'demo', '--quiet', *args)
        assert r.returncode == 0 and 'the same rows' in r.stdout and f'every row it had, kept, is in the split it was in {says}' in r.stdout, (args, r.stdout, r.stderr)
    r = run('pixelbytes', 'build', '--path', 'demo', '--out', str(tmp_path/'f'), '--split-of', str(tmp_path/'d'), '--new-split')
    assert r.returncode == 2 and 'not allowed with argument' in r.stderr
    r = run('pixelbytes', 'build', '--path', 'demo', '--out', str(tmp_path/'f'), '--split-of', str(tmp_path/'nowhere'))
    assert r.returncode == 1 and 'split_of (--split-of): ' in r.stderr and not (tmp_path/'f').exists(), r.stderr
