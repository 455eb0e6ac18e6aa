"""What a training step costs at a sequence length the process has not met before, on a GPU.

    python bench/new_lengths.py [--lengths 24] [--batch-size 16]

Default-config models (d_model 128, 2 layers) of each backbone, fp16 autocast with a GradScaler, random tokens: one
step (forward, loss, backward, AdamW) is timed between two `torch.cuda.synchronize()` calls at --lengths lengths
from 600 to about 1000 tokens, each met for the first time; then at the same lengths again; then 8 times at one
length. The transformer runs twice: with PyTorch's default attention kernels (cuDNN's on a Hopper card) and with
cuDNN's left out (flash or memory-efficient attention). Why it matters: `train` groups windows of like length into
batches, so batch lengths vary, and a kernel that sets itself up for each new length pays that cost again and again
(`train` therefore rounds lengths up to a multiple of 64 on a GPU).

Prints a table of median milliseconds per step and writes bench/out/new_lengths-cuda.json.
"""
import argparse, json, statistics, sys, time
from contextlib import nullcontext
from pathlib import Path
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure this checkout, whatever copy of pixelbytes is installed
from pixelbytes.context import CONTEXT_WIDTH, ROW
from pixelbytes.models import PixelBytesConfig, PixelBytesModel

def step_times(backbone, lengths, batch_size, kernels):
    "Milliseconds of one training step at each of `lengths`, in order, in a fresh model."
    torch.manual_seed(0)
    model = PixelBytesModel(PixelBytesConfig(backbone=backbone)).cuda().train()
    opt, scaler = torch.optim.AdamW(model.parameters(), 1e-3), torch.amp.GradScaler('cuda')
    vocab, out = model.config.vocab_size, []
    for L in lengths:
        ctx = torch.randint(0, vocab, (batch_size, L, CONTEXT_WIDTH), device='cuda')
        ctx[..., ROW:] = torch.randint(0, 30, (batch_size, L, CONTEXT_WIDTH - ROW), device='cuda')  # positions within the embedding
        target = torch.randint(0, vocab, (batch_size * L,), device='cuda')
        torch.cuda.synchronize(); t = time.perf_counter()
        with kernels(), torch.autocast('cuda', dtype=torch.float16):
            loss = F.cross_entropy(model(ctx).float().flatten(0, 1), target)
        scaler.scale(loss).backward(); scaler.step(opt); scaler.update(); opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize(); out.append(1e3 * (time.perf_counter() - t))
    return out

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--lengths', type=int, default=24)
    ap.add_argument('--batch-size', type=int, default=16)
    args = ap.parse_args()
    if not torch.cuda.is_available(): raise SystemExit("needs a CUDA GPU")
    new = [600 + 17 * i for i in range(args.lengths)]
    no_cudnn = lambda: sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])
    rows = []
    for name, backbone, kernels in [('transformer', 'transformer', nullcontext), ('transformer, no cuDNN attention', 'transformer', no_cudnn),
                                    ('lstm', 'lstm', nullcontext), ('mamba', 'mamba', nullcontext)]:
        t = step_times(backbone, [512] * 3 + new + new + [1024] * 8, args.batch_size, kernels)  # 3 warm-up steps first
        n = len(new)
        row = {'model': name, 'new length ms': statistics.median(t[3:3 + n]), 'same lengths again ms': statistics.median(t[3 + n:3 + 2 * n]),
               'one length ms': statistics.median(t[3 + 2 * n:])}
        rows.append(row)
        print(f"{name:34s} new length {row['new length ms']:7.2f} ms | same lengths again {row['same lengths again ms']:7.2f} ms | one length {row['one length ms']:7.2f} ms", flush=True)
    out = Path(__file__).resolve().parent/'out'/'new_lengths-cuda.json'
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({'device': torch.cuda.get_device_name(), 'torch': torch.__version__, 'batch_size': args.batch_size, 'rows': rows}, indent=1))
    print(f'wrote {out}')

if __name__ == '__main__': main()
