#!/usr/bin/env bash
# The one prepared training script for a GPU machine (also runs on CPU): the production recipe
# (configs/production.yaml + configs/production_gpu.yaml) on the packed training set within a
# fixed wall budget, then the last checkpoint validated and copied, with the TensorBoard events,
# to $OUT. Needs no network. docs/gpu.md has the whole procedure.
#
# Before, here (with ../shared and the network):
#   python scripts/pack_training_set.py     # data/packed, ~39 MiB, git-ignored
#   bash scripts/gpu_wheels.sh              # .whl, ~11 MiB, git-ignored (option A below)
# On the GPU machine (the device tool: carry ["data/packed", ".whl"], timeout_s 590):
#   bash scripts/gpu_train.sh
# CPU smoke test (a minute; checks the whole path, not the model):
#   BUDGET=00:00:01:00 EPOCH_SIZE=64 EPOCHS=2 BATCH=8 EVAL_SIZE=8 WORKERS=0 OUT=/tmp/gpu_out \
#     bash scripts/gpu_train.sh
#
# Python there. The checkout travels, a virtual environment made here does not fit (torch alone
# is over the 64 MiB that travels) and pip cannot download there. Two options:
#   A (default) the machine's own python3 (3.12, torch with CUDA, lightning, torchmetrics,
#     tensorboard, numpy, scipy, pillow, ...) plus the missing wheels carried in .whl
#     (jsonargparse[signatures], rawpy, kornia): installed with `pip --no-index --target`
#     into $SITE, only when an import fails;
#   B an interpreter that has everything (a machine image with the project's dependencies):
#     PYTHON=/path/to/python bash scripts/gpu_train.sh, without .whl.
#
# Environment (all optional):
#   BUDGET      trainer.max_time, DD:HH:MM:SS (default 00:00:07:00: 7 min of training; the
#               whole script takes about a minute more: start-up, validation, copies)
#   EPOCHS      max_epochs and the cosine's T_max (default: the config's 12)
#   EPOCH_SIZE  training items per epoch (default: the config's 24000)
#   BATCH       batch size (default: the config's 32)
#   EVAL_SIZE   validation items (default: the config's 192)
#   WORKERS     data workers (default: cores - 2, at least 0)
#   DEADLINE    seconds from the start after which nothing new begins: validation is skipped
#               when under 45 s are left (default 570, for the device tool's timeout_s 590)
#   PRECISION   trainer.precision (default 32-true; bf16-mixed is untested on CUDA)
#   OUT         results folder (default runs/gpu_out); on the device tool $OUT is set
#   PYTHON      interpreter (default python3); SITE where .whl installs (default /tmp/isp-site)
# Extra arguments go to `train.py fit` and `validate` (e.g. --trainer.accelerator cpu).
#
# $OUT gets (at most 8 files, each under 16 MiB, as the device tool brings back):
#   last.ckpt     the last state without the optimiser's (weights, hyper-parameters, loops):
#                 loads in predict.py --ckpt, export_default_model.py, model.init_weights; not
#                 resumable (the full checkpoint stays in runs/, over the 16 MiB a file may be)
#   events.out.tfevents.*   TensorBoard of the fit;  config.yaml  the resolved config
#   train.log     the fit's and the validation's output;  summary.json  final val metrics, steps,
#                 items/s, wall times, versions, the packed set's sha256
set -euo pipefail
cd "$(dirname "$0")/.."
START=$SECONDS
PYTHON=${PYTHON:-python3}
SITE=${SITE:-/tmp/isp-site}
OUT=${OUT:-runs/gpu_out}
BUDGET=${BUDGET:-00:00:07:00}
DEADLINE=${DEADLINE:-570}
PRECISION=${PRECISION:-32-true}
CORES=$(nproc)
WORKERS=${WORKERS:-$((CORES > 2 ? CORES - 2 : 0))}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} PYTHONUNBUFFERED=1
mkdir -p "$OUT"
LOG="$OUT/train.log"

if [[ ! -f data/packed/MANIFEST.json ]]; then
  echo "gpu_train.sh: error: data/packed/MANIFEST.json is missing: run" \
    "'python scripts/pack_training_set.py' where ../shared is, and carry data/packed." >&2
  exit 2
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
IMPORTS="import torch, lightning, jsonargparse, docstring_parser, typeshed_client, rawpy, kornia, isp.cli.train"
if ! "$PYTHON" -c "$IMPORTS" 2>/dev/null; then
  if compgen -G ".whl/*.whl" >/dev/null; then
    echo "installing .whl into $SITE (no network)"
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$SITE" .whl/*.whl
    export PYTHONPATH="$PWD:$SITE${PYTHONPATH#"$PWD"}"
  fi
  "$PYTHON" -c "$IMPORTS" || {
    echo "gpu_train.sh: error: $PYTHON lacks a dependency (above); carry .whl" \
      "(bash scripts/gpu_wheels.sh) or set PYTHON (see this script's header)." >&2
    exit 2
  }
fi
"$PYTHON" - <<'EOF' | tee "$LOG"
import os, torch, lightning
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
print(f"torch {torch.__version__}, lightning {lightning.__version__}, cuda: {gpu}, cores {os.cpu_count()}")
EOF

RUN=$(date -u +%Y%m%d-%H%M%S)
DIR="runs/production_gpu/$RUN"
CONFIGS=(--config configs/production.yaml --config configs/production_gpu.yaml)
ARGS=(--trainer.precision "$PRECISION" --data.num_workers "$WORKERS")
[[ -n "${EPOCHS:-}" ]] && ARGS+=(--trainer.max_epochs "$EPOCHS" --model.scheduler.init_args.T_max "$EPOCHS")
[[ -n "${EPOCH_SIZE:-}" ]] && ARGS+=(--data.epoch_size "$EPOCH_SIZE")
[[ -n "${BATCH:-}" ]] && ARGS+=(--data.batch_size "$BATCH")
[[ -n "${EVAL_SIZE:-}" ]] && ARGS+=(--data.eval_size "$EVAL_SIZE")

echo "fit: budget $BUDGET, precision $PRECISION, $WORKERS workers, run folder $DIR" | tee -a "$LOG"
FIT_START=$SECONDS
"$PYTHON" train.py fit "${CONFIGS[@]}" "${ARGS[@]}" --trainer.max_time "$BUDGET" \
  --trainer.logger.init_args.version "$RUN" --checkpoint.dirpath "$DIR/checkpoints" "$@" 2>&1 | tee -a "$LOG"
FIT_S=$((SECONDS - FIT_START))

# the last state without the optimiser's (the full checkpoint is over the 16 MiB a file may be)
"$PYTHON" - "$DIR/checkpoints/last.ckpt" "$OUT/last.ckpt" <<'EOF'
import sys, torch
ckpt = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
for key in ("optimizer_states", "lr_schedulers"):
    ckpt.pop(key, None)
torch.save(ckpt, sys.argv[2])
EOF

cp "$DIR"/events.out.tfevents.* "$DIR/config.yaml" "$OUT"/ 2>/dev/null || true

# validate the checkpoint that comes back, if the deadline leaves time for it
LEFT=$((DEADLINE - (SECONDS - START)))
if ((LEFT < 45)); then
  echo "validate: skipped, ${LEFT} s left before DEADLINE ${DEADLINE} s" | tee -a "$LOG"
  exit 0
fi
echo "validate: $OUT/last.ckpt (${LEFT} s left)" | tee -a "$LOG"
VAL_ARGS=("${CONFIGS[@]}" "${ARGS[@]}" --checkpoint.dirpath "$DIR/checkpoints" "$@")
set +e  # a failed or late validation still lists what is in $OUT
timeout $((LEFT - 10)) "$PYTHON" - "$OUT" "$FIT_S" "${VAL_ARGS[@]}" <<'EOF' 2>&1 | tee -a "$LOG"
import json, sys, time
from pathlib import Path

import torch
from isp.cli.train import main

out, fit_s, args = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
sys.argv = sys.argv[:1]  # LightningCLI takes `args` alone
cli = main(["validate", *args, "--ckpt_path", str(out / "last.ckpt"), "--trainer.logger", "false"])
metrics = {k: round(float(v), 4) for k, v in sorted(cli.trainer.callback_metrics.items())}
ckpt = torch.load(out / "last.ckpt", map_location="cpu", weights_only=True)
steps = int(ckpt["global_step"])
batch = cli.datamodule.batch_size
train_s = float(ckpt["callbacks"].get("Timer", {}).get("time_elapsed", {}).get("train", fit_s))
manifest = json.loads(Path("data/packed/MANIFEST.json").read_text())
summary = {
    "val": metrics,
    "global_step": steps,
    "epochs_done": ckpt["loops"]["fit_loop"]["epoch_progress"]["total"]["processed"],
    "batch_size": batch,
    "fit_wall_s": fit_s,  # the whole `train.py fit` command, start-up included
    "train_s": round(train_s, 1),  # Lightning's Timer: the training loop (its validations included)
    "items_per_s": round(steps * batch / max(train_s, 1e-9), 1),
    "last_ckpt_bytes": (out / "last.ckpt").stat().st_size,
    "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    "torch": torch.__version__,
    "packed_sha256": manifest["sha256"],
    "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
}
(out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
print(json.dumps(summary, indent=1))
print(f"FINAL val/raw_psnr {metrics.get('val/raw_psnr', float('nan')):.3f} dB "
      f"(noisy input {metrics.get('val/input_raw_psnr', float('nan')):.3f} dB), "
      f"val/srgb_psnr {metrics.get('val/srgb_psnr', float('nan')):.3f} dB, {steps} steps")
EOF
VAL_RC=${PIPESTATUS[0]}
set -e
((VAL_RC == 0)) || echo "validate: failed or out of time (exit $VAL_RC); last.ckpt is in $OUT" | tee -a "$LOG"
echo "done in $((SECONDS - START)) s; $OUT:" | tee -a "$LOG"
ls -la "$OUT" | tee -a "$LOG"
