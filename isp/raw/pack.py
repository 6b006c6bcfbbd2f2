"""Bayer mosaic <-> packed planes in the canonical order R, Gr, Gb, B.

``pack`` crops one row and/or column at the top/left to bring any Bayer phase to RGGB, then one
at the bottom/right to make the size even, and splits the 2x2 cells into 4 planes (channels
TL, TR, BL, BR of the RGGB mosaic, as ``torch.nn.functional.pixel_unshuffle(x, 2)`` orders them).
:class:`PackInfo` keeps the cropped pixels so that :func:`unpack` restores the mosaic exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .frame import BAYER_PATTERNS, RawFrame
from .levels import normalize, normalize_packed

__all__ = ["PACKED_CHANNELS", "PackInfo", "pack", "pad_to_rggb", "phase_crop", "unpack"]

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


def pad_to_rggb(frame: RawFrame) -> tuple[RawFrame, tuple[int, int, int, int]]:
    """The frame with its visible area mirrored by one row or column where :func:`pack` would crop one.

    :func:`pack` drops a row and/or column at the top/left to reach the RGGB phase and at the
    bottom/right to make the size even. A denoiser that works on packed planes would leave those
    pixels as they came in: a noisy line along the edge of the picture. Mirroring instead (the
    row above row 0 is row 1, which has the same colours, so the Bayer pattern continues) gives a
    frame that packs without a crop, in which every visible pixel is in the planes. The added row or
    column is added to the whole sensor (masked margins included), so the masked pixels of an
    added row are its mirror's, as its visible pixels are.

    Args:
        frame: a decoded frame.

    Returns:
        ``(padded, (top, left, bottom, right))``: the RGGB-phase frame of even size and how many
        rows/columns (0 or 1) it has on each side beyond ``frame``; ``frame`` itself with zeros when
        nothing needs adding, or when the visible area has fewer than 3 rows or columns to mirror.
        The original is ``padded_mosaic[top : top + H, left : left + W]``.

    Example:
        >>> from isp.raw import frame_from_sensor
        >>> sensor = np.arange(5 * 7, dtype=np.uint16).reshape(5, 7) + 100
        >>> f = frame_from_sensor(sensor, cfa="BGGR", black_level=0, white_level=1000)
        >>> g, pads = pad_to_rggb(f)
        >>> g.cfa, g.visible_shape, pads
        ('RGGB', (6, 8), (1, 1, 0, 0))
        >>> bool((g.mosaic[1:, 1:] == f.mosaic).all() and (g.mosaic[0, 1:] == f.mosaic[1]).all())
        True
    """
    if not isinstance(frame, RawFrame):
        raise TypeError(f"Expected `frame` to be an isp.raw.RawFrame. Got {type(frame).__name__}.")
    H, W = frame.visible_shape
    top, left = phase_crop(frame.cfa)
    # where pack would crop the bottom/right to an even size after the top/left pad, pad there
    bottom, right = (H + top) % 2, (W + left) % 2
    if not (top or left or bottom or right) or H < 3 or W < 3:
        return frame, (0, 0, 0, 0)
    t0, l0, t1, l1 = frame.active_area
    hs, ws = frame.sensor.shape
    rows = _mirrored(t0, t1, hs, top, bottom)
    cols = _mirrored(l0, l1, ws, left, right)
    visible_rows, visible_cols = rows[t0 : t1 + top + bottom] - t0, cols[l0 : l1 + left + right] - l0
    mosaic = None
    if frame.mosaic_ready:  # a given (or already computed) mosaic is padded as it is
        mosaic = np.pad(frame.mosaic, ((top, bottom), (left, right)), mode="reflect")
    ob = frame.optical_black

    def along_rows(block):  # a left/right masked block: one row per visible row
        fits = block is not None and block.ndim == 2 and block.shape[0] == H
        return block[visible_rows] if fits else block

    def along_cols(block):  # a top/bottom masked block: one column per visible column
        fits = block is not None and block.ndim == 2 and block.shape[1] == W
        return block[:, visible_cols] if fits else block

    cfa = "".join(frame.cfa[2 * ((i + top) % 2) + (j + left) % 2] for i in (0, 1) for j in (0, 1))
    black = np.broadcast_to(np.asarray(frame.black_level, dtype=np.float64), (2, 2))
    padded = replace(
        frame,
        mosaic=mosaic,
        cfa=cfa,
        black_level=np.roll(black, (-top, -left), (0, 1)),
        sensor=frame.sensor[np.ix_(rows, cols)],
        active_area=(t0, l0, t1 + top + bottom, l1 + left + right),
        optical_black=replace(
            ob,
            left=along_rows(ob.left),
            right=along_rows(ob.right),
            top=along_cols(ob.top),
            bottom=along_cols(ob.bottom),
        ),
    )
    return padded, (top, left, bottom, right)


def _mirrored(start: int, stop: int, size: int, before: int, after: int) -> np.ndarray:
    """Indices ``0 .. size - 1``, ``start + 1`` inserted before ``start``, ``stop - 2`` after ``stop - 1``."""
    parts = [np.arange(start), [start + 1] * before, np.arange(start, stop), [stop - 2] * after]
    parts.append(np.arange(stop, size))
    return np.concatenate([np.asarray(p, dtype=np.intp) for p in parts])


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
