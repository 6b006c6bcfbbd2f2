"""Per-file noise measurement: the shot-noise gain and the read variance, from the file itself.

A raw pixel at normalised level ``x`` (mosaic units: a fraction of ``white - black``) has noise
variance ``a * x + b`` (Poisson shot noise at system gain ``K``: ``a = K / (white - black)``;
Gaussian-like read noise: ``b``). ISO alone does not fix ``a`` and ``b`` (cameras differ by 2-3x
at one ISO, merged raws carry an ISO whose noise they no longer have), so they are measured:

- ``b`` from the masked optical-black pixels: the variance *within* each masked row (so that row
  banding does not count), pooled over rows, winsorised against defects.
- ``a`` (and ``b`` when there are no masked pixels) from the visible pixels, after Foi et al.,
  "Practical Poissonian-Gaussian noise modeling and fitting for single-image raw data" (IEEE TIP
  2008): a diagonal Haar detail ``(p00 - p01 - p10 + p11) / 2`` of the green difference
  ``(Gr - Gb) / sqrt(2)`` (the difference cancels most texture, the Haar detail row and column
  offsets and linear gradients; for white noise its variance is the green pixels'),
  its mean square over small blocks beside the blocks' mean level, then a fit of ``var = a x + b``
  through a low quantile of the block variances per level bin. Texture only adds variance, so the
  low quantile of a bin follows its flattest blocks; the quantile is corrected by the chi-square
  factor of the block's degrees of freedom (Wilson-Hilferty), so flat frames are unbiased.

Fallbacks, in :attr:`NoiseEstimate.source`: ``"image+ob"`` (both), ``"image"`` (no masked pixels:
``a`` and ``b`` both fitted), ``"ob+prior"`` / ``"prior"`` (too few unclipped blocks: ``a`` from
the ISO through a nominal 30 000-electron full well at ISO 100, or ISO 100 when the ISO is
unknown; ``b`` from the masked pixels or the prior's 3-electron read noise). ``confidence`` is 0
for the prior and grows with the number of blocks and the agreement of the bins with the fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from isp.noise.masked import censored_rows, clipped

__all__ = ["NoiseEstimate", "estimate_noise", "ob_read_variance", "prior_noise"]

_BLOCK = 4  # Haar coefficients per block side (16 degrees of freedom)
_QUANTILE = 0.25
_Z_QUANTILE = -0.6745  # the standard normal's 0.25 quantile
_PRIOR_FULL_WELL = 30000.0
_PRIOR_READ_E = 3.0
A_RANGE = (1e-7, 0.2)
"""Range the shot slope ``a`` is clamped to (ISO ~1 of a huge pixel .. far beyond ISO 100 000)."""
B_RANGE = (1e-11, 0.05)
"""Range the read variance ``b`` is clamped to."""


@dataclass(frozen=True)
class NoiseEstimate:
    """``var = a * x + b`` in mosaic units, and how it was obtained.

    Attributes:
        a: shot-noise slope (``K / (white - black)``).
        b: read-noise variance.
        confidence: 0 (a prior) .. 1 (many flat blocks agreeing with the fit).
        source: ``"image+ob"``, ``"image"``, ``"ob+prior"`` or ``"prior"``.
        blocks: blocks that entered the fit.
    """

    a: float
    b: float
    confidence: float
    source: str
    blocks: int

    def std(self, level: float) -> float:
        """Noise standard deviation at normalised level ``level``."""
        return math.sqrt(max(self.a * max(level, 0.0) + self.b, 0.0))


def prior_noise(iso: float | None) -> tuple[float, float]:
    """``(a, b)`` of a nominal camera at ``iso`` (ISO 100 when unknown): 30k e- at ISO 100, 3 e- read.

    An unknown ISO takes the base ISO: too little noise assumed leaves noise in, too much erases
    detail, and only the first is never worse than the input.
    """
    iso = 100.0 if iso is None or not math.isfinite(iso) or iso <= 0 else float(iso)
    a = iso / 100.0 / _PRIOR_FULL_WELL
    return a, (a * _PRIOR_READ_E) ** 2


def ob_read_variance(masked: list[np.ndarray | None], floor: float | None = None) -> tuple[float, int] | None:
    """Read variance from masked pixels: the pooled within-row variance (``(rows, M)`` arrays).

    Each row's own mean is removed (row banding is not read noise); values beyond 6 robust sigmas
    of the row are clipped (hot or dead masked pixels). Where more than 0.1% of the pixels sit at
    ``floor`` (clipped at 0 DN), a censored-normal fit (:func:`isp.noise.masked.censored_rows`).
    Returns ``(variance, pixels)`` or None when no array has at least 2 columns.

    >>> rng = np.random.default_rng(0)
    >>> ob = rng.normal(0, 0.01, (500, 16)) + rng.normal(0, 0.05, (500, 1))  # read + banding
    >>> round(ob_read_variance([ob])[0] / 1e-4, 2)
    1.0
    """
    rows = [
        np.asarray(m, dtype=np.float64) for m in masked if m is not None and m.ndim == 2 and m.shape[1] >= 2
    ]
    if not rows:
        return None
    block = np.concatenate(rows, axis=1) if len({r.shape[0] for r in rows}) == 1 else rows[0]
    centred = block - np.median(block, axis=1, keepdims=True)
    scale = 1.4826 * float(np.median(np.abs(centred))) or float(np.std(centred)) or 1e-12
    centred = np.clip(centred, -6 * scale, 6 * scale)
    if floor is not None and np.mean(clipped(block, floor)) > 1e-3:
        # clipped at 0 DN (a low black level at high ISO): a censored-normal fit per row
        var = censored_rows(block, floor).sigma ** 2
    else:
        var = float(centred.var(axis=1, ddof=1).mean())
    return float(var), int(block.size)


def _chi2_quantile_factor(dof: int) -> float:
    """``chi2_q(dof) / dof`` at ``q = _QUANTILE`` by the Wilson-Hilferty approximation."""
    c = 2.0 / (9.0 * dof)
    return (1.0 - c + _Z_QUANTILE * math.sqrt(c)) ** 3


def _blocks(planes: np.ndarray, floor: float, ceiling: float) -> tuple[np.ndarray, np.ndarray]:
    """Block mean level and block Haar variance of the green difference, ``(n,)`` each.

    ``(Gr - Gb) / sqrt(2)`` has the green pixels' noise variance but little of the scene: the two
    greens sample the same colour half a pixel apart, so texture cancels to first order before
    the Haar detail removes what is left of gradients. Blocks touching ``floor`` or ``ceiling`` in
    any plane are dropped.
    """
    c, h, w = planes.shape
    hb, wb = h // (2 * _BLOCK), w // (2 * _BLOCK)
    if hb == 0 or wb == 0:
        return np.zeros(0), np.zeros(0)
    p = planes[:, : hb * 2 * _BLOCK, : wb * 2 * _BLOCK].astype(np.float32, copy=False)
    g = (p[1] - p[2]) * np.float32(1 / math.sqrt(2))
    hh = (g[0::2, 0::2] - g[0::2, 1::2] - g[1::2, 0::2] + g[1::2, 1::2]) * 0.5
    var = np.square(hh, dtype=np.float32).reshape(hb, _BLOCK, wb, _BLOCK).mean(axis=(1, 3), dtype=np.float64)
    level = ((p[1] + p[2]) * 0.5).reshape(hb, 2 * _BLOCK, wb, 2 * _BLOCK)
    mean = level.mean(axis=(1, 3), dtype=np.float64)
    view = p.reshape(c, hb, 2 * _BLOCK, wb, 2 * _BLOCK)
    ok = ((view.max(axis=(2, 4)) < ceiling) & (view.min(axis=(2, 4)) > floor)).all(axis=0)
    return mean[ok], var[ok]


def estimate_noise(
    planes: np.ndarray,
    *,
    masked: list[np.ndarray | None] | None = None,
    iso: float | None = None,
    floor: float = -np.inf,
    ceiling: float = 0.98,
    bins: int = 12,
    min_blocks: int = 12,
) -> NoiseEstimate:
    """Measure ``var = a * x + b`` of one raw frame.

    Args:
        planes: ``(4, h, w)`` packed planes in mosaic units (``isp.raw.pack``).
        masked: arrays of masked optical-black pixels ``(rows, M)`` in the same units (e.g.
            ``frame.optical_black.left`` / ``.right``); None or empty: no masked pixels.
        iso: EXIF ISO, used only by the prior when the image cannot be fitted.
        floor: values at or below this are clipped at 0 DN (``-black / (white - black)``); blocks
            touching it are left out.
        ceiling: blocks reaching this level (near saturation) are left out.
        bins: level bins of the fit.
        min_blocks: fewer unclipped blocks than this: the prior.

    Returns:
        A :class:`NoiseEstimate`; ``a`` and ``b`` clamped to :data:`A_RANGE` / :data:`B_RANGE`.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> clean = np.broadcast_to(np.linspace(0.05, 0.6, 256, dtype=np.float32), (4, 128, 256))
        >>> noisy = clean + rng.normal(0, 1, clean.shape) * np.sqrt(1e-3 * clean + 1e-5)
        >>> est = estimate_noise(noisy.astype(np.float32))
        >>> est.source, round(est.a / 1e-3, 1), round(est.std(0.3) / 3.1e-4**0.5, 1)
        ('image', 1.0, 1.0)
    """
    planes = np.asarray(planes)
    if planes.ndim != 3 or planes.shape[0] != 4:
        raise ValueError(f"Expected `planes` of shape (4, h, w). Got {planes.shape}.")
    ob = ob_read_variance(masked or [], None if not math.isfinite(floor) else floor)
    b_ob = None if ob is None else max(ob[0], B_RANGE[0])
    mean, var = _blocks(planes, floor, ceiling)
    n = int(mean.size)
    if n < min_blocks:
        a, b = prior_noise(iso)
        source = "prior" if b_ob is None else "ob+prior"
        return NoiseEstimate(_clamp(a, A_RANGE), _clamp(b if b_ob is None else b_ob, B_RANGE), 0.0, source, n)
    order = np.argsort(mean)
    groups = np.array_split(order, min(bins, n // 8))
    factor = _chi2_quantile_factor(_BLOCK * _BLOCK)
    mu = np.array([np.median(mean[g]) for g in groups])
    v = np.array([np.quantile(var[g], _QUANTILE) for g in groups]) / factor
    counts = np.array([len(g) for g in groups], dtype=np.float64)
    weight = counts / np.maximum(v, 1e-14) ** 2
    for _ in range(3):  # weights from the fit, not from the noisy bins themselves (that biases low)
        if b_ob is not None:
            a = float(np.sum(weight * mu * (v - b_ob)) / max(np.sum(weight * mu * mu), 1e-30))
            b = b_ob
            source = "image+ob"
        else:
            design = np.stack([mu, np.ones_like(mu)], axis=1) * np.sqrt(weight)[:, None]
            (a, b), *_ = np.linalg.lstsq(design, v * np.sqrt(weight), rcond=None)
            a, b = float(a), float(b)
            if b <= 0:  # no dark blocks to pin b: refit the slope through a tiny read variance
                b = B_RANGE[0]
                a = float(np.sum(weight * mu * v) / max(np.sum(weight * mu * mu), 1e-30))
            source = "image"
        if not (math.isfinite(a) and a > 0):
            break
        fit = np.maximum(a * mu + b, 1e-14)
        # weights of the fit's own variance (the bins' noisy values bias it low), cut down where a
        # bin sits far above the fit (texture in its flattest blocks, not noise)
        weight = counts / fit**2 * np.minimum(1.0, fit / np.maximum(v, 1e-14)) ** 4
    if not (math.isfinite(a) and a > 0):
        a = prior_noise(iso)[0]
        return NoiseEstimate(_clamp(a, A_RANGE), _clamp(b, B_RANGE), 0.0, "ob+prior" if b_ob else "prior", n)
    fit = a * mu + b
    spread = float(np.median(np.abs(np.log(np.maximum(v, 1e-14) / np.maximum(fit, 1e-14)))))
    confidence = min(1.0, n / 2000.0) ** 0.5 * math.exp(-2.0 * spread)
    return NoiseEstimate(_clamp(a, A_RANGE), _clamp(b, B_RANGE), float(confidence), source, n)


def _clamp(value: float, bounds: tuple[float, float]) -> float:
    return float(min(max(value, bounds[0]), bounds[1]))
