"""Black subtraction and white normalisation per Bayer position (one cache-friendly pass), and back to DN."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from isp.raw.frame import RawFrame

__all__ = ["check_finite_output", "denormalize", "normalize", "normalize_packed"]

_CHUNK_ROWS = 256  # rows per pass: keeps the working set in cache on 6000-wide sensors
_CHUNK_PAIRS = 32  # row pairs per pass of normalize_packed: a ~0.75 MB uint32 scratch at 6000 wide


def _tiles(black_level: np.ndarray, white_level: float, w: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 ``(2, w)`` black and ``1 / (white - black)`` for an even and an odd row."""
    cols = np.arange(w) % 2
    black_rows = np.asarray(black_level, dtype=np.float64).reshape(2, 2)[:, cols]
    scale_rows = (1.0 / (float(white_level) - black_rows)).astype(np.float32)
    return black_rows.astype(np.float32), scale_rows


def normalize(
    raw: np.ndarray,
    black_level: np.ndarray,
    white_level: float,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``(raw - black) / (white - black)`` with ``black`` repeating in 2x2 from ``raw[0, 0]``.

    Args:
        raw: ``(h, w)`` integer or float DN values (any strides, e.g. a view into the sensor).
        black_level: ``(2, 2)`` black level per position of ``raw``'s top-left 2x2 (DN).
        white_level: saturation level (DN).
        out: optional preallocated ``float32 (h, w)`` result.

    Returns:
        ``float32 (h, w)``, 0 at black, 1 at white, not clipped.

    Example:
        >>> normalize(np.array([[64, 1023], [74, 64]]), np.full((2, 2), 64.0), 1023.0)
        array([[0.        , 1.        ],
               [0.01042753, 0.        ]], dtype=float32)
    """
    h, w = raw.shape
    black = np.asarray(black_level, dtype=np.float64).reshape(2, 2)
    if out is None:
        out = np.empty((h, w), dtype=np.float32)
    if h == 0 or w == 0:
        return out
    black_rows, scale_rows = _tiles(black, white_level, w)
    even_h = h - h % 2
    for r in range(0, even_h, _CHUNK_ROWS):
        stop = min(r + _CHUNK_ROWS, even_h)
        o = out[r:stop].reshape(-1, 2, w)
        np.subtract(raw[r:stop].reshape(-1, 2, w), black_rows, out=o, dtype=np.float32)
        np.multiply(o, scale_rows, out=o)
    if h % 2:  # last, unpaired row (an even row)
        o = out[h - 1]
        np.subtract(raw[h - 1], black_rows[0], out=o, dtype=np.float32)
        np.multiply(o, scale_rows[0], out=o)
    return out


def normalize_packed(raw: np.ndarray, black_level: np.ndarray, white_level: float) -> np.ndarray:
    """:func:`normalize` and pack in one pass: ``(2h, 2w)`` raw -> ``float32 (4, h, w)`` planes.

    Planes are the 2x2 positions TL, TR, BL, BR of ``raw``; the values are bit-identical to
    packing ``normalize(raw, black_level, white_level)``. Each chunk of row pairs is normalised
    into a small cache-resident scratch buffer and scattered to the planes from there.

    Args:
        raw: ``(2h, 2w)`` DN values (any strides).
        black_level: ``(2, 2)`` black per position of ``raw``'s top-left 2x2 (DN).
        white_level: saturation level (DN).

    Returns:
        ``float32 (4, h, w)``.

    Example:
        >>> raw = np.array([[10, 20, 10, 20], [30, 40, 30, 40]])
        >>> normalize_packed(raw, np.zeros((2, 2)), 40.0)[:, 0, 0].tolist()
        [0.25, 0.5, 0.75, 1.0]
    """
    h2, w2 = raw.shape
    if h2 % 2 or w2 % 2:
        raise ValueError(f"Expected `raw` with an even height and width. Got {raw.shape}.")
    h, w = h2 // 2, w2 // 2
    if raw.dtype == np.uint16 and raw.strides[1] == 2 and sys.byteorder == "little" and h > 0 and w > 0:
        return _normalize_packed_u16(raw, black_level, white_level, h, w)
    planes = np.empty((2, 2, h, w), dtype=np.float32)
    black_rows, scale_rows = _tiles(black_level, white_level, w2)
    scratch = np.empty((min(_CHUNK_PAIRS, h), 2, w2), dtype=np.float32)
    for r in range(0, h, _CHUNK_PAIRS):
        n = min(_CHUNK_PAIRS, h - r)
        t = scratch[:n]
        np.subtract(raw[2 * r : 2 * (r + n)].reshape(n, 2, w2), black_rows, out=t, dtype=np.float32)
        np.multiply(t, scale_rows, out=t)
        np.copyto(planes[:, :, r : r + n], t.reshape(n, 2, w, 2).transpose(1, 3, 0, 2))
    return planes.reshape(4, h, w)


def _normalize_packed_u16(raw: np.ndarray, black_level: np.ndarray, white_level: float, h: int, w: int):
    """Fast path of :func:`normalize_packed` for uint16 rows (little-endian).

    Two horizontally adjacent uint16 pixels read as one uint32: the low half is the even column,
    the high half the odd one, so the column split is a mask and a shift on contiguous data (SIMD)
    instead of a stride-2 scatter. Same float32 operations as :func:`normalize`.
    """
    black = np.asarray(black_level, dtype=np.float64).reshape(2, 2)
    black32 = black.astype(np.float32)
    scale32 = (1.0 / (float(white_level) - black)).astype(np.float32)
    planes = np.empty((4, h, w), dtype=np.float32)
    scratch = np.empty((min(_CHUNK_PAIRS, h), 2, w), dtype=np.uint32)
    for r in range(0, h, _CHUNK_PAIRS):
        n = min(_CHUNK_PAIRS, h - r)
        pairs = raw[2 * r : 2 * (r + n)].reshape(n, 2, 2 * w).view(np.uint32)  # (n, 2, w)
        t = scratch[:n]
        for j in range(2):  # column parity
            if j == 0:
                np.bitwise_and(pairs, 0xFFFF, out=t)
            else:
                np.right_shift(pairs, 16, out=t)
            for i in range(2):  # row parity
                o = planes[2 * i + j, r : r + n]
                np.subtract(t[:, i], black32[i, j], out=o, dtype=np.float32)
                np.multiply(o, scale32[i, j], out=o)
    return planes


def denormalize(frame: RawFrame, mosaic: np.ndarray, *, chunk_rows: int = 512) -> np.ndarray:
    """The inverse of :func:`normalize`: ``frame``'s sensor image with its visible area from ``mosaic``.

    The mosaic (a denoised one, say; 0 = black, 1 = white level) goes back to DN per CFA position,
    ``mosaic * (white - black) + black``, rounded and clipped to ``[0, 65535]``; the masked
    margins keep the input's values. Works in row chunks so a 24-megapixel frame needs no
    full-size float64 temporaries.

    Args:
        frame: the :class:`isp.raw.RawFrame` the mosaic came from (levels, sensor, active area).
        mosaic: ``float (H, W)`` visible mosaic (``frame.mosaic``'s shape); must be finite.
        chunk_rows: rows converted at a time (even).

    Returns:
        ``uint16 (Hs, Ws)``, ``frame.sensor``'s shape.

    Example:
        >>> import numpy as np
        >>> from isp.raw import RawFrame
        >>> f = RawFrame(None, np.zeros((2, 4), np.float32), "RGGB", np.array([[60, 64], [64, 68]]),
        ...              1000.0, np.full((3, 4), 7, np.uint16), (1, 0, 3, 4))
        >>> denormalize(f, np.full((2, 4), 0.5, np.float32)).tolist()
        [[7, 7, 7, 7], [530, 532, 530, 532], [532, 534, 532, 534]]
    """
    top, left, bottom, right = frame.active_area
    if mosaic.shape != (bottom - top, right - left):
        raise ValueError(
            f"Expected `mosaic` of the visible shape {(bottom - top, right - left)}. Got {mosaic.shape}."
        )
    check_finite_output(mosaic)
    black = np.asarray(frame.black_level, dtype=np.float32).reshape(2, 2)
    scale = np.float32(frame.white_level) - black
    sensor = frame.sensor.copy()
    width = right - left
    black_rows = np.tile(black, (1, (width + 1) // 2))[:, :width]
    scale_rows = np.tile(scale, (1, (width + 1) // 2))[:, :width]
    chunk_rows += chunk_rows % 2
    for y0 in range(0, mosaic.shape[0], chunk_rows):
        y1 = min(y0 + chunk_rows, mosaic.shape[0])
        reps = (y1 - y0 + 1) // 2
        b = np.tile(black_rows, (reps, 1))[: y1 - y0]
        s = np.tile(scale_rows, (reps, 1))[: y1 - y0]
        dn = np.rint(mosaic[y0:y1].astype(np.float32) * s + b)
        sensor[top + y0 : top + y1, left:right] = np.clip(dn, 0, 65535).astype(np.uint16)
    return sensor


def check_finite_output(mosaic: np.ndarray) -> None:
    """Raise ``ValueError`` unless every value of a denoised mosaic is finite.

    A NaN or infinity would be written as 0 or 65535 DN: nothing is written from such an output.

    Example:
        >>> try:
        ...     check_finite_output(np.array([[0.0, np.nan]], np.float32))
        ... except ValueError as err:
        ...     print(str(err)[:70])
        Expected a finite denoised mosaic: the network output holds 1 non-fini
    """
    finite = np.isfinite(mosaic)
    if not finite.all():
        bad = int(finite.size - np.count_nonzero(finite))
        raise ValueError(
            f"Expected a finite denoised mosaic: the network output holds {bad} non-finite value(s) "
            f"(NaN or infinity) of {finite.size}; nothing was written."
        )
