"""Row banding from the whole row: masked pixels and visible pixels combined.

Row (banding) noise adds one offset ``b[y]`` to every pixel of sensor row ``y``. Two measurements
see it:

- the masked optical-black pixels of the row: their mean is ``b[y]`` plus read noise over
  ``sqrt(M)`` (``M`` masked pixels; 16 give a quarter of the read noise, too coarse at high ISO);
- the row's own visible pixels, hundreds of them: the robust mean over the row of the vertical
  second difference ``p[y] - (p[y-1] + p[y+1]) / 2`` of each packed plane is
  ``b[y] - (b[y-1] + b[y+1]) / 2`` (for the sensor rows of that plane) plus a little leftover of
  the scene, to a precision of ``~1.2 sigma / sqrt(W)``. It misses only slow banding.

:func:`row_banding` combines both as the MAP estimate under a white Gaussian prior on ``b``
(variance fitted from the data): a quadratic problem in ``y``, solved
exactly as one banded linear system in ``O(H)``. Without masked pixels only the
visible-pixel term remains; without banding the fitted prior variance is ~0 and so is the estimate.
The result is what the denoiser's row inputs carry and what :func:`isp.data.inputs.model_inputs`
subtracts before the network.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import spsolve

__all__ = ["row_banding", "row_second_difference"]


def _robust_var(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    if x.size < 4:
        return 0.0
    return float((1.4826 * np.median(np.abs(x - np.median(x)))) ** 2)


def row_second_difference(plane: np.ndarray) -> tuple[np.ndarray, float]:
    """Interquartile mean over each row of ``p[y] - (p[y-1] + p[y+1]) / 2`` (mirrored at the ends).

    Args:
        plane: ``(h, w)`` one packed colour plane.

    Returns:
        ``(h,)`` the per-row statistic and its noise variance (from the within-row spread: the
        interquartile mean of ``w`` Gaussian values has about ``1.2 sigma^2 / w``).
    """
    p = np.asarray(plane, dtype=np.float32)
    if p.shape[0] < 3:
        return np.zeros(p.shape[0]), np.inf
    up = np.concatenate([p[1:2], p[:-1]], axis=0)
    down = np.concatenate([p[1:], p[-2:-1]], axis=0)
    d = p - 0.5 * (up + down)
    w = d.shape[1]
    lo, hi = w // 4, w - w // 4
    part = np.partition(d, (lo, hi - 1), axis=1)
    stat = part[:, lo:hi].mean(axis=1, dtype=np.float64)
    spread = np.median((part[:, hi - 1] - part[:, lo]) / 1.349)  # interquartile range / sigma
    return stat, float(1.2 * spread**2 / w)


def row_banding(
    planes: np.ndarray,
    ob_offsets: np.ndarray | None = None,
    ob_variance: float | None = None,
) -> np.ndarray:
    """MAP estimate of the row offset of every sensor row, aligned with the packed planes.

    Args:
        planes: ``(4, h, w)`` packed planes R, Gr, Gb, B (mosaic units). R and Gr come from the
            even sensor row of each packed row, Gb and B from the odd one.
        ob_offsets: ``(2, h)`` mean of the masked pixels of the even and odd sensor row of each
            packed row (channels 0 and 2 of ``isp.raw.noise_vectors``), or None without masked
            columns.
        ob_variance: variance of each ``ob_offsets`` value around the true offset (read variance
            over the masked pixels of a row): one number, or ``(2, h)`` per row (rows whose masked
            pixels clip at 0 DN know less, :func:`isp.noise.masked.censored_rows`); required with
            ``ob_offsets``.

    Returns:
        ``(2, h)`` float32: the estimated offset of the even and the odd sensor row of each packed
        row (zero-mean; mosaic units). Subtract row ``0`` from planes 0, 1 and row ``1`` from 2, 3.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> y = np.linspace(0, 1, 200)[None, :, None]
        >>> band = rng.normal(0, 0.01, (2, 200))
        >>> planes = 0.3 + 0.1 * y + rng.normal(0, 0.01, (4, 200, 300))
        >>> planes[:2] += band[0][None, :, None]; planes[2:] += band[1][None, :, None]
        >>> est = row_banding(planes.astype(np.float32))
        >>> bool(np.corrcoef(est[0], band[0])[0, 1] > 0.9)
        True
    """
    planes = np.asarray(planes)
    if planes.ndim != 3 or planes.shape[0] != 4:
        raise ValueError(f"Expected `planes` of shape (4, h, w). Got {planes.shape}.")
    h = planes.shape[1]
    if ob_offsets is not None:
        ob_offsets = np.asarray(ob_offsets, dtype=np.float64)
        if ob_offsets.shape != (2, h):
            raise ValueError(f"Expected `ob_offsets` of shape (2, {h}). Got {ob_offsets.shape}.")
        var = None if ob_variance is None else np.asarray(ob_variance, dtype=np.float64)
        if var is None or var.shape not in ((), (2, h)) or not (np.isfinite(var).all() and (var > 0).all()):
            raise ValueError(
                f"Expected a positive `ob_variance` (a number or (2, {h})) with `ob_offsets`. "
                f"Got {ob_variance!r}."
            )
    out = np.zeros((2, h), dtype=np.float32)
    if h < 8:
        return out
    lap = _second_difference_operator(h)
    for stream, members in enumerate(((0, 1), (2, 3))):
        stats = [row_second_difference(planes[c]) for c in members]
        hd = np.mean([s for s, _ in stats], axis=0)
        tau2 = float(np.mean([v for _, v in stats])) / len(members)
        if ob_offsets is not None:
            o = ob_offsets[stream] - np.median(ob_offsets[stream])
            sigma_o2 = np.broadcast_to(np.asarray(ob_variance, dtype=np.float64), (2, h))[stream]
            prior = max(_robust_var(o) - float(np.median(sigma_o2)), 0.0)
            tau2 = max(tau2, _robust_var(hd) - 1.5 * prior)
        else:
            o, sigma_o2 = None, None
            prior = max((_robust_var(hd) - tau2) / 1.5, 0.0)
        if prior <= 0.0:
            continue
        # minimise |lap b - hd|^2 / tau2 + |b - o|^2 / sigma_o2 + |b|^2 / prior: a banded system
        system = (lap.T @ lap) / tau2 + sparse.identity(h) / prior
        rhs = lap.T @ hd / tau2
        if o is not None:
            system = system + sparse.diags(1.0 / sigma_o2)
            rhs = rhs + o / sigma_o2
        est = spsolve(system.tocsc(), rhs)
        out[stream] = (est - est.mean()).astype(np.float32)
    return out


def _second_difference_operator(h: int) -> sparse.csr_matrix:
    """``(h, h)`` the map from offsets to :func:`row_second_difference` (mirrored at both ends)."""
    main = np.ones(h)
    upper = np.full(h - 1, -0.5)
    lower = np.full(h - 1, -0.5)
    upper[0] = -1.0  # row 0: p[0] - p[1]
    lower[-1] = -1.0  # row h-1: p[h-1] - p[h-2]
    return sparse.diags([lower, main, upper], [-1, 0, 1], format="csr")
