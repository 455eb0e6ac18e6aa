#!/usr/bin/env bash
# The GPU half of the checks: the CUDA tests, the speed benchmarks on the GPU (train() itself included), and the
# quick start trained on the GPU (fp16 autocast, then torch.compile). Run on a CUDA machine, after `pip install -e ".[dev,cuda]"`:
#
#     bash bench/cuda_checks.sh [DATA]        # DATA: the pokemon-dev image folder (default ../shared/data/pokemon-dev)
#
# Every step runs even when an earlier one fails; the exit status says whether all passed. The benchmarks write
# bench/out/*-cuda.json; their tables are what bench/RESULTS.md records.
set -uo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/pokemon-dev}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 MPLBACKEND=Agg PYTHONUNBUFFERED=1
failed=()
step() { local limit=$1; shift; echo; echo "== $*"; timeout "$limit" "$@" || failed+=("$* (status $?)"); }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step 60 python -c "import torch, pixelbytes.mamba as m; print('torch', torch.__version__, '|', torch.cuda.get_device_name(), '| mamba_ssm:', m.HAS_MAMBA_SSM, '| causal_conv1d:', m.causal_conv1d_fn is not None)"
step 240 python -m pytest -q -rs tests/test_cuda.py tests/test_mamba_cuda.py
step 90 python bench/mamba_speed.py --device cuda
step 150 python bench/generate_speed.py --device cuda --repeat 3
step 120 python bench/train_speed.py "$data" --device cuda --batch-size 64 --repeat 5
step 60 python bench/new_lengths.py
step 300 python bench/train_loop.py "$data" --epochs 2,16
step 60 python -m pixelbytes.main build --path demo --out "$work/data"
step 120 python -m pixelbytes.main train --data "$work/data" --out "$work/amp" --max-minutes 1
step 60 python -m pixelbytes.main evaluate --model "$work/amp/best" --data "$work/data"
step 150 python -m pixelbytes.main train --data "$work/data" --out "$work/compiled" --max-minutes 1 --compile

echo
if [ ${#failed[@]} -eq 0 ]; then echo "all CUDA checks passed"; else printf 'FAILED: %s\n' "${failed[@]}"; exit 1; fi
