"""Bayer mosaic <-> packed planes in the canonical order R, Gr, Gb, B.

``pack`` crops one row and/or column at the top/left to bring any Bayer phase to RGGB, then one
at the bottom/right to make the size even, and splits the 2x2 cells into 4 planes (channels
TL, TR, BL, BR of the RGGB mosaic, as ``torch.nn.functional.pixel_unshuffle(x, 2)`` orders them).
:class:`PackInfo` keeps the cropped pixels so that :func:`unpack` restores the mosaic exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .frame import BAYER_PATTERNS, RawFrame
from .levels import normalize, normalize_packed

__all__ = ["PACKED_CHANNELS", "PackInfo", "pack", "phase_crop", "unpack"]

#: Channel order of packed planes (Gr: the green on the red row).
PACKED_CHANNELS = ("R", "Gr", "Gb", "B")

# Top and left crop that bring each Bayer phase to RGGB.
_PHASE = {"RGGB": (0, 0), "GRBG": (0, 1), "GBRG": (1, 0), "BGGR": (1, 1)}


def phase_crop(cfa: str) -> tuple[int, int]:
    """Rows and columns to drop at the top and left to make ``cfa`` start with R.

    Example:
        >>> phase_crop("GBRG")
        (1, 0)
    """
    if cfa not in _PHASE:
        raise ValueError(f"Expected `cfa` to be one of {BAYER_PATTERNS}. Got {cfa!r}.")
    return _PHASE[cfa]


@dataclass
class PackInfo:
    """How :func:`pack` cut a mosaic, and the pixels it cut off.

    Attributes:
        cfa: Bayer phase of the original mosaic.
        shape: ``(H, W)`` of the original mosaic.
        top, left: rows / columns dropped at the top / left (0 or 1) to reach RGGB.
        bottom, right: rows / columns dropped at the bottom / right (0 or 1) to make the size even.
        top_rows: ``(top, W)`` the dropped top rows.
        bottom_rows: ``(bottom, W)`` the dropped bottom rows.
        left_cols: ``(H - top - bottom, left)`` the dropped left columns (between those rows).
        right_cols: ``(H - top - bottom, right)`` the dropped right columns.
    """

    cfa: str
    shape: tuple[int, int]
    top: int
    left: int
    bottom: int
    right: int
    top_rows: np.ndarray
    bottom_rows: np.ndarray
    left_cols: np.ndarray
    right_cols: np.ndarray

    @property
    def packed_shape(self) -> tuple[int, int, int]:
        """``(4, h, w)`` of the planes."""
        h, w = self.shape
        return 4, (h - self.top - self.bottom) // 2, (w - self.left - self.right) // 2


def pack(frame_or_mosaic: RawFrame | np.ndarray, cfa: str | None = None) -> tuple[np.ndarray, PackInfo]:
    """Split a Bayer mosaic into 4 half-resolution planes R, Gr, Gb, B.

    Args:
        frame_or_mosaic: a :class:`RawFrame` (its ``mosaic`` and ``cfa`` are used) or a
            ``(H, W)`` mosaic.
        cfa: the mosaic's Bayer phase; required for an array, optional (must agree) for a frame.

    Returns:
        ``planes (4, h, w)`` with ``h = (H - top) // 2``, ``w = (W - left) // 2`` (same dtype as
        the mosaic, contiguous), and the :class:`PackInfo` that :func:`unpack` needs.

    Example:
        >>> m = np.arange(20.0).reshape(4, 5)  # GRBG: R sits at (0, 1)
        >>> planes, info = pack(m, "GRBG")
        >>> planes[:, 0, 0].tolist(), planes.shape, (info.top, info.left, info.bottom, info.right)
        ([1.0, 2.0, 6.0, 7.0], (4, 2, 2), (0, 1, 0, 0))
        >>> np.array_equal(unpack(planes, info), m)
        True
    """
    if isinstance(frame_or_mosaic, RawFrame):
        frame = frame_or_mosaic
        if cfa is not None and cfa != frame.cfa:
            raise ValueError(f"Expected `cfa` to be None or the frame's {frame.cfa!r}. Got {cfa!r}.")
        if not frame.mosaic_ready:
            return _pack_sensor(frame)
        mosaic, cfa = frame.mosaic, frame.cfa
    elif isinstance(frame_or_mosaic, np.ndarray):
        mosaic = frame_or_mosaic
        if cfa is None:
            raise ValueError("Expected `cfa` (e.g. 'RGGB') when packing a bare mosaic. Got None.")
    else:
        raise TypeError(
            "Expected `frame_or_mosaic` to be a RawFrame or a numpy.ndarray. "
            f"Got {type(frame_or_mosaic).__name__}."
        )
    if mosaic.ndim != 2:
        raise ValueError(f"Expected a 2-d mosaic (H, W). Got shape {mosaic.shape}.")
    H, W = mosaic.shape
    top, left, bottom, right = _crops(cfa, H, W)
    core = mosaic[top : H - bottom, left : W - right]
    h, w = core.shape[0] // 2, core.shape[1] // 2
    planes = np.empty((2, 2, h, w), dtype=mosaic.dtype)
    # (h, 2, w, 2) -> (2, 2, h, w): one strided copy, channels (row parity, column parity).
    np.copyto(planes, core.reshape(h, 2, w, 2).transpose(1, 3, 0, 2))
    info = PackInfo(
        cfa=cfa,
        shape=(H, W),
        top=top,
        left=left,
        bottom=bottom,
        right=right,
        top_rows=mosaic[:top].copy(),
        bottom_rows=mosaic[H - bottom :].copy(),
        left_cols=mosaic[top : H - bottom, :left].copy(),
        right_cols=mosaic[top : H - bottom, W - right :].copy(),
    )
    return planes.reshape(4, h, w), info


def _crops(cfa: str, H: int, W: int) -> tuple[int, int, int, int]:
    top, left = phase_crop(cfa)
    if H - top < 2 or W - left < 2:
        raise ValueError(f"Expected a mosaic of at least 3 x 3 pixels. Got {(H, W)}.")
    return top, left, (H - top) % 2, (W - left) % 2


def _pack_sensor(frame: RawFrame) -> tuple[np.ndarray, PackInfo]:
    """:func:`pack` straight from ``frame.sensor``: one normalising pass, no mosaic.

    Gives bit-identical planes to packing the materialised mosaic (same float32 operations).
    """
    t0, l0, b0, r0 = frame.active_area
    H, W = b0 - t0, r0 - l0
    top, left, bottom, right = _crops(frame.cfa, H, W)
    h, w = (H - top) // 2, (W - left) // 2
    black, white, sensor = frame.black_level, frame.white_level, frame.sensor
    rows, cols = t0 + top, l0 + left
    phase_black = np.roll(black, (-top, -left), axis=(0, 1))  # black tile at (rows, cols)
    planes = normalize_packed(sensor[rows : rows + 2 * h, cols : cols + 2 * w], phase_black, white)

    def strip(r1: int, r2: int, c1: int, c2: int) -> np.ndarray:  # mosaic[r1:r2, c1:c2]
        tile = np.roll(black, (-r1 % 2, -c1 % 2), axis=(0, 1))
        return normalize(sensor[t0 + r1 : t0 + r2, l0 + c1 : l0 + c2], tile, white)

    info = PackInfo(
        cfa=frame.cfa,
        shape=(H, W),
        top=top,
        left=left,
        bottom=bottom,
        right=right,
        top_rows=strip(0, top, 0, W),
        bottom_rows=strip(H - bottom, H, 0, W),
        left_cols=strip(top, H - bottom, 0, left),
        right_cols=strip(top, H - bottom, W - right, W),
    )
    return planes, info


def unpack(planes: np.ndarray, info: PackInfo) -> np.ndarray:
    """Invert :func:`pack`: ``planes (4, h, w)`` and its ``info`` -> mosaic ``(H, W)``, exactly.

    Args:
        planes: ``(4, h, w)`` planes R, Gr, Gb, B (e.g. a denoised version of what pack gave).
        info: the :class:`PackInfo` from :func:`pack`; the cropped border pixels come from it.

    Returns:
        ``(H, W)`` mosaic in the original Bayer phase, dtype of ``planes``.

    Example:
        >>> m = np.arange(35.0).reshape(5, 7)
        >>> planes, info = pack(m, "BGGR")
        >>> planes.shape, np.array_equal(unpack(planes, info), m)
        ((4, 2, 3), True)
    """
    if not isinstance(info, PackInfo):
        raise TypeError(f"Expected `info` to be a PackInfo. Got {type(info).__name__}.")
    if not isinstance(planes, np.ndarray) or planes.shape != info.packed_shape:
        raise ValueError(
            f"Expected `planes` of shape {info.packed_shape} to match `info`. "
            f"Got {getattr(planes, 'shape', None)}."
        )
    H, W = info.shape
    _, h, w = planes.shape
    out = np.empty((H, W), dtype=planes.dtype)
    t, b, lft, r = info.top, info.bottom, info.left, info.right
    for k in range(4):  # strided writes: a reshape of the cropped view could silently copy
        i, j = divmod(k, 2)
        out[t + i : H - b : 2, lft + j : W - r : 2] = planes[k]
    out[:t] = info.top_rows
    out[H - b :] = info.bottom_rows
    out[t : H - b, :lft] = info.left_cols
    out[t : H - b, W - r :] = info.right_cols
    return out
