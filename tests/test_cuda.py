"""The CUDA paths of pixelbytes models, for every backbone (lstm, transformer, mamba, bilstm, bimamba).

- generation's step-by-step logits equal the full forward on the GPU, also when the prompt is read in one pass
  (and a bidirectional model's forward on the GPU equals the same model's on the CPU); `generate` runs on the GPU;
- the LSTM runs on cuDNN;
- fp16 autocast training steps (forward, GradScaler backward, optimizer step) give finite losses;
- a model saved from the GPU loads on the CPU with the same weights and logits;
- with mamba_ssm: a checkpoint whose Mamba blocks ran the fused kernels loads into the pure-PyTorch path
  (on the CPU, or on the GPU with `use_fast_path=False`) and gives the same logits.

Every test skips where no GPU is visible, and the fused-kernel ones also where `mamba_ssm` does not import
(`pip install pixelbytes[cuda]`); the file imports on any CPU-only machine.
"""
import json, warnings
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import pixelbytes.mamba as pb_mamba
from pixelbytes.context import context
from pixelbytes.demo import demo_items
from pixelbytes.mamba import HAS_MAMBA_SSM, Mamba
from pixelbytes.models import MODEL_NAMES, REFERENCE_NAMES, PixelBytesConfig, PixelBytesModel
from pixelbytes.tokenizer import Tokenizer

HAS_CUDA = torch.cuda.is_available()
requires_mamba_ssm = pytest.mark.skipif(not (HAS_CUDA and HAS_MAMBA_SSM),
                                        reason="needs a CUDA GPU and mamba_ssm (pip install pixelbytes[cuda])")
pytestmark = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")

DEVICE = 'cuda'
BACKBONES = [n for n in MODEL_NAMES if n not in REFERENCE_NAMES]  # every backbone, and those that read both ways as bi...
SMALL = dict(d_model=64, n_layers=2, d_state=8, seq_length=64)
# Largest |difference| / largest |logit| allowed between two float32 computations of the same logits (TF32
# off). Fused mamba_ssm kernels against the pure-PyTorch code differ by up to ~1e-4 per block.
TOL, FUSED_TOL = 1e-4, 1e-3

# mamba variants: the fused kernels (where mamba_ssm imports) and the pure-PyTorch code on the GPU
MAMBA_FUSED = pytest.param('mamba', True, marks=requires_mamba_ssm, id='mamba-fused')
BIMAMBA_FUSED = pytest.param('bimamba', True, marks=requires_mamba_ssm, id='bimamba-fused')
EVERY_PATH = [('lstm', True), ('transformer', True), MAMBA_FUSED, ('mamba', False), ('bilstm', True), BIMAMBA_FUSED, ('bimamba', False)]

@pytest.fixture(autouse=True)
def full_precision():
    "TF32 matmuls differ from float32 by ~1e-3: compare paths in true float32."
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old

def make_model(name, fast=True, seed=0):
    "A small model of the command-line model `name` on DEVICE; `fast=False` keeps Mamba blocks off mamba_ssm."
    backbone, bidirectional = MODEL_NAMES[name]
    torch.manual_seed(seed)
    model = PixelBytesModel(PixelBytesConfig(backbone=backbone, bidirectional=bidirectional, **SMALL)).to(DEVICE)
    return set_fast_path(model, fast)

def set_fast_path(model, fast):
    for m in model.modules():
        if isinstance(m, Mamba): m.use_fast_path = fast
    return model

def uses_fused(name, fast): return fast and HAS_MAMBA_SSM and MODEL_NAMES[name][0] == 'mamba'

def demo_batch(length, batch=2, device=None):
    "`(ids, ctx)`: `batch` real token sequences (demo captions and sprites, different offsets) and their 2D contexts."
    tok = Tokenizer()
    ids = np.concatenate([tok.encode([it['caption'], it['image']]) for it in demo_items(12)])
    seqs = np.stack([ids[97 * i: 97 * i + length] for i in range(batch)])
    ctx = np.stack([context(s, tok.n_bytes) for s in seqs])
    device = device or DEVICE
    return torch.from_numpy(seqs).to(device), torch.from_numpy(ctx).to(device)

def rel_err(a, b):
    "Largest absolute difference, relative to the largest magnitude of `b` (both moved to the CPU, float32)."
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    return ((a - b).abs().max() / b.abs().max()).item()

def loss_of(model, ids, ctx):
    "Cross-entropy of every position (causal) or of the next token after the window (bidirectional)."
    logits = model(ctx)
    if model.causal: return F.cross_entropy(logits.float().flatten(0, 1), ids.flatten()), logits
    return F.cross_entropy(logits.float(), ids[:, -1]), logits

def grad_fn_names(t, depth=3):
    "Names of the autograd nodes within `depth` steps of `t`."
    names, frontier = set(), [t.grad_fn]
    for _ in range(depth):
        frontier = [f for f in frontier if f is not None]
        names |= {type(f).__name__ for f in frontier}
        frontier = [g for f in frontier for g, _ in f.next_functions]
    return names

# --- generation on the GPU ---------------------------------------------------------------------------------

@pytest.mark.parametrize('name,fast', [('lstm', True), ('transformer', True), MAMBA_FUSED, ('mamba', False)])
def test_step_matches_forward(name, fast):
    "The recurrent state / KV cache generation uses gives the full forward's logits, position by position."
    model = make_model(name, fast).eval()
    _, ctx = demo_batch(300)  # past the transformer cache's initial capacity (256): its growth is exercised
    with torch.no_grad():
        full = model(ctx)
        state, steps = model.init_state(ctx.shape[0]), []
        for t in range(ctx.shape[1]):
            logits, state = model.step(ctx[:, t], state)
            steps.append(logits)
    steps = torch.stack(steps, 1)
    assert steps.shape == full.shape and steps.device.type == torch.device(DEVICE).type
    assert rel_err(steps, full) < (FUSED_TOL if uses_fused(name, fast) else TOL)

@pytest.mark.parametrize('name,fast', [('lstm', True), ('transformer', True), MAMBA_FUSED, ('mamba', False)])
def test_prompt_in_one_pass_matches_steps(name, fast):
    "The state after reading a prompt in one pass (forward with return_state, as generate does) goes on like the step-by-step one."
    model = make_model(name, fast).eval()
    _, ctx = demo_batch(300)
    cut = 280  # the transformer's cache holds exactly the prompt: the first step after it grows it
    with torch.no_grad():
        full = model(ctx)
        logits, state = model(ctx[:, :cut], return_state=True)
        steps = []
        for t in range(cut, ctx.shape[1]):
            out, state = model.step(ctx[:, t], state)
            steps.append(out)
    tol = FUSED_TOL if uses_fused(name, fast) else TOL
    assert rel_err(logits, full[:, :cut]) < tol
    assert rel_err(torch.stack(steps, 1), full[:, cut:]) < tol

@pytest.mark.parametrize('name,fast', EVERY_PATH)
def test_gpu_forward_matches_cpu(name, fast):
    "The same weights give the same logits on the GPU as on the CPU (for bidirectional models: the window read)."
    model = make_model(name, fast).eval()
    _, ctx = demo_batch(SMALL['seq_length'])
    cpu = make_model(name, fast).cpu().eval()
    cpu.load_state_dict(model.state_dict())
    with torch.no_grad(): gpu_logits, cpu_logits = model(ctx), cpu(ctx.cpu())
    assert gpu_logits.shape == cpu_logits.shape
    assert rel_err(gpu_logits, cpu_logits) < (FUSED_TOL if uses_fused(name, fast) else TOL)

@pytest.mark.parametrize('name', BACKBONES)
def test_generate_on_gpu(name):
    model = make_model(name)
    ids, _ = demo_batch(40, batch=1)
    out = model.generate(ids[0].tolist(), max_new_tokens=12, seed=0, num=2)
    assert len(out) == 2
    for seq in out:
        assert seq[:40] == ids[0].tolist() and len(seq) == 52
        assert all(0 <= t < model.config.vocab_size for t in seq)

# --- cuDNN ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('name', ['lstm', 'bilstm'])
def test_lstm_uses_cudnn(name):
    assert torch.backends.cudnn.is_available() and torch.backends.cudnn.enabled
    model = make_model(name).train()
    ids, ctx = demo_batch(64)
    with warnings.catch_warnings():  # weights not in one contiguous chunk would make cuDNN copy them at every call
        warnings.filterwarnings('error', message='.*contiguous chunk')
        x = model.embed(ctx)
        y = model.backbone.rnn(x)[0]
        assert any('cudnn' in n.lower() for n in grad_fn_names(y)), grad_fn_names(y)
        loss_of(model, ids, ctx)[0].backward()
        if model.causal:
            with torch.no_grad(): model.step(ctx[:, 0], model.init_state(ctx.shape[0]))

# --- mixed precision -------------------------------------------------------------------------------------------

@pytest.mark.parametrize('name,fast', EVERY_PATH)
def test_fp16_autocast_training_steps(name, fast):
    "Three fp16 autocast training steps with a GradScaler: finite losses, finite updated weights."
    model = make_model(name, fast).train()
    ids, ctx = demo_batch(SMALL['seq_length'])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(DEVICE)
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        with torch.autocast(DEVICE, dtype=torch.float16):
            loss, logits = loss_of(model, ids, ctx)
        assert logits.dtype == torch.float16  # autocast was in effect
        assert torch.isfinite(loss), loss
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(p, b) for p, b in zip(model.parameters(), before))  # at least one step was taken

# --- checkpoints across devices ----------------------------------------------------------------------------------

@pytest.mark.parametrize('name', BACKBONES)
def test_saved_on_gpu_loads_on_cpu(name, tmp_path):
    model = make_model(name).eval()
    _, ctx = demo_batch(SMALL['seq_length'])
    with torch.no_grad(): expected = model(ctx)
    model.save_pretrained(tmp_path)
    loaded = PixelBytesModel.from_pretrained(tmp_path, map_location='cpu').eval()
    assert loaded.config.to_dict() == model.config.to_dict()
    theirs = loaded.state_dict()
    for k, v in model.state_dict().items():
        assert theirs[k].device.type == 'cpu' and torch.equal(theirs[k], v.cpu()), k
    with torch.no_grad(): got = loaded(ctx.cpu())
    assert rel_err(got, expected) < (FUSED_TOL if uses_fused(name, True) else TOL)

@pytest.fixture
def fused_calls(monkeypatch):
    "Counts calls of mamba_ssm's fused functions made through pixelbytes.mamba."
    calls = {'n': 0}
    for fn in ('mamba_inner_fn', 'selective_scan_fn'):
        real = getattr(pb_mamba, fn)
        def counted(*args, _real=real, **kwargs):
            calls['n'] += 1
            return _real(*args, **kwargs)
        monkeypatch.setattr(pb_mamba, fn, counted)
    return calls

@requires_mamba_ssm
@pytest.mark.parametrize('target', ['cpu', 'cuda-pure'])
@pytest.mark.parametrize('name', ['mamba', 'bimamba'])
def test_fused_checkpoint_loads_into_pure_pytorch(name, target, tmp_path, fused_calls):
    "Train a few steps with the fused kernels, save, load into the pure-PyTorch path: same logits."
    model = make_model(name, fast=True).train()
    ids, ctx = demo_batch(SMALL['seq_length'])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        loss_of(model, ids, ctx)[0].backward()
        opt.step()
    model.eval()
    with torch.no_grad(): expected = model(ctx)
    assert fused_calls['n'] > 0, "the fused kernels did not run"
    model.save_pretrained(tmp_path)

    loaded = PixelBytesModel.from_pretrained(tmp_path, map_location='cpu').eval()
    if target == 'cuda-pure': loaded = set_fast_path(loaded.to(DEVICE), False)
    n = fused_calls['n']
    with torch.no_grad(): got = loaded(ctx.to(target.split('-')[0]))
    assert fused_calls['n'] == n, "the loaded model should run the pure-PyTorch code"
    assert rel_err(got, expected) < FUSED_TOL
    if loaded.causal:  # and it generates from the same logits, step by step
        with torch.no_grad():
            state, steps = loaded.init_state(ctx.shape[0]), []
            for t in range(ctx.shape[1]):
                logits, state = loaded.step(ctx[:, t].to(target.split('-')[0]), state)
                steps.append(logits)
        assert rel_err(torch.stack(steps, 1), expected) < FUSED_TOL

# --- train() on the GPU ----------------------------------------------------------------------------------------

TINY_RUN = dict(backbone='lstm', d_model=32, n_layers=1, seq_length=64, batch_size=8, epochs=2, patience=0)

def test_training_sums_on_the_gpu_equal_the_cpu_ones():
    "The loop's metrics are summed on the device, padding included; the same figures as on the CPU."
    from pixelbytes.windows import IGNORE
    from pixelbytes.metrics import _kind_table, _sums
    tok, g = Tokenizer(), torch.Generator().manual_seed(0)
    targets = torch.randint(0, tok.vocab_size, (4, 64), generator=g)
    targets[:, 50:] = IGNORE
    preds, nll = torch.randint(0, tok.vocab_size, (4, 64), generator=g), torch.rand(4, 64, generator=g)
    on_cpu = _sums(targets.flatten(), preds.flatten(), nll.flatten(), _kind_table(tok))
    on_gpu = _sums(targets.flatten().cuda(), preds.flatten().cuda(), nll.flatten().cuda(), _kind_table(tok, 'cuda'))
    assert on_gpu.device.type == 'cuda' and torch.allclose(on_gpu.cpu(), on_cpu) and on_cpu[0] == 4 * 50

def test_train_on_the_gpu(demo, tmp_path, monkeypatch):
    "A short run on the GPU (AMP, fused AdamW, padded lengths): finite metrics, the same tokens counted as on the CPU; a NaN loss names its own step."
    from pixelbytes.train import STATE_FILE, TrainingError, load_state, train
    model, history = train(TINY_RUN, demo, tmp_path/'run', progress=False)
    last = history[-1]
    assert next(model.parameters()).device.type == 'cuda' and np.isfinite(last['train_loss']) and np.isfinite(last['val_loss'])
    assert last['train_tokens'] == sum(last[f'train_{m}_tokens'] for m in ('pixel', 'text', 'structure')) > 0
    with monkeypatch.context() as m:
        m.setattr(torch.cuda, 'is_available', lambda: False)
        _, on_cpu = train(TINY_RUN, demo, tmp_path/'cpu', progress=False)
    counts = lambda h: [(r['step'], r['train_tokens'], r['val_tokens'], r['val_pixel_tokens']) for r in h]
    assert counts(history) == counts(on_cpu)  # padding to a multiple of 64 adds no token to the loss or the scores
    _, resumed = train({**TINY_RUN, 'epochs': 3}, demo, tmp_path/'cpu', resume=True, progress=False)  # saved on the CPU, goes on here
    assert resumed[-1]['step'] > on_cpu[-1]['step'] and np.isfinite(resumed[-1]['val_loss'])
    assert all(g['fused'] for g in load_state(tmp_path/'cpu'/STATE_FILE)['optimizer']['param_groups'])
    state = load_state(tmp_path/'run'/STATE_FILE)
    assert state['scaler'], "AMP's grad scaler should be saved"
    assert all(g['fused'] for g in state['optimizer']['param_groups'])  # the grad scaler need not read its inf check back
    state['model']['head.weight'][0, 0] = float('nan')
    torch.save(state, tmp_path/'run'/STATE_FILE)
    with pytest.raises(TrainingError, match=f"the loss became nan at step {state['step']};"):
        train({**TINY_RUN, 'epochs': 4}, demo, tmp_path/'run', resume=True, progress=False)

def test_a_model_named_by_folder_runs_on_the_gpu(demo, tmp_path):
    "generate, evaluate and the `--device` of the command line load a model folder onto the GPU unless told otherwise."
    from pixelbytes.evaluate import evaluate
    from pixelbytes.generate import generate
    from pixelbytes.main import main
    from pixelbytes.models import load_model
    model = PixelBytesModel(PixelBytesConfig(backbone='lstm', d_model=32, n_layers=1))
    model.save_pretrained(tmp_path/'m')
    assert next(load_model(tmp_path/'m').parameters()).device.type == 'cuda'
    on_gpu, on_cpu = (generate(tmp_path/'m', 'a red circle', seed=3, max_tokens=30, device=d)[0] for d in (None, 'cpu'))
    assert len(on_gpu.ids) > on_gpu.n_prompt and len(on_cpu.ids) > on_cpu.n_prompt
    assert evaluate(tmp_path/'m', demo, metrics='loss', progress=False).settings['device'] == 'cuda:0'
    assert main(['evaluate', '--model', str(tmp_path/'m'), '--data', str(demo), '--metrics', 'loss', '--device', 'cpu', '--quiet']) == 0
    assert json.loads((tmp_path/'m'/'evaluation.json').read_text())['settings']['device'] == 'cpu'
