"""Black subtraction and white normalisation per Bayer position, in one cache-friendly pass."""

from __future__ import annotations

import numpy as np

__all__ = ["normalize"]

_CHUNK_ROWS = 256  # rows per pass: keeps the working set in cache on 6000-wide sensors


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
    # Per-column tiles of black and 1 / (white - black) for an even and an odd row: (2, w).
    cols = np.arange(w) % 2
    black_rows = black[:, cols]
    scale_rows = (1.0 / (float(white_level) - black_rows)).astype(np.float32)
    black_rows = black_rows.astype(np.float32)
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
