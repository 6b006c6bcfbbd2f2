"""A Lightning prediction writer: ``train.py predict`` writes what ``predict.py`` writes.

:meth:`isp.lit.DenoiseModule.predict_step` denoises each file of a predict batch whole and tiled
through :func:`isp.predict.denoise_file` (the function ``predict.py`` uses);
:class:`RawPredictionWriter` writes each result to ``out_dir/<stem>.<ext>`` through
:func:`isp.predict.write_output`: a DNG in the input's full sensor frame with its metadata, or a
16-bit TIFF / 8-bit PNG rendering, atomically and never over an existing file unless
``overwrite``.

In a config::

    trainer:
      callbacks:
        - class_path: isp.lit.writer.RawPredictionWriter
          init_args: {out_dir: outputs/denoised, format: dng}
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter

from isp.predict import FORMATS, Format, output_path, write_output

__all__ = ["RawPredictionWriter"]

log = logging.getLogger(__name__)
# the per-rank summary goes through Lightning's logger, which prints INFO lines (its own callbacks')
summary_log = logging.getLogger("lightning.pytorch.callbacks.isp_prediction_writer")


class RawPredictionWriter(BasePredictionWriter):
    """Write each predicted frame as a denoised DNG (or sRGB TIFF/PNG) beside the others.

    Args:
        out_dir: output folder (created).
        format: ``"dng"`` (default), ``"tiff"`` (16-bit sRGB) or ``"png"`` (8-bit sRGB).
        overwrite: replace existing outputs (inputs are never replaced).
        strict: raise on the first file that cannot be written; otherwise log it, go on, and
            list it in :attr:`failures`.

    Under DDP (``--trainer.strategy ddp --trainer.devices N``) each process predicts and writes
    its own share of the frames (Lightning's predict sampler gives every frame to one rank, without
    padding), and logs one line at the end: ``RawPredictionWriter rank R/N: wrote K file(s)``.

    Attributes:
        written: paths written so far (by this process).
        failures: ``(input path, reason)`` of the files that could not be written.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike = "outputs/predict",
        format: Format = "dng",  # noqa: A002 - the CLI option's name
        overwrite: bool = False,
        strict: bool = False,
    ) -> None:
        super().__init__(write_interval="batch")
        if format not in FORMATS:
            raise ValueError(f"Expected `format` to be one of {sorted(FORMATS)}. Got {format!r}.")
        self.out_dir = Path(out_dir)
        self.format = format
        self.overwrite = overwrite
        self.strict = strict
        self.written: list[Path] = []
        self.failures: list[tuple[str, str]] = []

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Write every ``(frame, mosaic)`` of the batch's prediction (see ``predict_step``)."""
        if not isinstance(prediction, list | tuple) or not all(
            isinstance(p, tuple) and len(p) == 2 for p in prediction
        ):
            raise ValueError(
                "Expected the prediction to be a list of (frame, mosaic), one per file, as "
                f"isp.lit.DenoiseModule.predict_step returns. Got {type(prediction).__name__}."
            )
        for frame, mosaic in prediction:
            path = frame.path
            try:
                final = output_path(path, self.out_dir, self.format)
                written = write_output(
                    final, frame, mosaic, self.format, overwrite=self.overwrite, protected=[path]
                )
                self.written.append(written)
            except (ValueError, OSError) as err:
                if self.strict:
                    raise
                self.failures.append((path, str(err)))
                log.warning("not written: %s: %s", path, err)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Log this process's share: files written (and failed)."""
        failed = f", {len(self.failures)} failed" if self.failures else ""
        summary_log.info(
            "RawPredictionWriter rank %d/%d: wrote %d file(s) to %s%s",
            trainer.global_rank,
            trainer.world_size,
            len(self.written),
            self.out_dir,
            failed,
        )
