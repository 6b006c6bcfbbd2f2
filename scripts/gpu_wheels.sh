#!/usr/bin/env bash
# Wheels of the project's dependencies that the GPU machine's Python lacks, for carrying there.
#   bash scripts/gpu_wheels.sh            # here, with the network: writes .whl/ (~11 MiB, git-ignored)
# The GPU machine (docs/gpu.md) has Python 3.12 with torch (CUDA), lightning, torchmetrics,
# tensorboard, numpy, scipy, pillow, tifffile, rich and pyyaml, but not jsonargparse[signatures]
# (LightningCLI), rawpy (isp.raw imports it) or kornia (isp.render), and it cannot download.
# scripts/gpu_train.sh installs these wheels there with `pip install --no-index --target`.
# Versions: the ones installed here (one version of each; --no-deps, so every one is named).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
PY_VERSION=${PY_VERSION:-3.12}
names="jsonargparse docstring_parser typeshed_client rawpy kornia kornia_rs"
pins=$("$PYTHON" - $names <<'EOF'
import sys
from importlib.metadata import version

print(" ".join(f"{n}=={version(n)}" for n in sys.argv[1:]))
EOF
)
rm -rf .whl
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PY_VERSION" \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $pins
ls -la .whl
du -sh .whl
