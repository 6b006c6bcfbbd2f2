"""Crops and CFA-safe flips of packed Bayer planes and their row/column noise vectors.

Packed planes ``(4, H, W)`` hold the mosaic's R, Gr, Gb, B pixels (mosaic positions (0, 0),
(0, 1), (1, 0), (1, 1) of every 2x2 cell). A crop in packed coordinates is a crop at even
mosaic offsets, so it keeps the RGGB phase.

Flips do not: mirroring an RGGB mosaic left-right gives GRBG. Flipping each packed plane on its
own (SID's augmentation) keeps the colours in the right channels but moves the greens by one
mosaic pixel relative to red and blue; swapping R<->Gr after a flip puts green pixels in the red
channel. The exact augmentation (Liu et al., "Learning raw image denoising with Bayer pattern
unification and Bayer preserving augmentation", CVPRW 2019) flips the mosaic and then shifts
the crop by one pixel to restore the RGGB phase. On packed planes that is: for a horizontal
flip, the even-column planes (R, Gb) come from packed columns ``left+1 .. left+w`` and the
odd-column planes (Gr, B) from ``left .. left+w-1``, each mirrored, so a flipped crop of width
``w`` reads ``w + 1`` packed columns; a vertical flip does the same with rows (R, Gr even;
Gb, B odd). A transpose keeps RGGB and swaps Gr<->Gb.

Row vectors ``(5, H)`` follow the rows: channels 0-1 describe the even mosaic row of each
packed row (the R/Gr row), 2-3 the odd one (Gb/B), 4 is validity; column vectors ``(5, W)``
likewise (even mosaic column: R/Gb). They are cut and mirrored with the same offsets as the
planes they belong to, and a transpose exchanges them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CropParams", "center_crop_params", "crop_and_flip", "crop_shape", "random_crop_params"]

_R, _GR, _GB, _B = 0, 1, 2, 3


@dataclass(frozen=True)
class CropParams:
    """Where to cut a crop of packed planes and how to flip it.

    Attributes:
        top: first packed row read.
        left: first packed column read.
        height: crop height in packed rows (before a transpose).
        width: crop width in packed columns (before a transpose).
        hflip: mirror left-right (reads ``width + 1`` columns).
        vflip: mirror top-bottom (reads ``height + 1`` rows).
        transpose: swap the axes after the flips (needs ``height == width`` inside a batch).
    """

    top: int
    left: int
    height: int
    width: int
    hflip: bool = False
    vflip: bool = False
    transpose: bool = False


def _check_vectors(name: str, vec: np.ndarray, length: int, axis: str) -> None:
    if not isinstance(vec, np.ndarray) or vec.ndim != 2 or vec.shape[0] != 5:
        got = tuple(vec.shape) if isinstance(vec, np.ndarray) else type(vec).__name__
        raise ValueError(f"Expected `{name}` of shape (5, {length}) aligned with the planes. Got {got}.")
    if vec.shape[1] != length:
        raise ValueError(
            f"Expected `{name}` of shape (5, {length}) to match the planes' {axis} packed size. "
            f"Got {tuple(vec.shape)}."
        )


def crop_and_flip(
    planes: np.ndarray, row: np.ndarray | None, col: np.ndarray | None, params: CropParams
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Cut, mirror and transpose packed planes and their noise vectors, keeping the CFA phase.

    Args:
        planes: ``(4, H, W)`` packed R, Gr, Gb, B planes (any numpy array, memory maps too).
        row: ``(5, H)`` row noise vectors aligned with the packed rows, or ``None``.
        col: ``(5, W)`` column noise vectors aligned with the packed columns, or ``None``.
        params: the crop; the rows ``top .. top + height + vflip`` and columns
            ``left .. left + width + hflip`` must lie inside the planes.

    Returns:
        ``planes (4, h, w)``, ``row (5, h)``, ``col (5, w)`` as new contiguous arrays (``None``
        for a vector given as ``None``), with
        ``(h, w) = (height, width)``, or ``(width, height)`` when transposed. Unpacked, the
        planes are exactly the RGGB mosaic obtained by flipping the mosaic and moving the crop
        one pixel to restore the phase.

    Example:
        >>> planes = np.arange(4 * 3 * 3, dtype=np.float32).reshape(4, 3, 3)
        >>> row, col = np.zeros((5, 3)), np.zeros((5, 3))
        >>> out, _, _ = crop_and_flip(planes, row, col, CropParams(0, 0, 2, 2, hflip=True))
        >>> out[0].tolist()  # R: columns 1..2 mirrored
        [[2.0, 1.0], [5.0, 4.0]]
        >>> out[1].tolist()  # Gr: columns 0..1 mirrored
        [[10.0, 9.0], [13.0, 12.0]]
    """
    if not isinstance(planes, np.ndarray) or planes.ndim != 3 or planes.shape[0] != 4:
        got = tuple(planes.shape) if isinstance(planes, np.ndarray) else type(planes).__name__
        raise ValueError(f"Expected `planes` of shape (4, H, W) (R, Gr, Gb, B). Got {got}.")
    big_h, big_w = planes.shape[1:]
    if row is not None:
        _check_vectors("row", row, big_h, "height")
    if col is not None:
        _check_vectors("col", col, big_w, "width")
    p = params
    if p.height < 1 or p.width < 1:
        raise ValueError(f"Expected a crop of at least 1x1 packed pixels. Got {p.height}x{p.width}.")
    need_h, need_w = p.height + int(p.vflip), p.width + int(p.hflip)
    if p.top < 0 or p.left < 0 or p.top + need_h > big_h or p.left + need_w > big_w:
        raise ValueError(
            f"Expected the crop rows {p.top}..{p.top + need_h - 1} and columns "
            f"{p.left}..{p.left + need_w - 1} (a flip reads one more) to lie inside planes of "
            f"{big_h}x{big_w}. Got {p}."
        )
    # even / odd mosaic rows (R, Gr / Gb, B) and columns (R, Gb / Gr, B)
    re = slice(p.top + 1, p.top + p.height + 1) if p.vflip else slice(p.top, p.top + p.height)
    ro = slice(p.top, p.top + p.height)
    ce = slice(p.left + 1, p.left + p.width + 1) if p.hflip else slice(p.left, p.left + p.width)
    co = slice(p.left, p.left + p.width)

    out = np.empty((4, p.height, p.width), dtype=planes.dtype)
    out[_R] = planes[_R, re, ce]
    out[_GR] = planes[_GR, re, co]
    out[_GB] = planes[_GB, ro, ce]
    out[_B] = planes[_B, ro, co]
    r = None if row is None else _cut_vector(row, re, ro)
    c = None if col is None else _cut_vector(col, ce, co)

    if p.hflip:
        out, c = out[:, :, ::-1], None if c is None else c[:, ::-1]
    if p.vflip:
        out, r = out[:, ::-1, :], None if r is None else r[:, ::-1]
    if p.transpose:
        out = out.transpose(0, 2, 1)[[_R, _GB, _GR, _B]]
        r, c = c, r
    contiguous = [None if a is None else np.ascontiguousarray(a) for a in (r, c)]
    return np.ascontiguousarray(out), contiguous[0], contiguous[1]


def _cut_vector(vec: np.ndarray, even: slice, odd: slice) -> np.ndarray:
    """Channels 0-1 (even mosaic line) from ``even``, 2-3 (odd line) from ``odd``, validity from both."""
    out = np.empty((5, even.stop - even.start), dtype=vec.dtype)
    out[0:2] = vec[0:2, even]
    out[2:4] = vec[2:4, odd]
    out[4] = vec[4, even] * vec[4, odd]
    return out


def random_crop_params(
    shape: tuple[int, int],
    size: int | tuple[int, int] | None,
    rng: np.random.Generator,
    *,
    augment: bool = True,
) -> CropParams:
    """Draw a random crop (and, with ``augment``, a random flip / transpose).

    Args:
        shape: ``(H, W)`` of the packed planes.
        size: crop side in packed pixels (``size * 2`` mosaic pixels), or ``(height, width)``;
            ``None`` for the whole frame.
        rng: the generator every random choice comes from.
        augment: draw horizontal / vertical flips and a transpose (transpose only for square
            crops), each with probability 1/2. A flip needs one spare packed row or column and
            is skipped along an axis that has none.

    Returns:
        The :class:`CropParams`; the offset is uniform over the positions that fit.

    Example:
        >>> p = random_crop_params((100, 80), 32, np.random.default_rng(0))
        >>> p.height, p.width, 0 <= p.top <= 100 - 32 - p.vflip
        (32, 32, True)
    """
    big_h, big_w = (int(v) for v in shape)
    h, w = (big_h, big_w) if size is None else crop_shape(size)
    if h > big_h or w > big_w:
        raise ValueError(
            f"Expected `crop_size` between 1 and the packed frame size {big_h}x{big_w}. Got {size}."
        )
    hflip = vflip = transpose = False
    if augment:
        hflip = bool(rng.integers(2)) and w < big_w
        vflip = bool(rng.integers(2)) and h < big_h
        transpose = bool(rng.integers(2)) and h == w
    top = int(rng.integers(0, big_h - h - int(vflip) + 1))
    left = int(rng.integers(0, big_w - w - int(hflip) + 1))
    return CropParams(top, left, h, w, hflip, vflip, transpose)


def crop_shape(size: int | tuple[int, int] | list[int], minimum: int = 1, name: str = "crop_size") -> tuple[int, int]:
    """``(height, width)`` of a crop given as one side or a pair (packed pixels), validated.

    Args:
        size: an int (a square) or ``(height, width)`` (a list from YAML too).
        minimum: the smallest side allowed.
        name: the argument's name, for the error.

    Raises:
        ValueError: not an int or a pair of ints, or a side below ``minimum``.

    Example:
        >>> crop_shape(64), crop_shape([64, 256])
        ((64, 64), (64, 256))
    """
    sides = (size, size) if isinstance(size, int | np.integer) else size
    if (
        not isinstance(sides, tuple | list)
        or len(sides) != 2
        or not all(isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= minimum for v in sides)
    ):
        raise ValueError(
            f"Expected `{name}` to be an int >= {minimum} or (height, width) of such ints (packed "
            f"pixels). Got {size!r}."
        )
    return int(sides[0]), int(sides[1])


def center_crop_params(shape: tuple[int, int], size: int | tuple[int, int] | None) -> CropParams:
    """The fixed centre crop used for validation and test (no flips).

    Args:
        shape: ``(H, W)`` of the packed planes.
        size: crop side in packed pixels or ``(height, width)``, clamped to the frame; ``None``
            for the whole frame.

    Returns:
        :class:`CropParams` of a ``min(size, H) x min(size, W)`` crop centred in the frame.

    Example:
        >>> center_crop_params((10, 7), 4)
        CropParams(top=3, left=1, height=4, width=4, hflip=False, vflip=False, transpose=False)
    """
    big_h, big_w = (int(v) for v in shape)
    if size is None:
        return CropParams(0, 0, big_h, big_w)
    h, w = crop_shape(size)
    h, w = min(h, big_h), min(w, big_w)
    return CropParams((big_h - h) // 2, (big_w - w) // 2, h, w)
