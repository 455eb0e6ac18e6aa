"""Push the PixelBytes Kaggle notebook (GPU T4 x2) to Kaggle and start a run.

    python tools/kaggle_push.py                 # validate, stage, `kaggle kernels push`
    python tools/kaggle_push.py --dry-run       # validate and stage only; prints the folder
    python tools/kaggle_push.py --owner NAME    # push under your Kaggle user name instead of the id's

The repository keeps the kernel's metadata in `kaggle-kernel-metadata.json` (top level) and the notebook in
`kaggle/pixelbytes-t4x2.ipynb`. The Kaggle CLI wants both in one folder, the metadata named
`kernel-metadata.json` and its `code_file` relative to that folder: this script checks the metadata
(`validate_metadata`), copies the notebook and the metadata into a temporary folder that way (`stage`), then runs
`kaggle kernels push -p <folder>`.

Needs the Kaggle CLI >= 1.8.4 (`pip install -U kaggle`; older versions ignore `machine_shape` and run on the
default GPU) and Kaggle credentials: `kaggle auth login`, or an API token from https://www.kaggle.com/settings/api
in `KAGGLE_API_TOKEN` or `~/.kaggle/access_token`, or a legacy `~/.kaggle/kaggle.json`
(or `KAGGLE_USERNAME` + `KAGGLE_KEY`). `--dry-run` needs neither.

Follow the run with `kaggle kernels status OWNER/SLUG` and fetch its outputs with `kaggle kernels output OWNER/SLUG`.
"""
from __future__ import annotations

import argparse, json, os, re, shutil, subprocess, sys, tempfile, unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METADATA = ROOT/'kaggle-kernel-metadata.json'
KERNEL_METADATA_FILE = 'kernel-metadata.json'  # the name `kaggle kernels push -p FOLDER` reads
MIN_CLI = (1, 8, 4)  # first Kaggle CLI release that sends `machine_shape` (and has `--accelerator`)

# What the Kaggle CLI's `kernels push` reads from the metadata (kaggle-cli, src/kaggle/api/kaggle_api_extended.py,
# `kernels_push`); anything else is ignored without a word, so a misspelt key is reported here.
KNOWN_KEYS = {'id', 'id_no', 'title', 'code_file', 'language', 'kernel_type', 'is_private', 'enable_gpu', 'enable_tpu',
              'enable_internet', 'machine_shape', 'dataset_sources', 'competition_sources', 'kernel_sources',
              'model_sources', 'keywords', 'docker_image', 'docker_image_pinning_type'}
LANGUAGES = ('python', 'r', 'rmarkdown')
KERNEL_TYPES = ('script', 'notebook')
BOOLEANS = ('is_private', 'enable_gpu', 'enable_tpu', 'enable_internet')
SOURCE_LISTS = ('dataset_sources', 'competition_sources', 'kernel_sources', 'model_sources', 'keywords')
# Accelerators the Kaggle CLI documents for `machine_shape` / `--accelerator` (docs/kernels.md, "as of Feb 2026").
# "GPU T4 x2" in the notebook editor is `NvidiaTeslaT4` (Kaggle/kaggle-cli PR #1198: single T4 is not offered).
GPU_SHAPES = ('NvidiaTeslaT4', 'NvidiaTeslaP100', 'NvidiaTeslaT4Highmem', 'NvidiaTeslaA100', 'NvidiaL4', 'NvidiaL4X1',
              'NvidiaH100', 'NvidiaRtxPro6000')
TPU_SHAPES = ('TpuV38', 'Tpu1VmV38', 'TpuV5E8', 'TpuV6E8')
SCRIPT_SUFFIXES = {'python': ('.py',), 'r': ('.r', '.R'), 'rmarkdown': ('.Rmd', '.rmd')}
SLUG = re.compile(r'^[a-z0-9]+(?:-[a-z0-9]+)*$')
USER = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_-]*$')


def slugify(title: str) -> str:
    "The kernel slug Kaggle derives from `title`: ASCII, lowercase, runs of other characters turned into one dash."
    s = unicodedata.normalize('NFKD', title).encode('ascii', 'ignore').decode().lower().replace("'", '')
    return re.sub(r'[^a-z0-9]+', '-', s).strip('-')


def _check_notebook(path: Path) -> list:
    "Problems of the notebook at `path` (JSON, nbformat 4, cells, no outputs)."
    try: nb = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e: return [f'code_file {path.name} is not a readable JSON notebook: {e}']
    if not isinstance(nb, dict): return [f'code_file {path.name} is not a notebook: its JSON is not an object']
    out = []
    if nb.get('nbformat') != 4: out.append(f"code_file {path.name} is not an nbformat 4 notebook (nbformat: {nb.get('nbformat')!r})")
    cells = nb.get('cells')
    if not isinstance(cells, list) or not cells: return out + [f'code_file {path.name} has no cells']
    for i, c in enumerate(cells):
        if not isinstance(c, dict) or c.get('cell_type') not in ('code', 'markdown', 'raw') or not isinstance(c.get('source'), (str, list)):
            out.append(f'code_file {path.name}: cell {i} is not a valid cell (cell_type code/markdown/raw and a source)')
        elif c['cell_type'] == 'code' and c.get('outputs'):
            out.append(f'code_file {path.name}: cell {i} has outputs; commit the notebook without outputs')
    return out


def validate_metadata(path) -> list:
    "Problems of the Kaggle kernel metadata at `path` (and of the code file it names), as messages; [] when it is fine."
    path = Path(path)
    try: meta = json.loads(path.read_text(encoding='utf-8'))
    except FileNotFoundError: return [f'{path} does not exist']
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e: return [f'{path} is not valid JSON: {e}']
    if not isinstance(meta, dict): return [f'{path} must hold a JSON object, not {type(meta).__name__}']
    out = [f'unknown key {k!r}: the Kaggle CLI ignores it (known keys: {", ".join(sorted(KNOWN_KEYS))})'
           for k in meta if k not in KNOWN_KEYS]

    for k in ('id', 'title', 'code_file', 'language', 'kernel_type'):
        if k not in meta and not (k == 'id' and 'id_no' in meta): out.append(f'missing required key {k!r}')
        elif k in meta and (not isinstance(meta[k], str) or not meta[k].strip()): out.append(f'{k!r} must be a non-empty string, not {meta[k]!r}')
    kid, title = meta.get('id'), meta.get('title')
    if isinstance(kid, str) and kid:
        parts = kid.split('/')
        if len(parts) != 2: out.append(f"id {kid!r} must be 'user/slug' (one slash, no version)")
        else:
            user, slug = parts
            if not USER.match(user): out.append(f'id {kid!r}: the user name {user!r} must be letters, digits, - or _')
            if not SLUG.match(slug): out.append(f'id {kid!r}: the slug {slug!r} must be lowercase letters and digits in words joined by single dashes')
            if isinstance(title, str) and title.strip() and slugify(title) != slug:
                out.append(f'title {title!r} gives the slug {slugify(title)!r}, not the id\'s {slug!r}: Kaggle derives the slug from the title, so make them agree')
    if isinstance(title, str) and title.strip() and len(title) < 5: out.append(f'title {title!r} must be at least 5 characters long (the Kaggle CLI refuses shorter ones)')
    if 'id_no' in meta and (isinstance(meta['id_no'], bool) or not isinstance(meta['id_no'], int)): out.append(f"id_no must be an integer, not {meta['id_no']!r}")

    language, kernel_type = meta.get('language'), meta.get('kernel_type')
    if 'language' in meta and language not in LANGUAGES: out.append(f'language {language!r} must be one of {", ".join(LANGUAGES)}')
    if 'kernel_type' in meta and kernel_type not in KERNEL_TYPES: out.append(f'kernel_type {kernel_type!r} must be one of {", ".join(KERNEL_TYPES)}')

    for k in BOOLEANS:
        if k in meta and not isinstance(meta[k], bool):
            out.append(f'{k} must be a JSON boolean (true or false), not {json.dumps(meta[k])}')
    if meta.get('enable_gpu') is True and meta.get('enable_tpu') is True: out.append('enable_gpu and enable_tpu cannot both be true')

    shape = meta.get('machine_shape')
    if shape not in (None, ''):
        if not isinstance(shape, str): out.append(f'machine_shape must be a string, not {json.dumps(shape)}')
        elif shape not in GPU_SHAPES + TPU_SHAPES:
            hint = " ('NvidiaTeslaT4' is GPU T4 x2)" if 'T4' in shape else ''
            out.append(f'machine_shape {shape!r} is not an accelerator the Kaggle CLI knows{hint}; choose one of {", ".join(GPU_SHAPES + TPU_SHAPES)}')
        elif shape in GPU_SHAPES and meta.get('enable_gpu') is not True: out.append(f'machine_shape {shape!r} is a GPU: set enable_gpu to true')
        elif shape in TPU_SHAPES and meta.get('enable_tpu') is not True: out.append(f'machine_shape {shape!r} is a TPU: set enable_tpu to true')

    for k in SOURCE_LISTS:
        if k in meta:
            v = meta[k]
            if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v): out.append(f'{k} must be a list of non-empty strings, not {json.dumps(v)}')
            elif k in ('dataset_sources', 'kernel_sources'):
                out += [f"{k}: {x!r} must be 'user/slug'" for x in v if len(x.split('/')) != 2 or not all(x.split('/'))]
    if meta.get('docker_image_pinning_type') not in (None, 'original', 'latest'):
        out.append(f"docker_image_pinning_type must be 'original' or 'latest', not {meta['docker_image_pinning_type']!r}")

    code = meta.get('code_file')
    if isinstance(code, str) and code.strip():
        file = (path.parent/code)
        if not file.is_file(): out.append(f'code_file {code!r} does not exist (it is read relative to {path.parent})')
        elif kernel_type == 'notebook':
            if file.suffix != '.ipynb': out.append(f'code_file {code!r} must be a .ipynb file for a notebook kernel')
            else: out += _check_notebook(file)
        elif kernel_type == 'script' and language in SCRIPT_SUFFIXES and file.suffix not in SCRIPT_SUFFIXES[language]:
            out.append(f'code_file {code!r} must end with {" or ".join(SCRIPT_SUFFIXES[language])} for a {language} script')
    return out


def stage(metadata=METADATA, dest=None, owner: str = None) -> Path:
    "Copy the code file and the metadata (as `kernel-metadata.json`, `code_file` made local) into `dest` (default: a new temporary folder); returns the folder."
    metadata = Path(metadata)
    meta = json.loads(metadata.read_text(encoding='utf-8'))
    dest = Path(dest) if dest else Path(tempfile.mkdtemp(prefix='pixelbytes-kaggle-'))
    dest.mkdir(parents=True, exist_ok=True)
    code = metadata.parent/meta['code_file']
    shutil.copyfile(code, dest/code.name)
    meta['code_file'] = code.name
    if owner: meta['id'] = f"{owner}/{meta['id'].split('/', 1)[-1]}"
    (dest/KERNEL_METADATA_FILE).write_text(json.dumps(meta, indent=2) + '\n', encoding='utf-8')
    return dest


def _credentials() -> list:
    "Where Kaggle credentials were found (the places the Kaggle CLI looks first); [] if none."
    found = [v for v in ('KAGGLE_API_TOKEN',) if os.environ.get(v)]
    if os.environ.get('KAGGLE_USERNAME') and os.environ.get('KAGGLE_KEY'): found.append('KAGGLE_USERNAME + KAGGLE_KEY')
    home = Path.home()
    dirs = [Path(os.environ['KAGGLE_CONFIG_DIR'])] if os.environ.get('KAGGLE_CONFIG_DIR') else []
    dirs += [home/'.kaggle', Path(os.environ.get('XDG_CONFIG_HOME') or home/'.config')/'kaggle']
    for d in dirs:
        found += [str(d/f) for f in ('access_token', 'access_token.txt', 'kaggle.json', 'credentials.json') if (d/f).is_file()]
    return found


def _cli_version(kaggle: str):
    "The Kaggle CLI's version as a tuple, or None if it does not say."
    try: r = subprocess.run([kaggle, '--version'], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError): return None
    m = re.search(r'(\d+)\.(\d+)(?:\.(\d+))?', r.stdout + r.stderr)
    return tuple(int(x or 0) for x in m.groups()) if m and r.returncode == 0 else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='See the module docstring (tools/kaggle_push.py) for credentials and the CLI version.')
    p.add_argument('--metadata', default=str(METADATA), help='kernel metadata file (default: kaggle-kernel-metadata.json)')
    p.add_argument('--dry-run', action='store_true', help='validate and stage only: print the folder and the push command')
    p.add_argument('--stage-dir', help='stage into this folder (kept) instead of a temporary one')
    p.add_argument('--owner', help="push under this Kaggle user name (replaces the user part of the metadata's id)")
    p.add_argument('--skip-auth-check', action='store_true', help='do not look for Kaggle credentials before pushing (e.g. a login this script does not know)')
    a = p.parse_args(argv)

    problems = validate_metadata(a.metadata)
    if problems:
        print(f'{a.metadata} is not valid Kaggle kernel metadata:', *(f'  - {m}' for m in problems), sep='\n', file=sys.stderr)
        return 2
    if a.owner and not USER.match(a.owner):
        print(f'--owner {a.owner!r} is not a Kaggle user name (letters, digits, - or _)', file=sys.stderr)
        return 2
    folder = stage(a.metadata, a.stage_dir, a.owner)
    staged = validate_metadata(folder/KERNEL_METADATA_FILE)
    if staged:
        print(f'the staged metadata in {folder} is not valid:', *(f'  - {m}' for m in staged), sep='\n', file=sys.stderr)
        return 2
    meta = json.loads((folder/KERNEL_METADATA_FILE).read_text())
    cmd = ['kaggle', 'kernels', 'push', '-p', str(folder)]
    if a.dry_run:
        print(f"staged {meta['id']} ({meta.get('machine_shape') or 'default accelerator'}) in {folder}:")
        for f in sorted(folder.iterdir()): print(f'  {f.name}')
        print('push it with:', ' '.join(cmd))
        return 0

    try:
        kaggle = shutil.which('kaggle')
        if kaggle is None:
            print("the Kaggle CLI is not installed (no `kaggle` command on PATH): pip install -U 'kaggle>=1.8.4'", file=sys.stderr)
            return 3
        if not a.skip_auth_check and not _credentials():
            print('no Kaggle credentials found. Log in with `kaggle auth login`, or create an API token at\n'
                  'https://www.kaggle.com/settings/api and put it in KAGGLE_API_TOKEN or ~/.kaggle/access_token\n'
                  '(legacy keys: ~/.kaggle/kaggle.json, or KAGGLE_USERNAME + KAGGLE_KEY). If the CLI is logged in some\n'
                  'other way, pass --skip-auth-check.', file=sys.stderr)
            return 3
        version = _cli_version(kaggle)
        if version is None:
            print('warning: `kaggle --version` did not answer; if the run gets the wrong accelerator, upgrade the CLI (>= 1.8.4)', file=sys.stderr)
        elif version < MIN_CLI:
            print(f"the Kaggle CLI {'.'.join(map(str, version))} ignores machine_shape (the notebook would not get GPU T4 x2): "
                  f"pip install -U 'kaggle>=1.8.4'", file=sys.stderr)
            return 3
        print('$', ' '.join(cmd), flush=True)
        rc = subprocess.run([kaggle, *cmd[1:]]).returncode
        if rc: print(f'`kaggle kernels push` failed (exit status {rc}); if it says unauthorized, check your credentials and '
                     f"that {meta['id'].split('/')[0]!r} is your Kaggle user name (--owner)", file=sys.stderr)
        else: print(f"follow the run: kaggle kernels status {meta['id']}; outputs: kaggle kernels output {meta['id']} -p OUT")
        return rc
    finally:
        if not a.stage_dir: shutil.rmtree(folder, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
