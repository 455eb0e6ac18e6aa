# PixelBytes on any NVIDIA GPU machine (or CPU): the `pixelbytes` command in a CUDA PyTorch image.
#
#   docker build -t pixelbytes .
#   docker run --rm pixelbytes                                   # the help
#   docker run --rm --gpus all --shm-size 2g --user "$(id -u):$(id -g)" \
#     -v "$PWD/workspace:/workspace" pixelbytes build --path demo --out data/demo
#   docker run --rm --gpus all --shm-size 2g --user "$(id -u):$(id -g)" \
#     -v "$PWD/workspace:/workspace" pixelbytes train --data data/demo --out models/demo
#   # several GPUs: one process each (DDP)
#   docker run --rm --gpus all --shm-size 2g -v "$PWD/workspace:/workspace" --entrypoint torchrun \
#     pixelbytes --nproc_per_node=2 -m pixelbytes.main train --data data/demo --out models/demo
#
# The image is built from this repository alone (no network access beyond PyPI during `pip install`).
# Relative paths (data/..., models/...) land in /workspace: mount a volume there to keep them.
#
# Build arguments:
#   BASE_IMAGE      a pytorch/pytorch image; its torch satisfies the package's `torch>=2.2`, so pip keeps it.
#                   The default (CUDA 12.8) runs on Turing (T4) and newer GPUs.
#   MAMBA_KERNELS=1 also build the optional fused Mamba kernels (mamba-ssm, causal-conv1d). They compile CUDA
#                   code: use a `-devel` base, e.g. --build-arg BASE_IMAGE=pytorch/pytorch:2.8.0-cuda12.8-cudnn9-devel.
#                   Without them PixelBytes runs its pure-PyTorch Mamba, with the same weights.
ARG BASE_IMAGE=pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime
FROM ${BASE_IMAGE}

ARG MAMBA_KERNELS=0

LABEL org.opencontainers.image.title="PixelBytes" \
      org.opencontainers.image.description="Generate text and pixel-art images together with one small sequence model" \
      org.opencontainers.image.source="https://github.com/pixelbytes/pixelbytes" \
      org.opencontainers.image.licenses="MIT"

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_CACHE_HOME=/workspace/.cache \
    HF_HOME=/workspace/.cache/huggingface

# The package: only what `pip install .` needs, so that editing notebooks or tests does not invalidate this layer.
WORKDIR /opt/pixelbytes
COPY pyproject.toml README.md LICENSE ./
COPY pixelbytes ./pixelbytes
# The optional kernels' tools are left unpinned (hadolint DL3013): their versions follow mamba-ssm's needs.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir . \
 && if [ "$MAMBA_KERNELS" = "1" ]; then \
        pip install --no-cache-dir packaging ninja wheel \
     && pip install --no-cache-dir --no-build-isolation "causal-conv1d>=1.4" "mamba-ssm>=2.2"; \
    fi \
 && pixelbytes --help > /dev/null \
 && python -c "import torch, pixelbytes; print('pixelbytes', pixelbytes.__version__, 'torch', torch.__version__, 'CUDA', torch.version.cuda)"

# A non-root user. UID 42420 is the one OVHcloud AI Training runs containers as; any other UID works too
# (`docker run --user "$(id -u):$(id -g)"`), as /workspace is writable by all, like /tmp.
RUN (useradd --uid 42420 --create-home --shell /bin/bash pixelbytes 2>/dev/null \
     || adduser --uid 42420 --disabled-password --gecos "" pixelbytes) \
 && mkdir -p /workspace/.cache \
 && chown -R 42420:42420 /workspace \
 && chmod 1777 /workspace /workspace/.cache

USER 42420
WORKDIR /workspace
VOLUME ["/workspace"]

ENTRYPOINT ["pixelbytes"]
CMD ["--help"]
