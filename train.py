"""Train, validate, test and run the raw denoiser from YAML configs (Lightning CLI).

Usage (``--config`` goes after the subcommand)::

    python train.py fit      --config configs/quickstart.yaml
    python train.py fit      --config configs/quickstart.yaml --ckpt_path last   # resume
    python train.py validate --config configs/quickstart.yaml --ckpt_path last
    python train.py test     --config configs/quickstart.yaml --ckpt_path last   # ISO breakdown
    python train.py predict  --config configs/quickstart.yaml --ckpt_path last
    python train.py fit      --config configs/quickstart.yaml --print_config     # resolved config
    python train.py fit --help                                                  # every option

The model is :class:`isp.lit.DenoiseModule` around a network given by ``class_path`` (default
:class:`isp.models.UNet`), the data :class:`isp.data.RawDataModule`. A ``ModelCheckpoint``
(``--checkpoint.*``) keeps ``last.ckpt`` in ``checkpoint.dirpath`` so that ``--ckpt_path last``
finds it, and watches the module's ``monitor`` metric (linked, default ``val/raw_psnr``).
The resolved config is saved as ``config.yaml`` in the run's log folder.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from isp.data import RawDataModule
from isp.lit import DenoiseModule


class DenoiseCLI(LightningCLI):
    """LightningCLI with a checkpoint callback that resumes with ``--ckpt_path last``."""

    def add_arguments_to_parser(self, parser) -> None:
        """Checkpoint options, the default network, and the values model and callbacks share."""
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "model.net": {"class_path": "isp.models.UNet"},
                "checkpoint.dirpath": "runs/checkpoints",
                "checkpoint.filename": "epoch{epoch:03d}-step{step:06d}",
                "checkpoint.auto_insert_metric_name": False,
                "checkpoint.save_last": True,
                "checkpoint.mode": "max",
            }
        )
        parser.link_arguments("model.monitor", "checkpoint.monitor")


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


if __name__ == "__main__":
    main()
