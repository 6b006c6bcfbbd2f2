#!/usr/bin/env bash
# The main job on the embedded default: generate the sample DNGs (if missing), train the
# metadata-conditioned UNet on CPU, then evaluate it on the held-out test pairs. The test
# stage prints PSNR/SSIM (raw and sRGB) of the denoised output beside the noisy input's.
# TensorBoard: tensorboard --logdir runs
set -euo pipefail
cd "$(dirname "$0")/.."
python train.py fit --config configs/quickstart.yaml "$@"
python train.py test --config configs/quickstart.yaml --ckpt_path last
