"""Per-image evaluation for the results study: PSNR and SSIM in the raw and the sRGB domain.

The definitions are the ones the training module logs (see :mod:`isp.lit`): data range 1, PSNR
computed per image (``dim=(1, 2, 3)``) and then averaged over images (the figure papers report,
not torchmetrics' pooled default), SSIM with torchmetrics' Gaussian 11x11 window averaged per
image. Raw metrics are on the packed planes (R, Gr, Gb, B) clamped to [0, 1]; sRGB metrics on
:func:`isp.models.render.raw_to_srgb` of the unclipped prediction and target (it clamps the linear
values after the colour matrix), exactly as :class:`isp.lit.DenoiseModule` does.

Results are kept per image (a list of dicts) so that any grouping, e.g. by ISO bucket, is a
mean over the same per-image numbers. The ISO buckets are the training module's
(:func:`isp.lit.metrics.iso_bucket_names`): ``(0, 400], (400, 1600], (1600, 6400], (6400, inf)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from isp.lit.metrics import iso_bucket_index, iso_bucket_names
from isp.models.render import raw_to_srgb

__all__ = [
    "DEFAULT_ISO_EDGES",
    "METRICS",
    "bucket_names",
    "bucket_of",
    "image_metrics",
    "mean_std",
]

METRICS = ("psnr_raw", "ssim_raw", "psnr_srgb", "ssim_srgb")
DEFAULT_ISO_EDGES = (400.0, 1600.0, 6400.0)
"""Upper edges of the ISO buckets: the default of :class:`isp.lit.DenoiseModule`."""


def image_metrics(pred: Tensor, target: Tensor, wb: Tensor, cam_to_srgb: Tensor) -> dict[str, Tensor]:
    """PSNR and SSIM of every image, raw and sRGB.

    Args:
        pred: ``(N, 4, h, w)`` packed planes (normalised units, unclipped: the raw metrics clamp
            them to [0, 1]; the sRGB rendering clamps after the colour matrix, as in training).
        target: ``(N, 4, h, w)`` clean packed planes.
        wb: ``(N, 3)`` as-shot white balance, for the sRGB rendering.
        cam_to_srgb: ``(N, 3, 3)`` camera -> linear sRGB matrix.

    Returns:
        Dict with the keys of :data:`METRICS`, each a float64 tensor ``(N,)``.

    Example:
        >>> t = torch.full((2, 4, 16, 16), 0.5)
        >>> m = image_metrics(t + 0.01, t, torch.ones(2, 3), torch.eye(3).expand(2, 3, 3))
        >>> [round(v, 2) for v in m["psnr_raw"].tolist()]
        [40.0, 40.0]
    """
    if not isinstance(pred, Tensor) or not isinstance(target, Tensor):
        raise TypeError("Expected `pred` and `target` to be torch.Tensors.")
    if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 4:
        raise ValueError(
            "Expected `pred` and `target` of the same shape (N, 4, h, w). "
            f"Got {tuple(pred.shape)} and {tuple(target.shape)}."
        )
    pred, target = pred.detach().double(), target.detach().double()
    wb, cam_to_srgb = wb.double(), cam_to_srgb.double()
    out = {}
    with torch.no_grad():
        for domain, (p, t) in (
            ("raw", (pred.clamp(0.0, 1.0), target.clamp(0.0, 1.0))),
            ("srgb", (raw_to_srgb(pred, wb, cam_to_srgb), raw_to_srgb(target, wb, cam_to_srgb))),
        ):
            out[f"psnr_{domain}"] = peak_signal_noise_ratio(
                p, t, data_range=1.0, dim=(1, 2, 3), reduction="none"
            )
            out[f"ssim_{domain}"] = structural_similarity_index_measure(
                p, t, data_range=1.0, reduction="none"
            )
    return {k: out[k] for k in METRICS}


def bucket_names(edges: Sequence[float] = DEFAULT_ISO_EDGES) -> list[str]:
    """Names of the ISO buckets, those of the training module's test breakdown (unknown ISO excluded).

    Example:
        >>> bucket_names()
        ['iso_le400', 'iso_le1600', 'iso_le6400', 'iso_gt6400']
    """
    return iso_bucket_names(edges)[:-1]


def bucket_of(iso: float, edges: Sequence[float] = DEFAULT_ISO_EDGES) -> str:
    """The bucket name of one ISO value (``(0, e0], (e0, e1], ..., (e_last, inf)``; 0: unknown).

    Example:
        >>> bucket_of(400.0), bucket_of(800.0), bucket_of(25600.0), bucket_of(0.0)
        ('iso_le400', 'iso_le1600', 'iso_gt6400', 'iso_unknown')
    """
    index = int(iso_bucket_index(torch.tensor([float(iso)]), edges)[0])
    return iso_bucket_names(edges)[index]


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for a single value).

    Example:
        >>> mean_std([1.0, 2.0, 3.0])
        (2.0, 1.0)
    """
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0
