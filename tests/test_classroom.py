"""A class on a shared server: the package installed read-only by an admin, a teacher's dataset and model read-only in a
course folder, students working as other users, and a course folder that shares its files by a default ACL."""
import os, shutil, stat, struct, subprocess, sys, tempfile
from pathlib import Path
import pytest
import pixelbytes

ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1'}

def cli(*args, cwd=None, env=ENV, user=()):
    "`python -m pixelbytes.main ARGS`, as the `user` command prefix says (none: this user)."
    return subprocess.run([*user, sys.executable, '-m', 'pixelbytes.main', *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)

def default_acl(folder, perms: int) -> bool:
    "Give `folder` a default ACL (Linux' xattr format) that lets the user's group have `perms` (0 to 7) of each new file in it; False where the system has no ACLs."
    entry = lambda tag, perm, id=0xffffffff: struct.pack('<HHI', tag, perm, id)
    acl = struct.pack('<I', 2) + entry(1, 7) + entry(4, 7) + entry(8, perms, os.getegid()) + entry(0x10, 7) + entry(0x20, 5)  # user, group, a group, mask, other
    try: os.setxattr(folder, 'system.posix_acl_default', acl); return True
    except (AttributeError, OSError): return False

def snapshot(*folders) -> dict:
    "Each file and folder under `folders`, with its size, modification time and mode: what a reader must leave as it was."
    return {p: (s.st_size, s.st_mtime_ns, s.st_mode) for f in folders for p in [f, *Path(f).rglob('*')] for s in [p.lstat()]}

def test_a_shared_folder_with_a_default_acl(tmp_path, demo):
    "A course folder that gives its group read and write by a default ACL: what a run, an evaluation and samples write there is the group's as a plain write's would be, whatever the umask."
    course = tmp_path/'course'; course.mkdir()
    if not default_acl(course, 6): pytest.skip('no ACLs on this system')
    was = os.umask(0o077)  # private: the folder's ACL decides, as it does for any program's files
    try:
        (course/'plain').write_text('a file any program writes')
        model = course/'model'
        r = cli('train', '--data', demo, '--out', model, '--dim', 16, '--depth', 1, '--epochs', 1, '--previews', 1, '--quiet')
        assert r.returncode == 0, r.stderr
        assert cli('evaluate', '--model', model/'best', '--data', demo, '--metrics', 'accuracy', '--quiet').returncode == 0
        assert cli('generate', '--model', model/'best', '--prompt', 'a red circle', '--num', 2, '--out', f"{course/'samples'}/").returncode == 0
    finally: os.umask(was)
    plain = stat.S_IMODE((course/'plain').stat().st_mode)
    files = {p.relative_to(course): stat.S_IMODE(p.stat().st_mode) for p in course.rglob('*') if p.is_file()}
    assert {'model/best/model.safetensors', 'model/train_state.pt', 'model/best/evaluation.json', 'samples/metadata.csv'} <= {str(p) for p in files}
    assert plain == 0o664 and {p: m for p, m in files.items() if m != plain} == {}

def _as_nobody():
    "The command prefix that runs a program as the user nobody, who may read everything (to reach this Python) but write only where nobody may; None where that cannot be done."
    if not sys.platform.startswith('linux') or os.geteuid() != 0 or not shutil.which('setpriv'): return None
    user = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=+dac_read_search', '--ambient-caps=+dac_read_search']
    try: ok = subprocess.run([*user, sys.executable, '-c', 'import os; assert os.getuid() == 65534'], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired): ok = False
    return user if ok else None

def test_a_student_reads_the_teachers_model_and_data_read_only(demo):
    "Another user (nobody) evaluates, draws from and fine-tunes the teacher's model with the package, the dataset and the model read-only, no HOME, and a read-only Hugging Face cache: nothing is written there, and a write refused names the folder and what to do."
    student = _as_nobody()
    if student is None: pytest.skip('needs root on Linux with setpriv, to act as a second user')
    scene = Path(tempfile.mkdtemp()); scene.chmod(0o755)  # not under tmp_path, which only its owner may go through
    site, data, model, hf, work = (scene/n for n in ('site', 'data', 'model', 'hf', 'work'))
    try:
        shutil.copytree(Path(pixelbytes.__file__).parent, site/'pixelbytes', ignore=shutil.ignore_patterns('__pycache__'))
        shutil.copytree(demo, data); hf.mkdir(); work.mkdir(); os.chown(work, 65534, 65534)
        r = cli('train', '--data', data, '--out', model, '--dim', 16, '--depth', 1, '--epochs', 1, '--quiet')
        assert r.returncode == 0, r.stderr
        for p in (site, data, model, hf):
            for f in [p, *p.rglob('*')]: f.chmod(stat.S_IMODE(f.stat().st_mode) & ~0o222)
        before = snapshot(site, data, model, hf)
        env = {k: v for k, v in ENV.items() if k not in ('HOME', 'PYTHONPATH', 'TMPDIR')} | {'PYTHONPATH': str(site), 'HF_HOME': str(hf)}
        r = cli('evaluate', '--model', model/'best', '--data', data, '--metrics', 'accuracy', env=env, user=student)
        assert r.returncode == 0 and 'not saved: --out DIR saves the scores' in r.stdout + r.stderr, r.stderr
        r = cli('generate', '--model', model/'best', '--prompt', 'a red circle', '--num', 2, '--out', model/'best'/'x.png', env=env, user=student)
        assert r.returncode == 1 and f"{model/'best'} is read-only" in r.stderr and 'choose another --out, in a folder you can write' in r.stderr, r.stderr
        r = cli('generate', '--model', model/'best', '--prompt', 'a red circle', '--num', 2, cwd=model, env=env, user=student)  # the default out, in a read-only folder
        assert r.returncode == 1 and f"{model} is read-only (the nearest folder there is on the way to generated.png)" in r.stderr, r.stderr
        r = cli('generate', '--model', model/'best', '--prompt', 'a red circle', '--num', 2, '--out', work/'s.png', env=env, user=student)
        assert r.returncode == 0 and (work/'s.png').stat().st_uid == 65534, r.stderr
        r = cli('train', '--data', data, '--init', model/'best', '--out', work/'run', '--epochs', 1, '--quiet', env=env, user=student)
        assert r.returncode == 0 and (work/'run'/'best'/'model.safetensors').is_file(), r.stderr
        r = cli('train', '--data', data, '--out', model/'mine', '--epochs', 1, '--quiet', env=env, user=student)
        assert r.returncode == 1 and f"{model} is read-only" in r.stderr and 'choose another output folder (--out)' in r.stderr, r.stderr
        assert snapshot(site, data, model, hf) == before  # no lock, cache, compiled file or temporary file left in what was only read
    finally:
        for f in [scene, *scene.rglob('*')]: f.chmod(stat.S_IMODE(f.stat().st_mode) | 0o200)  # to be removed
        shutil.rmtree(scene)
