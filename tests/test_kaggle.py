"""The Kaggle kernel (kaggle-kernel-metadata.json + kaggle/pixelbytes-t4x2.ipynb) and its push script, offline."""
import importlib.util, json, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
METADATA = ROOT/'kaggle-kernel-metadata.json'
_spec = importlib.util.spec_from_file_location('kaggle_push', ROOT/'tools'/'kaggle_push.py')
kp = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(kp)


def meta(): return json.loads(METADATA.read_text())

def broken(tmp_path, change=None, drop=(), notebook=None):
    "A copy of the kernel in `tmp_path` with the metadata changed by `change` (a dict), without the keys `drop`, and optionally another notebook."
    m = {k: v for k, v in meta().items() if k not in drop}
    m.update(change or {})
    nb = tmp_path/'kaggle'/'pixelbytes-t4x2.ipynb'
    nb.parent.mkdir(exist_ok=True)
    if notebook is None: shutil.copyfile(ROOT/'kaggle'/'pixelbytes-t4x2.ipynb', nb)
    else: nb.write_text(notebook if isinstance(notebook, str) else json.dumps(notebook))
    path = tmp_path/'kaggle-kernel-metadata.json'
    path.write_text(json.dumps(m))
    return path

def problems_of(tmp_path, **kw): return kp.validate_metadata(broken(tmp_path, **kw))


def test_repository_metadata_is_valid():
    assert kp.validate_metadata(METADATA) == []

def test_repository_metadata_values():
    m = meta()
    for k in ('id', 'title', 'code_file', 'language', 'kernel_type', 'is_private', 'enable_gpu', 'enable_internet',
              'machine_shape', 'dataset_sources', 'competition_sources', 'kernel_sources'):
        assert k in m, k
    user, slug = m['id'].split('/')
    assert slug == kp.slugify(m['title']) == 'pixelbytes-t4x2'
    assert m['language'] == 'python' and m['kernel_type'] == 'notebook'
    for k in ('is_private', 'enable_gpu', 'enable_internet'): assert isinstance(m[k], bool), k
    assert m['enable_gpu'] is True and m['enable_internet'] is True and m.get('enable_tpu', False) is False
    assert m['machine_shape'] == 'NvidiaTeslaT4'  # the Kaggle CLI's id for "GPU T4 x2"
    assert m['dataset_sources'] == m['competition_sources'] == m['kernel_sources'] == []

def test_notebook_is_clean_nbformat4():
    m = meta()
    nb = json.loads((ROOT/m['code_file']).read_text())
    assert nb['nbformat'] == 4 and nb['cells']
    assert all(c['cell_type'] in ('code', 'markdown') for c in nb['cells'])
    code = [c for c in nb['cells'] if c['cell_type'] == 'code']
    assert all(c['outputs'] == [] and c['execution_count'] is None for c in code)
    src = '\n'.join(''.join(c['source']) for c in code)
    for needle in ('pip install -q "pixelbytes @ git+https://github.com/pixelbytes/pixelbytes"', "'ffurfaro/PixelBytes-Pokemon'",
                   'build(path=', 'launch(', 'nprocs=', 'torch.cuda.device_count()', 'evaluate(', 'save_generations(', 'GenerateWidget(model)'):
        assert needle in src, needle

def test_notebook_code_compiles():
    "Every code cell is valid Python once its IPython magics are left out."
    nb = json.loads((ROOT/meta()['code_file']).read_text())
    for i, c in enumerate(nb['cells']):
        if c['cell_type'] != 'code': continue
        src = '\n'.join(l for l in ''.join(c['source']).splitlines() if not l.lstrip().startswith(('%', '!')))
        compile(src, f'cell {i}', 'exec')


def test_dry_run_stages_the_kernel(tmp_path, capsys):
    out = tmp_path/'stage'
    assert kp.main(['--dry-run', '--stage-dir', str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ['kernel-metadata.json', 'pixelbytes-t4x2.ipynb']
    staged = json.loads((out/'kernel-metadata.json').read_text())
    assert staged == {**meta(), 'code_file': 'pixelbytes-t4x2.ipynb'}
    assert (out/'pixelbytes-t4x2.ipynb').read_bytes() == (ROOT/'kaggle'/'pixelbytes-t4x2.ipynb').read_bytes()
    assert kp.validate_metadata(out/'kernel-metadata.json') == []
    printed = capsys.readouterr().out
    assert f'kaggle kernels push -p {out}' in printed and 'NvidiaTeslaT4' in printed

def test_dry_run_command_line(tmp_path):
    "The script runs as a command, needs no Kaggle CLI nor credentials for --dry-run, and --owner changes only the user."
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'kaggle_push.py'), '--dry-run', '--stage-dir', str(tmp_path), '--owner', 'someone'],
                       capture_output=True, text=True, env={'PATH': '', 'HOME': str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path/'kernel-metadata.json').read_text())['id'] == 'someone/pixelbytes-t4x2'

def test_bad_metadata_refused_before_staging(tmp_path, capsys):
    path = broken(tmp_path, change={'enable_gpu': 'yes'})
    assert kp.main(['--metadata', str(path), '--dry-run', '--stage-dir', str(tmp_path/'stage')]) == 2
    assert 'enable_gpu must be a JSON boolean' in capsys.readouterr().err
    assert not (tmp_path/'stage').exists()

def test_push_without_cli_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(kp.shutil, 'which', lambda name: None)
    assert kp.main(['--stage-dir', str(tmp_path/'stage')]) == 3
    assert 'Kaggle CLI is not installed' in capsys.readouterr().err

def test_push_without_credentials_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(kp.shutil, 'which', lambda name: '/usr/bin/kaggle')
    for v in ('KAGGLE_API_TOKEN', 'KAGGLE_USERNAME', 'KAGGLE_KEY', 'KAGGLE_CONFIG_DIR', 'XDG_CONFIG_HOME'): monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv('HOME', str(tmp_path))
    monkeypatch.setattr(kp.subprocess, 'run', lambda *a, **k: pytest.fail('must not run the CLI without credentials'))
    assert kp.main(['--stage-dir', str(tmp_path/'stage')]) == 3
    assert 'no Kaggle credentials found' in capsys.readouterr().err

def test_push_runs_the_cli(tmp_path, monkeypatch):
    "With a CLI and credentials, the script runs `kaggle kernels push -p FOLDER` on the staged folder (a fake CLI here)."
    calls = []
    class R:
        def __init__(self, rc, out=''): self.returncode, self.stdout, self.stderr = rc, out, ''
    def run(cmd, **kw):
        calls.append(cmd)
        if cmd[1:] == ['--version']: return R(0, 'Kaggle CLI 2.2.5')
        assert (Path(cmd[-1])/'kernel-metadata.json').is_file() and (Path(cmd[-1])/'pixelbytes-t4x2.ipynb').is_file()
        return R(0)
    monkeypatch.setattr(kp.shutil, 'which', lambda name: '/usr/bin/kaggle')
    monkeypatch.setenv('KAGGLE_API_TOKEN', 'x')
    monkeypatch.setattr(kp.subprocess, 'run', run)
    assert kp.main([]) == 0
    assert calls[-1][:4] == ['/usr/bin/kaggle', 'kernels', 'push', '-p']
    assert not Path(calls[-1][-1]).exists()  # the temporary folder is removed afterwards

def test_old_cli_refused(tmp_path, monkeypatch, capsys):
    "A CLI older than 1.8.4 does not send machine_shape: the run would not get GPU T4 x2."
    class R: returncode, stdout, stderr = 0, 'Kaggle API 1.7.4.5', ''
    monkeypatch.setattr(kp.shutil, 'which', lambda name: '/usr/bin/kaggle')
    monkeypatch.setenv('KAGGLE_API_TOKEN', 'x')
    monkeypatch.setattr(kp.subprocess, 'run', lambda cmd, **kw: R() if cmd[1:] == ['--version'] else pytest.fail('pushed with an old CLI'))
    assert kp.main(['--stage-dir', str(tmp_path/'stage')]) == 3
    assert 'ignores machine_shape' in capsys.readouterr().err


@pytest.mark.parametrize('kw, message', [
    (dict(drop=('title',)), "missing required key 'title'"),
    (dict(drop=('code_file',)), "missing required key 'code_file'"),
    (dict(drop=('id',)), "missing required key 'id'"),
    (dict(drop=('language',)), "missing required key 'language'"),
    (dict(drop=('kernel_type',)), "missing required key 'kernel_type'"),
    (dict(change={'id': 'pixelbytes-t4x2'}), "must be 'user/slug'"),
    (dict(change={'id': 'pixelbytes/pixelbytes-t4x2/3'}), "must be 'user/slug'"),
    (dict(change={'id': 'pixelbytes/PixelBytes_T4x2'}), 'must be lowercase letters and digits'),
    (dict(change={'id': 'pixel bytes/pixelbytes-t4x2'}), 'user name'),
    (dict(change={'id': 'pixelbytes/pixelbytes-t4'}), "gives the slug 'pixelbytes-t4x2', not the id's 'pixelbytes-t4'"),
    (dict(change={'title': 'PxB'}), 'at least 5 characters'),
    (dict(change={'language': 'julia'}), "language 'julia' must be one of python, r, rmarkdown"),
    (dict(change={'kernel_type': 'app'}), "kernel_type 'app' must be one of script, notebook"),
    (dict(change={'is_private': 'true'}), 'is_private must be a JSON boolean (true or false), not "true"'),
    (dict(change={'enable_internet': 1}), 'enable_internet must be a JSON boolean'),
    (dict(change={'enable_tpu': True}), 'enable_gpu and enable_tpu cannot both be true'),
    (dict(change={'machine_shape': 'NvidiaTeslaT4Dual'}), "'NvidiaTeslaT4' is GPU T4 x2"),
    (dict(change={'enable_gpu': False}), "machine_shape 'NvidiaTeslaT4' is a GPU: set enable_gpu to true"),
    (dict(change={'dataset_sources': 'ffurfaro/PixelBytes-Pokemon'}), 'dataset_sources must be a list of non-empty strings'),
    (dict(change={'kernel_sources': ['just-a-slug']}), "kernel_sources: 'just-a-slug' must be 'user/slug'"),
    (dict(change={'enable_gpus': True}), "unknown key 'enable_gpus'"),
    (dict(change={'code_file': 'kaggle/missing.ipynb'}), "code_file 'kaggle/missing.ipynb' does not exist"),
    (dict(change={'code_file': 'kaggle-kernel-metadata.json'}), 'must be a .ipynb file'),
    (dict(notebook='{"cells": ['), 'is not a readable JSON notebook'),
    (dict(notebook={'nbformat': 3, 'nbformat_minor': 0, 'metadata': {}, 'cells': [{'cell_type': 'code', 'source': '', 'outputs': []}]}), 'not an nbformat 4 notebook'),
    (dict(notebook={'nbformat': 4, 'nbformat_minor': 5, 'metadata': {}, 'cells': []}), 'has no cells'),
    (dict(notebook={'nbformat': 4, 'nbformat_minor': 5, 'metadata': {}, 'cells': [{'cell_type': 'heading', 'source': 'x'}]}), 'cell 0 is not a valid cell'),
    (dict(notebook={'nbformat': 4, 'nbformat_minor': 5, 'metadata': {}, 'cells': [
        {'cell_type': 'code', 'source': 'print(1)', 'metadata': {}, 'execution_count': 1,
         'outputs': [{'output_type': 'stream', 'name': 'stdout', 'text': '1\n'}]}]}), 'cell 0 has outputs'),
])
def test_bad_metadata_reported(tmp_path, kw, message):
    problems = problems_of(tmp_path, **kw)
    assert any(message in p for p in problems), problems

def test_unreadable_metadata_reported(tmp_path):
    assert 'does not exist' in kp.validate_metadata(tmp_path/'nope.json')[0]
    (tmp_path/'bad.json').write_text('{"id": ')
    assert 'is not valid JSON' in kp.validate_metadata(tmp_path/'bad.json')[0]
    (tmp_path/'list.json').write_text('[]')
    assert 'must hold a JSON object' in kp.validate_metadata(tmp_path/'list.json')[0]

def test_every_problem_reported_at_once(tmp_path):
    problems = problems_of(tmp_path, change={'language': 'julia', 'is_private': 'false', 'machine_shape': 'T4x2'}, drop=('title',))
    assert len(problems) == 4, problems

@pytest.mark.parametrize('title, slug', [('PixelBytes T4x2', 'pixelbytes-t4x2'), ('  Héllo,  World! ', 'hello-world'), ("Don't panic", 'dont-panic')])
def test_slugify(title, slug):
    assert kp.slugify(title) == slug
