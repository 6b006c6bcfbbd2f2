"""Train, validate, test and run the raw denoiser from YAML configs (Lightning CLI).

Usage (``--config`` goes after the subcommand; ``isp-train`` is the installed command, ``python
train.py`` the same from a checkout)::

    python train.py fit      --config configs/quickstart.yaml
    python train.py fit      --config configs/quickstart.yaml --ckpt_path last   # resume
    python train.py validate --config configs/quickstart.yaml --ckpt_path last
    python train.py test     --config configs/quickstart.yaml --ckpt_path last   # ISO breakdown
    python train.py predict  --config configs/quickstart.yaml --ckpt_path last
    python train.py fit      --config configs/quickstart.yaml --print_config     # resolved config
    python train.py fit --help                                                  # every option

The model is :class:`isp.lit.DenoiseModule` around a network given by ``class_path`` (default
:class:`isp.models.UNet`), the data :class:`isp.data.RawDataModule`. Two ``ModelCheckpoint``s
write to ``checkpoint.dirpath``: ``--checkpoint.*`` keeps the best by the module's ``monitor``
metric (linked, default ``val/raw_psnr``); ``--last_checkpoint.*`` overwrites ``last.ckpt`` at
the end of every training epoch (validated or not), so ``--ckpt_path last`` resumes from the
latest state. (Lightning 2.6's ``save_last=True`` only refreshes ``last.ckpt`` when a top-k
checkpoint is saved, i.e. when the metric improved, and a checkpoint without a monitor saves
only after validation when ``check_val_every_n_epoch > 1``: resuming from either would lose
the epochs since.)
The resolved config is saved as ``config.yaml`` in the run's log folder.

``--trainer.max_time`` is Lightning's: it counts the training time of every run a checkpoint
went through, so a run that ``max_time`` stopped resumes only with a larger one (``fit`` says so
before it starts, instead of stopping at once).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import torch
from lightning.pytorch.callbacks import ModelCheckpoint, Timer
from lightning.pytorch.cli import LightningCLI

from isp.data import RawDataModule
from isp.lit import DenoiseModule


class DenoiseCLI(LightningCLI):
    """LightningCLI with best and latest checkpoints; resume with ``--ckpt_path last``."""

    def add_arguments_to_parser(self, parser) -> None:
        """Checkpoint options, the default network, and the values model and callbacks share."""
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(ModelCheckpoint, "last_checkpoint")
        parser.set_defaults(
            {
                "model.net": {"class_path": "isp.models.UNet"},
                "checkpoint.dirpath": "runs/checkpoints",
                "checkpoint.filename": "epoch{epoch:03d}-step{step:06d}",
                "checkpoint.auto_insert_metric_name": False,
                "checkpoint.mode": "max",
                "last_checkpoint.filename": "last",
                "last_checkpoint.monitor": None,
                "last_checkpoint.save_top_k": 1,
                "last_checkpoint.enable_version_counter": False,
                "last_checkpoint.save_on_train_epoch_end": True,
            }
        )
        parser.link_arguments("model.monitor", "checkpoint.monitor")
        parser.link_arguments("checkpoint.dirpath", "last_checkpoint.dirpath")

    def before_fit(self) -> None:
        """Refuse to resume a checkpoint that has already spent ``--trainer.max_time``."""
        timer = next((c for c in self.trainer.callbacks if isinstance(c, Timer)), None)
        allowed = None if timer is None else timer.time_remaining()  # before fit: all of max_time
        ckpt_path = self.config[self.subcommand].get("ckpt_path")
        if allowed is None or ckpt_path is None:
            return
        path = Path(self.config[self.subcommand]["checkpoint"]["dirpath"]) / "last.ckpt"
        path = path if ckpt_path == "last" else Path(ckpt_path)
        if not path.is_file():
            return  # Lightning reports a missing checkpoint itself
        state = torch.load(path, map_location="cpu", weights_only=False, mmap=True).get("callbacks", {})
        spent = state.get("Timer", {}).get("time_elapsed", {}).get("train", 0.0)
        if spent >= allowed:
            raise ValueError(
                f"Cannot resume from {path}: it has already trained for "
                f"{timedelta(seconds=int(spent))}, and `--trainer.max_time` allows "
                f"{timedelta(seconds=int(allowed))} in all (Lightning counts the time of the "
                "runs before), so the run would stop at once. Give a larger one, e.g. "
                "`--trainer.max_time 00:02:00:00` (days:hours:minutes:seconds)."
            )


def main(args: list[str] | None = None, run: bool = True) -> DenoiseCLI:
    """Run the CLI on ``args`` (default: ``sys.argv``); returns it (its ``trainer``, ``model``)."""
    return DenoiseCLI(
        DenoiseModule,
        RawDataModule,
        args=args,
        run=run,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"default_env": False},
    )


def run() -> int:
    """The ``isp-train`` console script: run the CLI on ``sys.argv``; 0 when it returns."""
    main()
    return 0
