"""A Lightning prediction writer: ``train.py predict`` writes what ``predict.py`` writes.

:class:`RawPredictionWriter` receives the denoised packed planes of each predict batch
(:meth:`isp.lit.DenoiseModule.predict_step`) with the batch itself, re-reads each input file
named in ``batch["path"]`` for its sensor frame and metadata, undoes the batch's digital gain
(``scalar`` channel 2 holds ``log2(gain)``), and writes ``out_dir/<stem>.<ext>`` through
:func:`isp.predict_io.write_output`: a DNG in the input's full sensor frame with its metadata,
or a 16-bit TIFF / 8-bit PNG rendering, atomically and never over an existing file unless
``overwrite``. Predictions should be whole frames (``data.eval_crop_size: null``); the
DataModule batches frames of mixed CFA phases as their common centre crop, which can be a
packed row / column short of a frame: those border pixels keep the input's values (a warning
says how many). Larger crops are refused.

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
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from isp.predict_io import FORMATS, output_path, write_output

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
        format: Literal["dng", "tiff", "png"] = "dng",  # noqa: A002 - the CLI option's name
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
        batch: dict,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Write every frame of the batch."""
        if not isinstance(prediction, torch.Tensor) or prediction.ndim != 4 or prediction.shape[1] != 4:
            raise ValueError(
                "Expected the prediction to be packed planes (N, 4, h, w). "
                f"Got {getattr(prediction, 'shape', prediction)!r}."
            )
        paths = batch.get("path") if isinstance(batch, dict) else None
        if paths is None or len(paths) != prediction.shape[0]:
            raise ValueError("Expected the predict batch to carry `path` (one input file per prediction).")
        scalar = batch.get("scalar")
        gains = torch.ones(prediction.shape[0]) if scalar is None else torch.exp2(scalar[:, 2].float().cpu())
        planes = (prediction.detach().float().cpu() / gains[:, None, None, None]).numpy()
        for path, item in zip(paths, planes, strict=True):
            try:
                self._write(path, item)
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

    def _write(self, path: str, planes: np.ndarray) -> None:
        from isp.data.transforms import center_crop_params
        from isp.raw import pack, read, unpack

        frame = read(path)
        packed, info = pack(frame)
        h, w = planes.shape[1:]
        crop = center_crop_params(packed.shape[1:], (h, w))
        if planes.shape[0] != 4 or (crop.height, crop.width) != (h, w):
            raise ValueError(
                f"Expected a prediction of at most the packed frame {packed.shape} for {path!r}. "
                f"Got {planes.shape}."
            )
        if (h, w) != packed.shape[1:]:
            missing = packed.shape[1] * packed.shape[2] - h * w
            if missing > 0.05 * packed.shape[1] * packed.shape[2]:
                raise ValueError(
                    f"Expected a whole-frame prediction {packed.shape} for {path!r} "
                    f"(set data.eval_crop_size: null). Got a centre crop {planes.shape}."
                )
            # whole frames of mixed CFA phases are batched as their common centre crop: the few
            # packed rows / columns outside it keep the input's values
            log.warning("%s: %d packed pixels at the border were not predicted; kept as input", path, missing)
            packed[:, crop.top : crop.top + h, crop.left : crop.left + w] = planes
            planes = packed
        mosaic = unpack(planes.astype(np.float32, copy=False), info)
        final = output_path(path, self.out_dir, self.format)
        self.written.append(
            write_output(final, frame, mosaic, self.format, overwrite=self.overwrite, protected=[path])
        )
