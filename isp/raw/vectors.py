"""Per-row and per-column sensor-noise vectors from masked optical-black pixels.

Row (banding) noise is shared along a sensor row, so the masked pixels left and right of the
visible area see the same offset as the visible pixels of that row; the masked rows above and
below see each column's offset. The vectors line up with :func:`~isp.raw.pack`: packed row ``k``
holds mosaic rows ``top + 2k`` (the "even" sensor row of the pair, the R/Gr row) and
``top + 2k + 1`` (the "odd" one, the Gb/B row), ``top`` being pack's phase crop; columns likewise.

Statistics, per row (column) of masked pixels, in mosaic units:

- offset: the mean after winsorising at ``median +- 8 * scale`` of all the masked pixels of that
  side (``scale`` = 1.4826 * MAD, floored at 1 DN). The mean, not a median, because raw values are
  integers: a median moves in whole-DN steps and cannot resolve the sub-DN banding of low ISOs,
  and it is ~1.25x noisier than the mean for Gaussian read noise. The winsorising makes a hot or
  dead masked pixel count as at most 8 robust sigmas, so one defect cannot fake a band (median and
  MAD are estimated on an evenly strided subsample of ~8k masked pixels).
- spread: the standard deviation of the same winsorised values (0 for a single pixel).
"""

from __future__ import annotations

import numpy as np

from .frame import RawFrame
from .pack import phase_crop

__all__ = ["COL_CHANNELS", "ROW_CHANNELS", "noise_vectors"]

#: Channels of the row vectors: even-row offset, even-row spread, odd-row offset, odd-row spread, valid.
ROW_CHANNELS = 5
#: Channels of the column vectors: the same, for even / odd sensor columns.
COL_CHANNELS = 5

_CLIP_SIGMAS = 8.0


def _line_stats(blocks: list[np.ndarray], axis: int, dn: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Winsorised mean and std along ``axis`` of the concatenation of ``blocks`` (None if empty)."""
    blocks = [b for b in blocks if b is not None and b.size]
    if not blocks:
        return None
    # The clip range only needs a rough centre and scale: estimate them on <= ~8k samples
    # (the MAD's relative standard error is then ~1%).
    total_size = sum(b.size for b in blocks)
    step = max(1, total_size // 8192)
    flat = np.concatenate([b.ravel()[::step] for b in blocks])
    centre = float(np.median(flat))
    scale = max(1.4826 * float(np.median(np.abs(flat - centre))), dn)
    lo, hi = centre - _CLIP_SIGMAS * scale, centre + _CLIP_SIGMAS * scale
    n = sum(b.shape[axis] for b in blocks)
    total = None
    total_sq = None
    for b in blocks:
        c = np.clip(b, lo, hi)
        s, s2 = c.sum(axis=axis, dtype=np.float64), np.square(c, dtype=np.float64).sum(axis=axis)
        total = s if total is None else total + s
        total_sq = s2 if total_sq is None else total_sq + s2
    mean = total / n
    var = np.maximum(total_sq / n - np.square(mean), 0.0)
    return mean, np.sqrt(var)


def _arrange(stats: tuple[np.ndarray, np.ndarray] | None, start: int, length: int) -> np.ndarray:
    """``(5, length)`` from per-line (mean, std): pairs of lines from ``start``, plus validity."""
    out = np.zeros((5, length), dtype=np.float32)
    if stats is None:
        return out
    mean, std = stats
    stop = start + 2 * length
    out[0], out[1] = mean[start:stop:2], std[start:stop:2]
    out[2], out[3] = mean[start + 1 : stop : 2], std[start + 1 : stop : 2]
    out[4] = 1.0
    return out


def noise_vectors(frame: RawFrame) -> tuple[np.ndarray, np.ndarray]:
    """Offset and spread of the masked pixels of every sensor row and column, aligned with ``pack``.

    Args:
        frame: a :class:`~isp.raw.RawFrame` (its ``optical_black``, ``cfa`` and levels are used).

    Returns:
        ``row float32 (ROW_CHANNELS, h)`` and ``col float32 (COL_CHANNELS, w)`` where
        ``(4, h, w)`` is the shape of ``pack(frame)``. Channels: offset and spread of the even
        sensor row (column) of each packed row (column), offset and spread of the odd one, and a
        validity channel: 1 where measured; all 5 channels are 0 when the sensor has no masked
        columns (for ``row``) or no masked rows (for ``col``). Mosaic units (fractions of
        ``white - black``).

    Example:
        >>> from isp.raw import frame_from_sensor
        >>> sensor = np.full((8, 10), 64, dtype=np.uint16)
        >>> sensor[2] += 4  # a band on sensor row 2, masked columns included
        >>> f = frame_from_sensor(sensor, cfa="RGGB", black_level=64, white_level=1088,
        ...                       active_area=(0, 2, 8, 10))  # 2 masked columns on the left
        >>> row, col = noise_vectors(f)
        >>> row.shape, col.shape, row[0].tolist(), row[4].tolist(), col[4].tolist()
        ((5, 4), (5, 4), [0.0, 0.00390625, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0])
    """
    if not isinstance(frame, RawFrame):
        raise TypeError(f"Expected `frame` to be a RawFrame. Got {type(frame).__name__}.")
    H, W = frame.visible_shape
    top, left = phase_crop(frame.cfa)
    h, w = (H - top) // 2, (W - left) // 2
    dn = 1.0 / float(frame.white_level - np.mean(frame.black_level))  # one DN in mosaic units
    ob = frame.optical_black
    row = _arrange(_line_stats([ob.left, ob.right], axis=1, dn=dn), top, h)
    col = _arrange(_line_stats([ob.top, ob.bottom], axis=0, dn=dn), left, w)
    return row, col
