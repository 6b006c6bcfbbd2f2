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
"""

from __future__ import annotations

from lightning.pytorch.callbacks import ModelCheckpoint
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
