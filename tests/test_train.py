"System tests of training: the command line, exact resume after SIGKILL, and two-process DDP (gloo, CPU)."
import json, os, re, shutil, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch
from safetensors.torch import load_file
from pixelbytes.train import load_state  # the history as train saves it (text) read back as dicts

ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
TINY = ['--model', 'lstm', '--dim', '32', '--depth', '1', '--seq-length', '64', '--batch-size', '8', '--learning-rate', '0.01']

def cli(*args, **kw):
    return subprocess.run([sys.executable, '-m', 'pixelbytes.main', *args], capture_output=True, text=True, env=ENV, timeout=600, **kw)

def weights(folder): return load_file(Path(folder)/'model.safetensors')

def kill_mid_epoch(cmd, state: Path, group: bool = False) -> dict:
    "Run `cmd` and SIGKILL it (with `group`, its whole process group) once `state` holds a checkpoint of step 14 or later that is not at an epoch end; that state."
    p = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=group)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and p.poll() is None:
            if state.exists():
                s = load_state(state)
                if s['step'] >= 14 and s['batch'] > 0: break
            time.sleep(0.05)
        assert p.poll() is None, 'training finished before it could be killed'
    finally:
        if not group: p.kill()
        else:  # launch's parent and its workers
            try: os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError: pass  # all gone already
        p.wait()
    return load_state(state)

# SIGKILL, process groups and a signal sent to a child as Ctrl-C would: POSIX only (Windows terminates the process)
POSIX = pytest.mark.skipif(sys.platform == 'win32', reason='POSIX signals')

@pytest.fixture(scope='module')
def one_epoch(demo, tmp_path_factory):
    "`train --epochs 1` of the tiny model on the demo set by the command line, run once for the tests that read or start from such a run: its folder and result."
    out = tmp_path_factory.mktemp('one-epoch')/'m'
    return out, cli('train', '--data', str(demo), '--out', str(out), '--epochs', '1', *TINY)

@pytest.fixture(scope='module')
def one_epoch_quiet(demo, tmp_path_factory):
    "The same run with --quiet, in a folder named base (a model fine-tuned from it says so): its folder and result."
    out = tmp_path_factory.mktemp('one-epoch-quiet')/'base'
    return out, cli('train', '--data', str(demo), '--out', str(out), '--epochs', '1', '--quiet', *TINY)

def a_copy_of(run, tmp_path) -> Path:
    "A finished one-epoch run (a fixture's), copied to tmp_path/'m' for a test that changes it."
    folder, r = run
    assert r.returncode == 0, r.stderr
    return Path(shutil.copytree(folder, tmp_path/'m', symlinks=True))

def test_train_command(one_epoch, one_epoch_quiet):
    (m, r), (_, q) = one_epoch, one_epoch_quiet
    assert r.returncode == 0 and 'Training lstm' in r.stderr, r.stderr
    assert q.returncode == 0 and 'Training' not in q.stderr and 'best at step' in q.stdout, q.stderr  # --quiet: no progress bar
    assert re.match(r'ended at step \d+: epoch 1 of 1 is done\n', q.stdout), q.stdout  # but why it ended: a script tells a finished run from a paused one
    assert 'best at step' in r.stdout and (m/'best'/'model.safetensors').exists()
    assert 'ended at step' in r.stdout and 'epoch 1 of 1 is done' in r.stdout  # why it stopped
    assert (m/'curves.png').read_bytes()[:4] == b'\x89PNG'

def test_train_errors_are_one_line(demo, tmp_path):
    r = cli('train', '--data', str(tmp_path/'nowhere'), '--out', str(tmp_path/'m'))
    assert r.returncode == 1 and 'does not exist; build a dataset there first' in r.stderr and 'Traceback' not in r.stderr
    r = cli('train', '--data', str(demo), '--out', str(tmp_path/'m'), '--model', 'transformer', '--dim', '30', '--heads', '4')
    assert r.returncode == 1 and '--dim=30 must be a multiple of twice --heads=4, 8, for the transformer' in r.stderr

def test_resume_alone_goes_on_with_the_saved_options(demo, tmp_path):
    r = cli('train', '--data', str(demo), '--out', str(tmp_path/'m'), '--max-minutes', '0.02', *TINY)
    assert r.returncode == 0, r.stderr
    r = cli('train', '--data', str(demo), '--out', str(tmp_path/'m'), '--resume')  # the model options and the budget as saved
    assert r.returncode == 1 and 'its whole time budget' in r.stderr, r.stderr
    r = cli('train', '--data', str(demo), '--out', str(tmp_path/'m'), '--resume', '--dim', '64')
    assert r.returncode == 1 and 'differs from the saved one: --dim 32 -> 64' in r.stderr, r.stderr

def test_fine_tune_from_a_model(demo, one_epoch_quiet, tmp_path):
    base, made = one_epoch_quiet  # read only: a fine-tuned run starts from base/best and leaves it as it is
    assert made.returncode == 0, made.stderr
    r = cli('train', '--data', str(demo), '--out', str(tmp_path/'tuned'), '--init', str(base/'best'), '--epochs', '1', '--learning-rate', '0.001', '--quiet')
    assert r.returncode == 0 and 'causal lstm, 1 layer, d_model 32' in r.stdout and 'fine-tuned from base/best' in r.stdout, r.stdout + r.stderr
    r = cli('train', '--data', str(demo), '--out', str(tmp_path/'other'), '--init', str(base/'best'), '--dim', '64')
    assert r.returncode == 1 and 'another architecture than the config (--dim 32 -> 64)' in r.stderr and 'Traceback' not in r.stderr, r.stderr

def test_no_validation_split(demo, tmp_path):
    r = cli('train', '--data', str(demo), '--out', str(tmp_path/'m'), '--epochs', '1', '--val-fraction', '0', *TINY)
    assert r.returncode == 0 and 'no validation split' in r.stdout and 'nan' not in r.stdout, r.stdout + r.stderr

def test_launch_checks_in_the_parent(demo, tmp_path):
    from pixelbytes.train import launch, TrainingError
    with pytest.raises(TrainingError, match='multiple of processes x grad_accum = 2 x 1'):
        launch(dict(backbone='lstm', batch_size=7), demo, tmp_path/'x', nprocs=2, progress=False)
    with pytest.raises(ValueError, match='epochs must be 1 or more'): launch(dict(epochs=0), demo, tmp_path/'x', nprocs=2)
    assert not (tmp_path/'x').exists()
    left = tmp_path/'r'/'.replaced-x'; left.mkdir(parents=True); (left/'train_state.pt').write_bytes(b'junk')  # a killed replacing run's
    with pytest.raises(TrainingError, match='is corrupt or truncated'):  # put back before the parent checks: not 'nothing to resume'
        launch(dict(backbone='lstm'), demo, tmp_path/'r', nprocs=2, resume=True)
    assert (tmp_path/'r'/'train_state.pt').exists() and not left.exists()

@POSIX
def test_resume_after_sigkill_matches_uninterrupted_run(demo, tmp_path):
    args = ['--data', str(demo), '--epochs', '3', '--eval-every', '7', *TINY]
    full = cli('train', '--out', str(tmp_path/'full'), *args)
    assert full.returncode == 0, full.stderr
    killed_at = kill_mid_epoch([sys.executable, '-m', 'pixelbytes.main', 'train', '--out', str(tmp_path/'killed'), *args], tmp_path/'killed'/'train_state.pt')
    assert 0 < killed_at['step'] < load_state(tmp_path/'full'/'train_state.pt')['step']
    resumed = cli('train', '--out', str(tmp_path/'killed'), '--resume', *args)
    assert resumed.returncode == 0, resumed.stderr
    a, b = weights(tmp_path/'full'/'last'), weights(tmp_path/'killed'/'last')
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ha = load_state(tmp_path/'full'/'train_state.pt')['history']
    hb = load_state(tmp_path/'killed'/'train_state.pt')['history']
    strip = lambda h: [{k: v for k, v in r.items() if k != 'minutes'} for r in h]
    assert strip(ha) == strip(hb)

@POSIX
@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM, getattr(signal, 'SIGUSR1', None)], ids=['ctrl-c', 'sigterm', 'sigusr1'])
def test_ctrl_c_stops_with_a_message(demo, tmp_path, sig):
    "SIGINT (Ctrl-C), SIGTERM (a job's time limit) or SIGUSR1 (SLURM's warning before it, `--signal=USR1@120`) mid-training: the process ends by that signal (a shell loop stops too), a line saying what was kept (the run at the step it stopped at) and how to go on, no traceback, no temporary file; --resume goes on."
    args = ['--data', str(demo), '--out', str(tmp_path/'m'), '--epochs', '50', '--eval-every', '20', *TINY]
    state = tmp_path/'m'/'train_state.pt'
    p = subprocess.Popen([sys.executable, '-m', 'pixelbytes.main', 'train', *args], env=ENV, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and p.poll() is None and not state.exists(): time.sleep(0.05)
        assert p.poll() is None, 'training finished before it could be interrupted'
        p.send_signal(sig)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None: p.kill()
    assert p.returncode == -sig, err
    assert 'interrupted at step' in err and 'continue with resume=True (--resume)' in err and 'Traceback' not in err, err
    assert not list((tmp_path/'m').glob('.*.tmp-*')), list((tmp_path/'m').iterdir())
    saved = load_state(state)
    assert re.search(rf"interrupted at step {saved['step']}: .* holds the checkpoints of step {saved['step']},", err), (saved['step'], err)
    r = cli('train', *args, '--epochs', str(saved['epoch'] + 1), '--resume')  # to the end of the epoch it was in
    assert r.returncode == 0 and load_state(state)['step'] > saved['step'], r.stderr

@POSIX
@pytest.mark.parametrize('how', ['sigterm', 'pause'])
def test_a_stop_at_the_last_step_says_the_run_ended(demo, tmp_path, how):
    "SIGTERM, or stop_after's pause, that lands on the step where the run ends: the run is saved whole, and the words do not send one to --resume, which refuses a run that has ended."
    script = tmp_path/'stopped_at_the_end.py'
    script.write_text(f"""
import os, signal, time, types
import pixelbytes.train as t
rate, late = t.lr_factor, types.SimpleNamespace(**vars(time))
def stopped(cfg, step, total, elapsed=0.0):
    if {how!r} == 'sigterm' and step == total - 1: os.kill(os.getpid(), signal.SIGTERM)  # in the last step
    if {how!r} == 'pause' and step == total - 2: late.time = lambda: time.time() + 3600  # this call's minutes up at the last step's end
    return rate(cfg, step, total, elapsed)
t.lr_factor, t.time = stopped, late
from pixelbytes.main import run
run()
""")
    out = tmp_path/'m'
    r = subprocess.run([sys.executable, str(script), 'train', '--data', str(demo), '--out', str(out), '--epochs', '1', '--eval-every', '50',
                        '--stop-after', '30', *TINY], capture_output=True, text=True, env=ENV, timeout=600)
    saved = load_state(out/'train_state.pt')
    assert saved['epoch'] == 1 and saved['batch'] == 0 and saved['history'][-1]['step'] == saved['step'], r.stderr[-3000:]
    assert 'with resume=True' not in r.stdout + r.stderr, (r.stdout, r.stderr[-3000:])
    if how == 'sigterm':
        assert r.returncode == -signal.SIGTERM, r.stderr[-3000:]
        assert re.search(rf"interrupted at step {saved['step']}: .* holds the checkpoints of step {saved['step']}, where the run ended \(epoch 1 of 1 is done\)", r.stderr), r.stderr[-3000:]
    else: assert r.returncode == 0 and f"ended at step {saved['step']}: epoch 1 of 1 is done" in r.stdout, (r.stdout, r.stderr[-3000:])
    assert not [p.name for p in out.iterdir() if p.name.startswith('.')]

@POSIX
def test_a_run_killed_in_its_first_save_is_replaced_by_the_next(demo, tmp_path):
    "SIGKILL (a job's KillWait run out, the OOM killer) while the first checkpoint is saved: best/ with no state is left, and the requeued job's --resume auto starts again rather than refuse it."
    out, args = tmp_path/'m', ['--data', str(demo), '--epochs', '1', '--resume', 'auto', *TINY]
    killed = f"""
import os, signal, sys
import pixelbytes.train as t
def killed(*a, **kw): os.kill(os.getpid(), signal.SIGKILL)
t._save_state = killed  # after best/ and metrics.csv, before the state
from pixelbytes.main import main
main(['train', '--out', {str(out)!r}, *{args!r}])
"""
    r = subprocess.run([sys.executable, '-c', killed], capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == -signal.SIGKILL and (out/'best').is_dir() and not (out/'train_state.pt').exists(), r.stderr[-3000:]
    r = cli('train', '--out', str(out), *args)
    assert r.returncode == 0 and load_state(out/'train_state.pt')['step'] > 0, r.stderr
    assert not [p.name for p in out.iterdir() if p.name.startswith('.')]  # neither the mark nor the files set aside are left
    (out/'train_state.pt').unlink()  # a finished run whose state was deleted: still refused, not replaced
    r = cli('train', '--out', str(out), *args)
    assert r.returncode == 1 and 'but no train_state.pt to resume from' in r.stderr, r.stderr

@POSIX
def test_ctrl_c_before_the_first_checkpoint_keeps_the_run_it_replaces(demo, one_epoch, tmp_path):
    "--overwrite over a run, then Ctrl-C before the new run's first checkpoint: the old run is back in --out, and the message says so."
    out = a_copy_of(one_epoch, tmp_path)
    before = {p.name: p.read_bytes() for p in (out/'last').iterdir()}, (out/'train_state.pt').read_bytes()
    p = subprocess.Popen([sys.executable, '-m', 'pixelbytes.main', 'train', '--data', str(demo), '--out', str(out), '--overwrite',
                          '--epochs', '50', '--eval-every', '100000', *TINY], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and p.poll() is None and not list(out.glob('.replaced-*')): time.sleep(0.05)
        assert p.poll() is None, 'training ended before it could be interrupted'
        time.sleep(1)  # a few steps in
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None: p.kill()
    assert p.returncode == -signal.SIGINT and 'no checkpoint to resume from was saved yet (the first evaluation saves one); the run it was to replace is kept' in err, err
    assert ({p.name: p.read_bytes() for p in (out/'last').iterdir()}, (out/'train_state.pt').read_bytes()) == before
    assert not list(out.glob('.replaced-*'))

def test_two_processes_match_one(demo, tmp_path):
    code = f'''
import torch
torch.set_num_threads(1)
from pixelbytes.train import train, launch
cfg = dict(backbone='mamba', d_model=32, n_layers=1, seq_length=64, batch_size=8, epochs=1, eval_every=5, learning_rate=0.01,
           dropout=0.0)  # dropout masks are drawn for each process's share of a batch: equal results need none
if __name__ == '__main__':
    launch(cfg, {str(demo)!r}, {str(tmp_path/'two')!r}, nprocs=2, progress=False)
    train(cfg, {str(demo)!r}, {str(tmp_path/'one')!r}, progress=False)
'''
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    one, two = (load_state(tmp_path/d/'train_state.pt') for d in ('one', 'two'))
    assert one['step'] == two['step'] > 5
    for h1, h2 in zip(one['history'], two['history']):
        assert abs(h1['train_loss'] - h2['train_loss']) < 1e-4 and abs(h1['val_loss'] - h2['val_loss']) < 1e-4
    w1, w2 = weights(tmp_path/'one'/'last'), weights(tmp_path/'two'/'last')
    assert max((w1[k] - w2[k]).abs().max().item() for k in w1) < 1e-4

GRU_MODULE = '''
import torch, torch.nn as nn
from pixelbytes.models import register_backbone

@register_backbone('gru')
class GRUBackbone(nn.Module):
    state_batch_dim = 1
    def __init__(self, cfg):
        super().__init__()
        self.rnn = nn.GRU(cfg.d_model, cfg.d_model, cfg.n_layers, batch_first=True)
    def forward(self, x, return_state=False):
        y, h = self.rnn(x)
        return (y, h) if return_state else y
    def init_state(self, batch, device=None, dtype=None):
        return torch.zeros(self.rnn.num_layers, batch, self.rnn.hidden_size, device=device, dtype=dtype)
    def step(self, x, h):
        y, h = self.rnn(x[:, None], h)
        return y[:, 0], h
'''

def test_launch_trains_a_backbone_of_your_own(demo, tmp_path):
    "A backbone registered in the caller's own module is registered in each process launch starts, and the run saves a model of it."
    (tmp_path/'mygru.py').write_text(GRU_MODULE)
    code = f'''
import torch
torch.set_num_threads(1)
import mygru
from pixelbytes.train import launch
if __name__ == '__main__':
    model, history = launch(dict(backbone='gru', d_model=16, n_layers=1, seq_length=64, batch_size=8, epochs=1, eval_every=5),
                            {str(demo)!r}, {str(tmp_path/'gru')!r}, nprocs=2, progress=False)
    assert type(model.backbone) is mygru.GRUBackbone and len(history) >= 2, history
    assert len(model.generate([3, 4], 5, seed=0)[0]) == 7
'''
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env={**ENV, 'PYTHONPATH': str(tmp_path)}, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((tmp_path/'gru'/'best'/'config.json').read_text())['backbone'] == 'gru'

def test_two_processes_on_a_clock_stop_together(demo, tmp_path):
    "A time budget (max_minutes) and stop_after with 2 processes: the first process's clock decides for both, so they stop at one step, with no hang."
    code = f'''
import torch
torch.set_num_threads(1)
from pixelbytes.train import launch
if __name__ == '__main__':
    _, h = launch(dict(backbone='lstm', d_model=16, n_layers=1, seq_length=64, batch_size=8, epochs=1000, max_minutes=0.05),
                  {str(demo)!r}, {str(tmp_path/'timed')!r}, nprocs=2, progress=False)
    _, p = launch(dict(backbone='lstm', d_model=16, n_layers=1, seq_length=64, batch_size=8, epochs=1000),
                  {str(demo)!r}, {str(tmp_path/'paused')!r}, nprocs=2, progress=False, stop_after=0.02)
    print(h[-1]['epoch'] < 1000, p[-1]['epoch'] < 1000, h.finished, p.finished)  # the first process's word for how the run stands
    print(h.ended); print(p.ended)
'''
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=ENV, timeout=300, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.split('\n')[0].split() == ['True', 'True', 'True', 'False'], r.stdout + r.stderr[-3000:]
    assert re.match(r'ended at step \d+: its time budget of 0.05 minutes ran out\npaused at step \d+: this call', r.stdout.split('\n', 1)[1]), r.stdout
    r = cli('train', '--data', str(demo), '--out', str(tmp_path/'paused'), '--resume', '--stop-after', '0.01', '--epochs', '1000', '--quiet')
    assert r.returncode == 0 and re.match(r"paused at step \d+: this call's 0.01 minutes \(stop_after\) are up; the run goes on with resume=True \(--resume\)\n", r.stdout), r.stdout + r.stderr

def test_the_command_line_finds_an_installed_backbone(demo, tmp_path):
    "A package that declares its backbone in the entry-point group pixelbytes.backbones: train --model knows it, and generate loads its model."
    (tmp_path/'mygru.py').write_text(GRU_MODULE)
    info = tmp_path/'mygru-0.1.dist-info'; info.mkdir()  # as pip installs it
    (info/'METADATA').write_text('Metadata-Version: 2.1\nName: mygru\nVersion: 0.1\n')
    (info/'entry_points.txt').write_text('[pixelbytes.backbones]\ngru = mygru:GRUBackbone\n')
    env = {**ENV, 'PYTHONPATH': str(tmp_path)}
    run = lambda *a: subprocess.run([sys.executable, '-m', 'pixelbytes.main', *map(str, a)], capture_output=True, text=True, env=env, timeout=600)
    assert 'gru' in run('train', '--help').stdout
    r = run('train', '--data', demo, '--out', tmp_path/'m', '--model', 'gru', '--epochs', '1', '--dim', '16', '--depth', '1', '--seq-length', '64', '--batch-size', '8', '--quiet')
    assert r.returncode == 0 and 'causal gru' in r.stdout, r.stderr
    r = run('generate', '--model', tmp_path/'m'/'best', '--prompt', 'a red circle', '--max-tokens', '10', '--seed', '0', '--out', tmp_path/'g.json')
    assert r.returncode == 0 and json.loads((tmp_path/'g.json').read_text())[0]['seed'] == 0, r.stderr

@POSIX
def test_two_process_resume_with_dropout_matches_uninterrupted_run(demo, tmp_path):
    "Two processes with dropout, killed (SIGKILL) after a mid-epoch checkpoint and resumed, end as an uninterrupted run."
    run = lambda out, resume: [sys.executable, '-c', f'''
import torch
torch.set_num_threads(1)
from pixelbytes.train import launch
if __name__ == '__main__':
    launch(dict(backbone='lstm', d_model=32, n_layers=1, seq_length=64, batch_size=8, epochs=3, eval_every=7, learning_rate=0.01,
                dropout=0.3), {str(demo)!r}, {str(out)!r}, nprocs=2, resume={resume}, progress=False)
''']
    full = subprocess.run(run(tmp_path/'full', False), capture_output=True, text=True, env=ENV, timeout=600)
    assert full.returncode == 0, full.stderr[-3000:]
    killed_at = kill_mid_epoch(run(tmp_path/'killed', False), tmp_path/'killed'/'train_state.pt', group=True)
    assert 0 < killed_at['step'] < load_state(tmp_path/'full'/'train_state.pt')['step']
    resumed = subprocess.run(run(tmp_path/'killed', True), capture_output=True, text=True, env=ENV, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = weights(tmp_path/'full'/'last'), weights(tmp_path/'killed'/'last')
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

def test_two_processes_paused_and_resumed_match_an_uninterrupted_run(demo, tmp_path):
    "Two processes with dropout, paused (stop_after) again and again and resumed: the weights of an uninterrupted run; a pause between evaluations keeps its training sums (both processes'), and the rows match."
    run = lambda out, resume, pause: [sys.executable, '-c', f'''
import torch
torch.set_num_threads(1)
from pixelbytes.train import launch
if __name__ == '__main__':
    launch(dict(backbone='lstm', d_model=32, n_layers=1, seq_length=64, batch_size=16, epochs=1, eval_every=7, learning_rate=0.01,
                dropout=0.3), {str(demo)!r}, {str(out)!r}, nprocs=2, resume={resume}, progress=False, stop_after={pause})
''']
    full = subprocess.run(run(tmp_path/'full', False, None), capture_output=True, text=True, env=ENV, timeout=600)
    assert full.returncode == 0, full.stderr[-3000:]
    states = []
    while not states or states[-1]['epoch'] < 1:
        r = subprocess.run(run(tmp_path/'paused', bool(states), 0.012), capture_output=True, text=True, env=ENV, timeout=600)
        assert r.returncode == 0 and len(states) < 50, r.stderr[-3000:]
        states.append(load_state(tmp_path/'paused'/'train_state.pt'))
    assert len(states) > 3, len(states)
    a, b = weights(tmp_path/'full'/'last'), weights(tmp_path/'paused'/'last')
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = lambda state: [{k: v for k, v in row.items() if k != 'minutes'} for row in state['history']]
    whole = rows(load_state(tmp_path/'full'/'train_state.pt'))
    steps = {r['step'] for r in whole}  # all but the row of a pause before the first evaluation, which makes one
    assert [r for r in rows(states[-1]) if r['step'] in steps] == whole and any('train_sums' in st for st in states[:-1])

def test_launch_raises_a_workers_training_error(demo, tmp_path):
    code = f"""
import torch
torch.set_num_threads(1)
from pixelbytes.train import launch, TrainingError
if __name__ == '__main__':
    try: launch(dict(backbone='lstm', d_model=16, n_layers=1, learning_rate=1e30, weight_decay=0.0, warmup_steps=0, grad_clip=1e30), {str(demo)!r}, {str(tmp_path/'nan')!r}, nprocs=2, progress=False)
    except TrainingError as e: print('TrainingError:', e)
"""
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0 and 'TrainingError: the loss became nan' in r.stdout, (r.stdout, r.stderr[-3000:])

@POSIX
def test_interrupting_launch_stops_the_workers(demo, tmp_path):
    code = f"""
import multiprocessing, os, signal, threading, time, torch
torch.set_num_threads(1)
from pixelbytes.train import launch
if __name__ == '__main__':
    state = {str(tmp_path/'int'/'train_state.pt')!r}
    def interrupt():
        while not os.path.exists(state): time.sleep(0.2)  # a checkpoint: both workers are training
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5); os.kill(os.getpid(), signal.SIGINT)  # an impatient second interrupt, while the workers stop
    threading.Thread(target=interrupt, daemon=True).start()
    try: launch(dict(backbone='lstm', d_model=16, n_layers=1, epochs=1000, eval_every=25), {str(demo)!r}, {str(tmp_path/'int')!r}, nprocs=2, progress=False)
    except KeyboardInterrupt: print('alive', len(multiprocessing.active_children()))
    before = os.path.getmtime(state); time.sleep(3)
    print('unchanged', os.path.getmtime(state) == before)
"""
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=ENV, timeout=600)
    assert 'alive 0' in r.stdout and 'unchanged True' in r.stdout, (r.stdout, r.stderr[-3000:])
    assert 'interrupted: the 2 processes stopped' in r.stderr and 'continue with resume=True' in r.stderr  # the caller's own word
    step = load_state(tmp_path/'int'/'train_state.pt')['step']  # both workers stopped at one step, and the first saved the run there
    assert re.search(rf"interrupted at step {step}: .* holds the checkpoints of step {step},", r.stderr), (step, r.stderr[-3000:])

@POSIX
def test_interrupting_launch_before_its_first_checkpoint_keeps_the_run_it_replaces(demo, one_epoch, tmp_path):
    "launch with overwrite over a run, then Ctrl-C before the first checkpoint: the workers put the old run back, and the message says so."
    out = a_copy_of(one_epoch, tmp_path)
    before = (out/'train_state.pt').read_bytes()
    code = f"""
import os, signal, threading, time, torch
from pathlib import Path
torch.set_num_threads(1)
from pixelbytes.train import launch
if __name__ == '__main__':
    def interrupt():
        while not list(Path({str(out)!r}).glob('.replaced-*')): time.sleep(0.05)  # the old run moved aside: training starts
        time.sleep(1); os.kill(os.getpid(), signal.SIGINT)
    threading.Thread(target=interrupt, daemon=True).start()
    try: launch(dict(backbone='lstm', d_model=32, n_layers=1, seq_length=64, batch_size=8, epochs=1000, eval_every=100000), {str(demo)!r},
                {str(out)!r}, nprocs=2, overwrite=True, progress=False)
    except KeyboardInterrupt: print('interrupted')
"""
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=ENV, timeout=600)
    assert 'interrupted' in r.stdout and 'nothing was saved yet; the run it was to replace is kept' in r.stderr, (r.stdout, r.stderr[-3000:])
    assert (out/'train_state.pt').read_bytes() == before and not list(out.glob('.replaced-*'))

@POSIX
def test_a_worker_stopped_by_a_signal_stops_launch(demo, tmp_path):
    "Ctrl-C (SIGINT) sent to one of launch's workers, not to its caller: both stop at one step, and launch raises KeyboardInterrupt rather than return the unfinished run as if it had ended."
    state = tmp_path/'one'/'train_state.pt'
    code = f"""
import multiprocessing, os, signal, threading, time, torch
torch.set_num_threads(1)
from pixelbytes.train import launch
if __name__ == '__main__':
    def interrupt():
        while not os.path.exists({str(state)!r}): time.sleep(0.05)
        os.kill(multiprocessing.active_children()[-1].pid, signal.SIGINT)
    threading.Thread(target=interrupt, daemon=True).start()
    try: launch(dict(backbone='lstm', d_model=16, n_layers=1, epochs=1000, eval_every=25), {str(demo)!r}, {str(tmp_path/'one')!r}, nprocs=2, progress=False)
    except KeyboardInterrupt: print('stopped')
    else: print('returned')
"""
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=ENV, timeout=600)
    assert 'stopped' in r.stdout, (r.stdout, r.stderr[-3000:])
    step = load_state(state)['step']
    assert re.search(rf"interrupted at step {step}: .* holds the checkpoints of step {step},", r.stderr), (step, r.stderr[-3000:])

def test_torchrun_entry_point(demo, tmp_path):
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', '-m', 'pixelbytes.main',
                        'train', '--data', str(demo), '--out', str(tmp_path/'tr'), '--epochs', '1', *TINY],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count('best at step') == 1  # only rank 0 reports
    assert (tmp_path/'tr'/'best'/'model.safetensors').exists()

@pytest.fixture(scope='module')
def one_image(tmp_path_factory):
    "A built dataset whose items all show one image: training warns that it has no validation split."
    from PIL import Image
    from pixelbytes.data import build
    src = tmp_path_factory.mktemp('one')/'src'; src.mkdir()
    Image.new('RGB', (8, 8), (248, 56, 0)).save(src/'a.png')
    (src/'metadata.csv').write_text('file_name,caption\n' + ''.join(f'a.png,red block number {i}\n' for i in range(16)))
    build(src, out=src.parent/'built', test_size=0, progress=False)
    return src.parent/'built'

def test_checks_before_training_are_said_once(one_image, tmp_path):
    "Every process checks the run before training; under torchrun and launch a warning or an error is said once, not by each."
    torchrun = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', '-m', 'pixelbytes.main', 'train',
                '--data', str(one_image), '--epochs', '1', *TINY]
    r = subprocess.run([*torchrun, '--out', str(tmp_path/'tr')], capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0 and r.stderr.count('warning: every training item shows the same image') == 1, r.stderr[-3000:]
    r = subprocess.run([*torchrun, '--out', str(tmp_path/'bad'), '--batch-size', '7'], capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 1 and r.stderr.count('must be a multiple of processes x --grad-accum = 2 x 1') == 1, r.stderr[-3000:]
    code = f'''
from pixelbytes.train import launch
if __name__ == '__main__':
    launch(dict(backbone='lstm', d_model=16, n_layers=1, seq_length=64, batch_size=8, epochs=1), {str(one_image)!r}, {str(tmp_path/'l')!r},
           nprocs=2, progress=False)
'''
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0 and r.stderr.count('UserWarning: every training item shows the same image') == 1, r.stderr[-3000:]

def _stat(pid):
    "(state, parent pid) of a process, from /proc; None once it is gone."
    try: fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    except OSError: return None
    return fields[0], int(fields[1])

@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads /proc')
def test_workers_stop_when_torchrun_is_killed(demo, tmp_path):
    # torchrun starts its workers in a session of their own: SIGKILL to torchrun's process group does not reach them
    tr = subprocess.Popen([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', '-m', 'pixelbytes.main',
                           'train', '--data', str(demo), '--out', str(tmp_path/'ko'), '--epochs', '1000', '--eval-every', '5', '--patience', '0', *TINY],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, start_new_session=True)
    workers = []
    try:
        deadline = time.time() + 300
        while not (tmp_path/'ko'/'train_state.pt').exists() and time.time() < deadline: time.sleep(0.2)
        workers = [int(p.name) for p in Path('/proc').iterdir() if p.name.isdigit() and (_stat(p.name) or (0, 0))[1] == tr.pid]
        assert len(workers) == 2
        os.killpg(tr.pid, signal.SIGKILL); tr.wait()
        deadline = time.time() + 60
        running = lambda: [w for w in workers if (_stat(w) or ('Z',))[0] != 'Z']  # an exited worker nobody reaps stays a zombie
        while running() and time.time() < deadline: time.sleep(0.2)
        assert not running()
    finally:
        if tr.poll() is None: os.killpg(tr.pid, signal.SIGKILL); tr.wait()  # a failed check above leaves it running
        for w in workers:  # still ours: its parent is gone, so it was not reaped and its number not reused
            if (_stat(w) or ('Z',))[0] != 'Z': os.kill(w, signal.SIGKILL)

@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads /proc')
def test_workers_stop_when_launchs_caller_is_killed(demo, tmp_path):
    "A notebook kernel killed (restarted, or by the OOM killer) while launch trains: its workers end too (torch's spawn has Linux send them Ctrl-C), rather than go on holding the GPUs."
    code = f"""
import threading, time, torch
torch.set_num_threads(1)
from pixelbytes.train import launch
if __name__ == '__main__':
    # a kernel's threads (heartbeat, IOPub, control): as each dies the workers pass to the next, and are sent Ctrl-C again
    for _ in range(8): threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
    launch(dict(backbone='lstm', d_model=16, n_layers=1, epochs=1000, eval_every=5, patience=0), {str(demo)!r}, {str(tmp_path/'k')!r}, nprocs=2, progress=False)
"""
    log = tmp_path/'stderr.txt'
    with open(log, 'w') as err: caller = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.DEVNULL, stderr=err, env=ENV)
    children = []
    try:
        deadline = time.time() + 300
        while not (tmp_path/'k'/'train_state.pt').exists() and time.time() < deadline and caller.poll() is None: time.sleep(0.2)
        # the two workers, and multiprocessing's resource tracker, which ends with its caller on its own
        children = [int(p.name) for p in Path('/proc').iterdir() if p.name.isdigit() and (_stat(p.name) or (0, 0))[1] == caller.pid]
        assert len(children) >= 2, log.read_text()[-3000:]
        caller.kill(); caller.wait()
        deadline = time.time() + 60
        running = lambda: [c for c in children if (_stat(c) or ('Z',))[0] != 'Z']
        while running() and time.time() < deadline: time.sleep(0.2)
        assert not running()
        # the first worker says what it kept, on the stderr it shares with the caller; the next Ctrl-Cs neither cut that short nor leave tracebacks
        said = log.read_text()
        kept = re.search(r'interrupted at step \d+: .* holds the checkpoints of step (\d+),', said)
        assert kept and int(kept[1]) == load_state(tmp_path/'k'/'train_state.pt')['step'] and 'KeyboardInterrupt' not in said, said
    finally:
        if caller.poll() is None: caller.kill(); caller.wait()
        for c in children:
            if (_stat(c) or ('Z',))[0] != 'Z': os.kill(c, signal.SIGKILL)

@POSIX
def test_a_stop_while_the_first_process_draws_previews_stops_all_at_one_step(demo, tmp_path):
    "SIGTERM to the first of two processes (torchrun) as it draws the previews after a checkpoint: the other, waiting for it at the step's agreement, stops at that step too, rather than fail with its peer gone."
    script = tmp_path/'stopped_in_previews.py'
    script.write_text("""
import os, signal
import pixelbytes.train as t
draw = t._save_previews
def stopped(*a, **kw):
    if os.environ['RANK'] == '0' and not os.path.exists(os.environ['STOPPED']):
        open(os.environ['STOPPED'], 'w').close(); os.kill(os.getpid(), signal.SIGTERM)
    return draw(*a, **kw)
t._save_previews = stopped
from pixelbytes.main import run
run()
""")
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', str(script), 'train', '--data', str(demo),
                        '--out', str(tmp_path/'m'), '--epochs', '1', '--eval-every', '7', '--previews', '1', *TINY],
                       capture_output=True, text=True, env={**ENV, 'STOPPED': str(tmp_path/'stopped')}, timeout=600)
    step = load_state(tmp_path/'m'/'train_state.pt')['step']
    assert re.search(rf"interrupted at step {step}: .* holds the checkpoints of step {step},", r.stderr), r.stderr[-3000:]
    assert '[rank1]' not in r.stderr and 'Connection closed' not in r.stderr, r.stderr[-3000:]

@POSIX
def test_processes_stopped_by_a_signal_to_one_end_by_that_signal(demo, tmp_path):
    "SIGTERM to the second of two processes (torchrun) only: both stop at one step and both end by SIGTERM (the first ended by SIGINT), for a scheduler that reads their exit status."
    script = tmp_path/'one_stopped.py'
    script.write_text("""
import os, signal
import pixelbytes.train as t
step, calls = t._optimizer_step, []
def stepped(*a, **kw):
    calls.append(1)
    if os.environ['RANK'] == '1' and len(calls) == 12: os.kill(os.getpid(), signal.SIGTERM)
    return step(*a, **kw)
t._optimizer_step = stepped
from pixelbytes.main import run
run()
""")
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', str(script), 'train', '--data', str(demo),
                        '--out', str(tmp_path/'m'), '--epochs', '1', '--eval-every', '5', *TINY], capture_output=True, text=True, env=ENV, timeout=600)
    assert re.findall(r'exitcode\s*: (-?\d+) \(pid', r.stderr) == ['-15', '-15'], r.stderr[-3000:]  # torchrun's report of its two workers
    assert re.search(r"interrupted at step 12: .* holds the checkpoints of step 12,", r.stderr), r.stderr[-3000:]
    assert load_state(tmp_path/'m'/'train_state.pt')['step'] == 12

def test_a_callback_under_torchrun_is_called_by_the_first_process_and_stops_both(demo, tmp_path):
    "train(callback=...) under torchrun: the first process alone calls it, with each evaluation's row, and its True stops both processes at that evaluation; the state records the 2 processes."
    script = tmp_path/'called.py'
    script.write_text("""
import json, os, sys
from pixelbytes.train import train
calls = os.path.join(sys.argv[2], f"calls-{os.environ['RANK']}.jsonl")
def track(row):
    with open(calls, 'a') as f: f.write(json.dumps(row) + '\\n')
    return row['step'] >= 10
_, history = train(dict(backbone='lstm', d_model=16, n_layers=1, seq_length=64, batch_size=8, epochs=2, eval_every=5),
                   sys.argv[1], sys.argv[2] + '/m', callback=track, progress=False)
print(os.environ['RANK'], [r['step'] for r in history])
""")
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', str(script), str(demo), str(tmp_path)],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(r.stdout.split('\n')[:2]) == ['0 [5, 10]', '1 [5, 10]'], r.stdout  # both stopped at the evaluation of step 10
    assert sorted(p.name for p in tmp_path.glob('calls-*')) == ['calls-0.jsonl']  # the first process alone called it
    rows = [json.loads(l) for l in (tmp_path/'calls-0.jsonl').read_text().splitlines()]
    state = load_state(tmp_path/'m'/'train_state.pt')
    assert rows == state['history'] and state['step'] == 10 and state['environment']['processes'] == 2

FAILING = """
import atexit, os, sys, time
import pixelbytes.train as t
def fail(e):
    atexit.register(time.sleep, 3600)  # this process does not end: NCCL's teardown waits so on the collectives it left
    raise e
if os.environ['FAULT'] == 'batch':  # a batch that process 1 cannot read, at its 12th (its validation batches at step 5 among them: a few steps after)
    read, calls = t.Windows.batch, []
    def batch(self, idx, multiple=1):
        calls.append(1)
        if os.environ['RANK'] == '1' and len(calls) == 12: fail(IndexError('index 99 is out of bounds for axis 0 with size 8'))
        return read(self, idx, multiple)
    t.Windows.batch = batch
else:  # metrics.csv that the first process cannot write at the second evaluation
    write = t._MetricsFile.write
    def metrics(self, history):
        if len(history) >= 2: fail(ValueError('cannot write metrics.csv'))
        return write(self, history)
    t._MetricsFile.write = metrics
"""

@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='torchrun and a process that waits at exit')
def test_a_process_that_fails_ends_the_others_with_its_error(demo, tmp_path):
    "One of two processes (torchrun) fails reading a batch and does not end (as a process of NCCL's may not): the other, which waits for it in a collective, ends within seconds, saying which process failed, why, and what the run kept, rather than wait till the job's time limit."
    script = tmp_path/'failing.py'
    script.write_text(FAILING + "from pixelbytes.main import run\nrun()\n")
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', str(script), 'train', '--data', str(demo),
                        '--out', str(tmp_path/'m'), '--epochs', '1', '--eval-every', '5', '--quiet', *TINY],
                       capture_output=True, text=True, env={**ENV, 'FAULT': 'batch'}, timeout=180)  # a hang fails the test
    assert r.returncode != 0, r.stderr[-3000:]
    assert re.search(r"pixelbytes train: error: process 1 of 2 failed at step \d+ \(IndexError: index 99 is out of bounds for axis 0 with size 8\), "
                     r"and the others stopped with it; .*m holds the checkpoints of step 5: continue with resume=True \(--resume\)", r.stderr), r.stderr[-3000:]
    assert load_state(tmp_path/'m'/'train_state.pt')['step'] == 5  # the last good checkpoint

@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='a process that waits at exit')
def test_launch_raises_the_error_of_a_process_that_fails(demo, tmp_path):
    "launch's first process fails writing metrics.csv and does not end: the other ends within seconds, and launch raises a TrainingError saying which process failed and why, rather than wait."
    (tmp_path/'launching.py').write_text(FAILING + f'''
if __name__ == '__main__':  # launch's processes run this file's patches above too, as they import it
    try: t.launch(dict(backbone='lstm', d_model=16, n_layers=1, seq_length=64, batch_size=8, epochs=1, eval_every=5), {str(demo)!r}, {str(tmp_path/'m')!r},
                  nprocs=2, progress=False)
    except t.TrainingError as e: print(e)
''')
    r = subprocess.run([sys.executable, str(tmp_path/'launching.py')], capture_output=True, text=True, env={**ENV, 'FAULT': 'metrics'}, timeout=180)  # a hang fails the test
    assert 'process 0 of 2 failed at step 10 (ValueError: cannot write metrics.csv), and the others stopped with it' in r.stdout, r.stdout + r.stderr[-3000:]
    assert load_state(tmp_path/'m'/'train_state.pt')['step'] == 5
