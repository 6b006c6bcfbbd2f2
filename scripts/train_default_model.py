"""Train the shipped default denoiser on the generated sample set and export it.

    python scripts/train_default_model.py [--steps 1500] [--out isp/weights] [--seed 0]

Reproducible: the sample set is ``python -m isp.data.synth --out data/sample`` (deterministic),
the seed fixes initialisation, crops, flips and order, and the run has a fixed number of
optimiser steps (``--steps``), not a time budget. It uses the project's own stack: the sample
``RawDataModule`` (random 32x32 packed crops, CFA-exact flips), a ``DenoiseModule`` around
``isp.models.UNet`` (MSConv2d conditioning on ISO/exposure and the optical-black noise vectors),
L2 loss (what PSNR measures), Adam with a cosine schedule and gradient clipping, on the CPU.
Afterwards it validates on the whole val frames and writes

- ``OUT/default.pt``: the UNet's ``state_dict`` only (loads with ``torch.load(weights_only=True)``);
- ``OUT/default.json``: ``model`` (class_path + init_args), ``data`` (``vector_scale``), the
  command, the step count and time, and the val raw PSNR of the input and of the output.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import lightning as L
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from isp.data import RawDataModule  # noqa: E402
from isp.lit import DenoiseModule  # noqa: E402
from isp.models import UNet, count_parameters  # noqa: E402

ARCH = {"base_width": 16, "depth": 3, "conditioning": "msconv", "padding_mode": "zeros"}


class _PrintProgress(L.Callback):
    """One line every ``every`` steps (the progress bar is off: logs go to files)."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every == 0:
            loss = float(outputs["loss"]) if isinstance(outputs, dict) else float(outputs)
            elapsed = time.perf_counter() - self.start
            print(f"step {trainer.global_step} loss {loss:.5f} {elapsed:.0f} s", flush=True)


def _init_args(net: UNet) -> dict:
    """Every architecture argument, so later changes of UNet's defaults do not change this model."""
    c2, c3, c4 = net.side_channels
    return {
        "in_channels": net.in_channels, "out_channels": net.out_channels, "row_channels": c2,
        "col_channels": c3, "scalar_channels": c4, "base_width": net.base_width, "depth": net.depth,
        "conditioning": net.conditioning, "residual": net.residual, "input_scale": net.input_scale,
        "side_scale": net.side_scale, "padding_mode": ARCH["padding_mode"],
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=1500, help="optimiser steps (default 1500)")
    p.add_argument("--schedule-steps", type=int, default=None, help="cosine period (default: --steps)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default 2e-3)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop-size", type=int, default=32, help="packed pixels (default 32)")
    p.add_argument("--loss", default="l2", choices=["l1", "l2", "charbonnier"], help="default l2 (= PSNR)")
    p.add_argument("--head-init-std", type=float, default=1e-2,
                   help="re-initialise the zero 1x1 head so every layer gets a gradient at step 1")
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--root", default="data/sample", help="sample set (generated if missing)")
    p.add_argument("--out", type=Path, default=ROOT / "isp" / "weights")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-minutes", type=float, default=None, help="stop early (the json records the steps)")
    args = p.parse_args(argv)
    period = args.schedule_steps or args.steps
    torch.set_num_threads(args.threads)
    L.seed_everything(args.seed, workers=True)

    dm = RawDataModule(
        root=args.root, source="sample", crop_size=args.crop_size, batch_size=args.batch_size,
        eval_crop_size=None, eval_batch_size=1, num_workers=0, cache_dir="cache", seed=args.seed,
        train_repeat=8,
    )
    net = UNet(**ARCH)
    if args.head_init_std > 0:
        torch.nn.init.normal_(net.head.weight, std=args.head_init_std)
    module = DenoiseModule(
        net,
        loss=args.loss,
        optimizer=partial(torch.optim.Adam, lr=args.lr),
        scheduler=partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=period, eta_min=args.lr / 50),
        scheduler_interval="step",
        num_previews=0,
        srgb_metrics=False,
    )
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_steps=args.steps, max_epochs=-1, logger=False,
        enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
        limit_val_batches=0, deterministic=True, log_every_n_steps=50, enable_progress_bar=False,
        gradient_clip_val=args.grad_clip,
        max_time=None if args.max_minutes is None else {"minutes": args.max_minutes},
        callbacks=[_PrintProgress(every=25)],
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    train_seconds = time.perf_counter() - start
    steps_done = trainer.global_step
    validation = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                           enable_model_summary=False)
    metrics = validation.validate(module, datamodule=dm, verbose=False)[0]

    args.out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    torch.save(state, args.out / "default.pt")
    try:
        git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        commit = git.stdout.strip()
    except OSError:
        commit = ""
    # the command that repeats this run: the steps actually done (--max-minutes may stop early)
    command = "python scripts/train_default_model.py " + shlex.join(
        [f"--steps={steps_done}", f"--schedule-steps={period}", f"--lr={args.lr}",
         f"--batch-size={args.batch_size}", f"--crop-size={args.crop_size}", f"--loss={args.loss}",
         f"--head-init-std={args.head_init_std}", f"--grad-clip={args.grad_clip}", f"--seed={args.seed}",
         f"--threads={args.threads}", f"--root={args.root}"]
    )
    config = {
        "model": {"class_path": "isp.models.UNet", "init_args": _init_args(net)},
        "data": {"vector_scale": dm.vector_scale},
        "training": {
            "command": command.strip(),
            "data": f"python -m isp.data.synth --out {args.root} (48 train / 8 val / 8 test pairs, 256x384)",
            "steps": steps_done,
            "batch_size": args.batch_size,
            "crop_size_packed": args.crop_size,
            "loss": args.loss,
            "head_init_std": args.head_init_std,
            "grad_clip": args.grad_clip,
            "optimizer": f"Adam(lr={args.lr}), CosineAnnealingLR(T_max={period}, eta_min={args.lr / 50})",
            "seed": args.seed,
            "threads": args.threads,
            "seconds": round(train_seconds, 1),
            "git_commit": commit,
            "torch": torch.__version__,
            "lightning": L.__version__,
        },
        "metrics": {
            "split": "val (whole frames)",
            "val_input_raw_psnr": round(float(metrics["val/input_raw_psnr"]), 3),
            "val_raw_psnr": round(float(metrics["val/raw_psnr"]), 3),
        },
        "parameters": count_parameters(net),
        "size_bytes": os.path.getsize(args.out / "default.pt"),
    }
    (args.out / "default.json").write_text(json.dumps(config, indent=2) + "\n")
    print(json.dumps(config["metrics"] | {"seconds": config["training"]["seconds"]}))
    return config


if __name__ == "__main__":
    main()
