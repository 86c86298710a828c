#!/usr/bin/env bash
# Wheels `make bench-gpu` needs on a bare CUDA machine without a package index (python 3.12, torch 2.11,
# lightning, transformers, torchmetrics, safetensors, opencv, scipy, numpy 2 there). Run here, where the
# registries answer, from the repository root:
#     bash tests/benchmarks/gpu_wheels.sh            # into .whl/ (git-ignored; 11 wheels, 27 MB)
#     bash tests/benchmarks/gpu_wheels.sh --prep     # + PyAV, soundfile, mediapipe for section (e) (+70 MB;
#                                                  mediapipe 0.10.21 was built for numpy 1: untried on numpy 2)
# `make bench-gpu` installs the ones whose distribution the machine lacks into /tmp/mmgt_gpu_site (GPU_SITE; --no-deps).
set -euo pipefail
DEST=${WHEEL_DIR:-.whl}
PY=${PYTHON:-python3}
mkdir -p "$DEST"
get() {
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$DEST" "$@"
}
# what the repository imports on the benchmark's paths and the machine does not have
get diffusers==0.42.1 "pillow==13.0.0" tqdm==4.70.1 \
    hydra-core==1.3.8 omegaconf==2.3.1 \
    pytorch-fid==0.3.0 torchvision==0.26.0 \
    tensorboard==2.20.0 protobuf==4.25.9
# published as source only (pure Python): built into wheels here
"$PY" -m pip wheel -q --no-deps -w "$DEST" antlr4-python3-runtime==4.9.3 python_speech_features==0.6
if [[ "${1:-}" == "--prep" ]]; then  # section (e): decoding and pose detection
    get av==18.1.0 soundfile==0.14.0 mediapipe==0.10.21 absl-py==2.5.1 flatbuffers==25.2.10 attrs==25.3.0
fi
ls -l "$DEST"
du -sh "$DEST"
