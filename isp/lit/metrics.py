"""Metric helpers: the PSNR/SSIM collections and the ISO buckets of the test-time breakdown.

PSNR is the mean over images (``dim=(1, 2, 3)``), what denoising papers report; torchmetrics'
default would pool the squared error over the whole set. SSIM already averages per image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

__all__ = ["image_metrics", "iso_bucket_index", "iso_bucket_names", "psnr_metric"]


def psnr_metric() -> PeakSignalNoiseRatio:
    """PSNR on [0, 1] data, averaged over images (not pooled over pixels of the whole set).

    Example:
        >>> m = psnr_metric()
        >>> m.update(torch.zeros(2, 1, 4, 4), torch.tensor([0.1, 0.01]).view(2, 1, 1, 1).expand(2, 1, 4, 4))
        >>> round(m.compute().item(), 3)  # mean of 20 dB and 40 dB
        30.0
    """
    return PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3))


def image_metrics(ssim: bool = True) -> MetricCollection:
    """``{"psnr", "ssim"}`` on [0, 1] images ``(N, C, H, W)``; clone it with a prefix per stage.

    Example:
        >>> sorted(image_metrics().clone(prefix="val/raw_").keys(keep_base=False))
        ['val/raw_psnr', 'val/raw_ssim']
    """
    metrics = {"psnr": psnr_metric()}
    if ssim:
        metrics["ssim"] = StructuralSimilarityIndexMeasure(data_range=1.0)
    return MetricCollection(metrics)


def _check_edges(edges: Sequence[float]) -> list[float]:
    edges = [float(e) for e in edges]
    if not edges or any(e <= 0 for e in edges) or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise ValueError(f"Expected `iso_buckets` to be increasing positive ISO values. Got {list(edges)!r}.")
    return edges


def iso_bucket_names(edges: Sequence[float]) -> list[str]:
    """Names of the buckets ``(0, e0], (e0, e1], ..., (e_last, inf)`` and, last, unknown ISO.

    Example:
        >>> iso_bucket_names([400, 1600, 6400])
        ['iso_le400', 'iso_le1600', 'iso_le6400', 'iso_gt6400', 'iso_unknown']
    """
    edges = _check_edges(edges)
    names = [f"iso_le{e:g}" for e in edges]
    return [*names, f"iso_gt{edges[-1]:g}", "iso_unknown"]


def iso_bucket_index(iso: Tensor, edges: Sequence[float]) -> Tensor:
    """Bucket of each ISO value, indexing :func:`iso_bucket_names` (ISO <= 0 means unknown).

    Args:
        iso: ``(N,)`` ISO speeds, 0 where unknown.
        edges: increasing upper edges of the buckets.

    Returns:
        ``(N,)`` int64 in ``[0, len(edges) + 1]``.

    Example:
        >>> iso_bucket_index(torch.tensor([100.0, 400, 800, 6400, 12800, 0]), [400, 1600, 6400]).tolist()
        [0, 0, 1, 2, 3, 4]
    """
    edges = _check_edges(edges)
    index = torch.bucketize(iso.float(), torch.tensor(edges, device=iso.device), right=False)
    return torch.where(iso > 0, index, torch.full_like(index, len(edges) + 1))
