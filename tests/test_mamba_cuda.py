"""The CUDA path of `pixelbytes.mamba.Mamba`: mamba_ssm's fused kernels against the pure-PyTorch code.

Runs only where a GPU is visible and `mamba_ssm` imports (`pip install pixelbytes[cuda]`); skipped elsewhere.
"""
import pytest
import torch
from pixelbytes.mamba import HAS_MAMBA_SSM, Mamba

pytestmark = pytest.mark.skipif(not (torch.cuda.is_available() and HAS_MAMBA_SSM), reason="needs a GPU and mamba_ssm")

@pytest.fixture(autouse=True)
def full_precision():
    "TF32 would make the two paths differ by 1e-3; compare them in true float32."
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old

def rel_err(a, b):
    "Largest absolute difference, relative to the largest magnitude of `b` (at least 1e-6: some gradients are exactly 0)."
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-6)).item()

def outputs_and_grads(block, x):
    "The block's output on `x` and the gradients of its parameters for a fixed loss."
    block.zero_grad(set_to_none=True)
    y = block(x)
    (y * torch.linspace(-1, 1, y.shape[-1], device=y.device)).sum().backward()
    return y.detach(), {k: p.grad.clone() for k, p in block.named_parameters()}

@pytest.mark.parametrize("L", [1, 7, 100, 256])
def test_fused_matches_pure_pytorch(L):
    torch.manual_seed(0)
    block, x = Mamba(64).cuda(), torch.randn(2, L, 64, device="cuda")
    fused, fused_grads = outputs_and_grads(block, x)
    block.use_fast_path = False
    pure, pure_grads = outputs_and_grads(block, x)
    assert rel_err(fused, pure) < 1e-4
    for k in pure_grads: assert rel_err(fused_grads[k], pure_grads[k]) < 1e-3, k

def test_state_dict_from_mamba_ssm():
    from mamba_ssm.modules.mamba_simple import Mamba as MambaSSM
    torch.manual_seed(0)
    theirs, ours = MambaSSM(64).cuda(), Mamba(64).cuda()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 100, 64, device="cuda")
    with torch.no_grad():
        expected = theirs(x)
        assert rel_err(ours(x), expected) < 1e-5  # the same kernels on the same weights
        ours.use_fast_path = False
        assert rel_err(ours(x), expected) < 1e-4
