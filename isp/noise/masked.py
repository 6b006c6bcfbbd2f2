"""Read noise and row offsets of masked pixels that clip at 0 DN (a censored Gaussian).

A camera with a low black level (64 DN on some 14-bit sensors) at high ISO has read noise of
hundreds of DN: a large part of its masked optical-black pixels read 0 DN, the rest are intact.
Means, variances and even medians of such pixels are biased (the median once more than half of a
row clips, which row banding causes on every row it pushes down). The masked pixels of sensor row
``y`` are modelled as ``max(o[y] + sigma * n, floor)`` with ``n ~ N(0, 1)``: one read-noise
``sigma`` shared by all rows, one offset ``o[y]`` per row (banding). :func:`censored_rows` fits both
by expectation-maximisation on the censored normal (the E-step replaces each clipped value by its
conditional moments below ``floor``; Amemiya 1984, "Tobit models: a survey") and returns each
offset's variance from its Fisher information, which grows as a row's pixels clip.
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass

import numpy as np
from scipy.special import log_ndtr

__all__ = ["CLIP_TOLERANCE", "CensoredRows", "censored_rows", "clipped"]

CLIP_TOLERANCE = 1e-6
"""A value within this of ``floor`` counts as clipped: float32 rounding of ``(0 - black) / range``
is ~1e-9, one DN of a 16-bit range 1.5e-5."""
_PRIOR_SIGMAS = 3.0
"""Offsets have a N(median row, (3 sigma)^2) prior: finite where a whole row clips."""


@dataclass(frozen=True)
class CensoredRows:
    """The fit of :func:`censored_rows`.

    Attributes:
        offsets: ``(rows,)`` offset of each row (same units as the pixels).
        variances: ``(rows,)`` variance of each offset around the truth (inverse Fisher information).
        sigma: the read-noise standard deviation of one pixel.
        clipped: the fraction of pixels at ``floor``.
    """

    offsets: np.ndarray
    variances: np.ndarray
    sigma: float
    clipped: float


def clipped(values: np.ndarray, floor: float) -> np.ndarray:
    """Boolean mask of the values that sit at ``floor`` (0 DN after the black level)."""
    return np.asarray(values) <= floor + CLIP_TOLERANCE


def _mills(z: np.ndarray) -> np.ndarray:
    """``phi(z) / Phi(z)``, finite for every finite ``z`` (asymptotically ``-z - 1/z`` below -30)."""
    zc = np.clip(z, -30.0, 40.0)
    lam = np.exp(-0.5 * zc * zc - 0.5 * np.log(2 * np.pi) - log_ndtr(zc))
    return np.where(z < -30.0, -z - 1.0 / np.minimum(z, -30.0), lam)


def censored_rows(block: np.ndarray, floor: float, *, iterations: int = 60) -> CensoredRows:
    """Fit per-row offsets and one read noise to masked pixels clipped at ``floor``.

    Args:
        block: ``(rows, M)`` masked pixels, ``M >= 2`` per row (values at or below ``floor`` are
            clipped). Pixels more than 6 robust sigmas above their row's median (hot pixels) are
            pulled in to that bound.
        floor: the value clipped pixels read (0 DN in the pixels' units).
        iterations: EM iterations (each is a few vector operations on ``block``).

    Returns:
        :class:`CensoredRows` (read-only arrays). The last fit is kept: a frame asks for its
        read noise (:func:`isp.noise.estimate.ob_read_variance`) and then for its row offsets
        (:func:`isp.data.inputs.model_inputs`) from the same pixels, and the second call returns
        the first fit.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> band = rng.normal(0, 1.0, (400, 1))
        >>> block = np.maximum(0.2 + band + rng.normal(0, 1.0, (400, 16)), 0.0)  # ~45% clip
        >>> fit = censored_rows(block, 0.0)
        >>> round(fit.sigma, 1), bool(np.corrcoef(fit.offsets, band[:, 0])[0, 1] > 0.9)
        (1.0, True)
    """
    v = np.asarray(block, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] < 2:
        raise ValueError(f"Expected `block` of shape (rows, M >= 2). Got {v.shape}.")
    # one frame asks twice (its read noise, then its row offsets): the last fit is kept
    key = (
        float(floor),
        int(iterations),
        v.shape,
        hashlib.blake2b(np.ascontiguousarray(v), digest_size=16).digest(),
    )
    with _LAST_LOCK:
        last = _LAST.get(key)
    if last is not None:
        return last
    fit = _fit(v, float(floor), iterations)
    with _LAST_LOCK:
        _LAST.clear()
        _LAST[key] = fit
    return fit


_LAST: dict[tuple, CensoredRows] = {}
_LAST_LOCK = threading.Lock()


def _fit(v: np.ndarray, floor: float, iterations: int) -> CensoredRows:
    """:func:`censored_rows` on a validated float64 ``block``."""
    cens = clipped(v, floor)
    m = v.shape[1]
    med = np.median(v, axis=1, keepdims=True)
    intact = ~cens
    dev = np.abs(v - med)[intact]
    sigma = max(1.4826 * float(np.median(dev)) if dev.size else 0.0, 1e-12)
    v = np.minimum(v, med + 6 * sigma)
    x = np.where(cens, floor, v)
    o = med[:, 0].copy()
    r = 1.0 / _PRIOR_SIGMAS**2  # the prior's weight, in pixels
    # rows that clip almost whole say little about sigma and lean on the prior: leave them out of it
    for_sigma = cens.mean(axis=1) <= 0.75
    if for_sigma.mean() < 0.1:
        for_sigma[:] = True
    for _ in range(iterations):
        z = (floor - o[:, None]) / sigma
        lam = _mills(z)
        e1 = np.where(cens, o[:, None] - sigma * lam, x)  # E[x | x <= floor] for clipped pixels
        centre = float(np.median(o))
        o_new = (e1.sum(axis=1) + r * centre) / (m + r)
        dev2 = np.where(
            cens,
            sigma**2 * (1.0 - z * lam - lam * lam) + (e1 - o_new[:, None]) ** 2,
            (x - o_new[:, None]) ** 2,
        )
        sigma_new = float(np.sqrt(dev2[for_sigma].mean() * m / (m - 1)))
        done = np.max(np.abs(o_new - o)) < 1e-4 * sigma and abs(sigma_new - sigma) < 1e-5 * sigma
        o, sigma = o_new, max(sigma_new, 1e-12)
        if done:
            break
    z = (floor - o) / sigma
    lam = _mills(z)
    k = cens.sum(axis=1)
    # Fisher information of a row's offset: each intact pixel 1 / sigma^2, each clipped one less
    info = ((m - k) + k * lam * (lam + z) + r) / sigma**2
    variances = 1.0 / info
    if not (np.isfinite(o).all() and np.isfinite(variances).all() and math.isfinite(sigma)):
        # degenerate pixels (e.g. read noise far below one DN): the medians, as precise as a mean
        sigma = max(float(np.nan_to_num(sigma, nan=0.0, posinf=0.0)), 1e-12)
        o = med[:, 0]
        variances = np.full(o.shape, sigma**2 * (math.pi / 2) / m)
    o, variances = np.array(o), np.array(variances)
    o.flags.writeable = variances.flags.writeable = False  # a kept fit is shared between callers
    return CensoredRows(o, variances, sigma, float(cens.mean()))
