"""Cut the part of a raw frame that one packed crop covers, masked margins included.

Synthesising noise for a whole 12-megapixel sensor to train on a 256x256 crop wastes almost
all the work. The noise of :mod:`isp.noise` is per pixel (shot, read, quantisation) or per
sensor row (banding, shared with the masked pixels of that row), so synthesising it on a
window of the sensor gives the window the same noise statistics as cutting it from a noisy
whole frame, provided the window keeps, for its rows, the masked columns left and right of the
visible area, and for its columns, the masked rows above and below. :func:`frame_window` builds
that smaller :class:`~isp.raw.RawFrame`; it starts on a red pixel, so its CFA is RGGB.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from isp.raw import RawFrame, frame_from_sensor
from isp.raw.pack import phase_crop

__all__ = ["frame_window"]


def frame_window(frame: RawFrame, top: int, left: int, height: int, width: int) -> RawFrame:
    """The sub-frame under packed rows ``top .. top+height`` and columns ``left .. left+width``.

    Packed coordinates are those of ``isp.raw.pack(frame)`` (after its phase crop), so the window
    covers mosaic rows ``dy + 2*top .. dy + 2*(top+height)`` and columns likewise, ``(dy, dx)``
    being the phase crop of ``frame.cfa``.

    Args:
        frame: a whole frame (its ``sensor``, ``active_area``, levels and metadata are used).
        top: first packed row.
        left: first packed column.
        height: packed rows.
        width: packed columns.

    Returns:
        A :class:`~isp.raw.RawFrame` with CFA "RGGB", a ``(2*height, 2*width)`` mosaic, the
        black levels re-phased to its top-left pixel, and a sensor of the masked rows above /
        below the visible area (over the window's columns) and the masked columns left / right
        (over the window's rows) around the window. The masked line next to the window is left
        out where keeping it would break the alternation of the CFA rows (columns), so every
        sensor pixel keeps its colour and black level. ``pack`` of it equals the packed crop of
        ``pack(frame)``.

    Example:
        >>> from isp.raw import frame_from_sensor, pack
        >>> sensor = np.arange(20 * 26, dtype=np.uint16).reshape(20, 26) + 64
        >>> f = frame_from_sensor(sensor, cfa="GBRG", black_level=64, white_level=4095,
        ...                       active_area=(2, 4, 20, 26))
        >>> w = frame_window(f, 1, 2, 3, 4)
        >>> w.cfa, w.sensor.shape, w.active_area  # GBRG: one masked row dropped for the parity
        ('RGGB', (7, 12), (1, 4, 7, 12))
        >>> bool((pack(w)[0] == pack(f)[0][:, 1:4, 2:6]).all())
        True
    """
    if not isinstance(frame, RawFrame):
        raise TypeError(f"Expected `frame` to be an isp.raw.RawFrame. Got {type(frame).__name__}.")
    a_top, a_left, a_bottom, a_right = (int(v) for v in frame.active_area)
    dy, dx = phase_crop(frame.cfa)
    r0, c0 = a_top + dy + 2 * int(top), a_left + dx + 2 * int(left)
    r1, c1 = r0 + 2 * int(height), c0 + 2 * int(width)
    if top < 0 or left < 0 or height < 1 or width < 1 or r1 > a_bottom or c1 > a_right:
        raise ValueError(
            f"Expected a window of at least 1x1 inside the packed frame ({(a_bottom - a_top - dy) // 2}x"
            f"{(a_right - a_left - dx) // 2}). Got top={top}, left={left}, height={height}, width={width}."
        )
    sensor = np.asarray(frame.sensor)
    hs, ws = sensor.shape
    # Keep the CFA parity alternating across the joins: drop the masked line next to the window
    # when the window starts (ends) on the same parity as that line.
    k_top, k_left = (r0 - a_top) % 2, (c0 - a_left) % 2
    k_bottom, k_right = (r1 - a_bottom) % 2, (c1 - a_right) % 2
    rows = np.r_[0 : max(a_top - k_top, 0), r0:r1, min(a_bottom + k_bottom, hs) : hs]
    cols = np.r_[0 : max(a_left - k_left, 0), c0:c1, min(a_right + k_right, ws) : ws]
    window = sensor[rows[:, None], cols[None, :]]
    black = np.roll(np.asarray(frame.black_level, dtype=np.float64).reshape(2, 2), (-dy, -dx), axis=(0, 1))
    w_top, w_left = max(a_top - k_top, 0), max(a_left - k_left, 0)
    area = (w_top, w_left, w_top + (r1 - r0), w_left + (c1 - c0))
    sub = frame_from_sensor(
        window,
        cfa="RGGB",
        black_level=black,
        white_level=frame.white_level,
        active_area=area,
        metadata=dataclasses.replace(frame.metadata),
        path=frame.path,
    )
    return sub
