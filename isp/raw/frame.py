"""The data a raw file yields: :class:`RawFrame`, :class:`RawMetadata`, :class:`OpticalBlack`.

Units follow ``docs/CONTRACTS.md``: a *mosaic* is ``float32 (H, W)``, black-subtracted per pixel
position and divided by ``white - black``, so 0 is black and 1 the white level; it is not clipped.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

import numpy as np

from .levels import normalize

__all__ = ["BAYER_PATTERNS", "OpticalBlack", "RawFrame", "RawMetadata", "frame_from_sensor"]

#: The four Bayer phases, named by the top-left 2x2 read row-major.
BAYER_PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")


@dataclass
class RawMetadata:
    """What a raw file says about how it was taken.

    Missing values are ``None``, never 0 (a 0 would read as a real ISO or exposure).

    Attributes:
        iso: ISO speed, or ``None`` when the file does not record it.
        exposure_time: exposure time in seconds, or ``None``.
        f_number: aperture f-number, or ``None``.
        focal_length: focal length in mm, or ``None``.
        make: camera maker ("" when unknown).
        model: camera model ("" when unknown).
        timestamp: capture time as written in the file (naive local time), or ``None``.
        wb: ``(3,)`` as-shot white-balance multipliers R, G, B with G = 1. :func:`~isp.raw.read`
            falls back to LibRaw's daylight multipliers, then to ones, when the file has none, and
            computes dcraw's automatic balance where the camera chose one without recording it.
        cam_to_srgb: ``(3, 3)`` white-balanced camera RGB -> linear sRGB; rows sum to 1. From the
            file's XYZ -> camera matrix (see :mod:`isp.raw.color`); identity when it has none.
        orientation: EXIF/TIFF Orientation 1-8 of the image (1: as stored; 6: rotate 90 degrees
            clockwise to view; 8: 90 counter-clockwise; 3: 180).
        dng_tags: a DNG input's own colour and rendering tags (:data:`isp.raw.DNG_RENDERING_TAGS`:
            colour matrices, calibration illuminants, AsShotNeutral, AnalogBalance, baseline
            exposure/noise/sharpness, default crop, ...) as ``{code: (tiff_type, count, value)}``
            exactly as stored; :func:`~isp.raw.write_dng` writes them back unchanged in place of the
            tags it would build from ``wb`` and ``cam_to_srgb``. Empty for other inputs.
    """

    iso: float | None = None
    exposure_time: float | None = None
    f_number: float | None = None
    focal_length: float | None = None
    make: str = ""
    model: str = ""
    timestamp: _dt.datetime | None = None
    wb: np.ndarray = field(default_factory=lambda: np.ones(3))
    cam_to_srgb: np.ndarray = field(default_factory=lambda: np.eye(3))
    orientation: int = 1
    dng_tags: dict[int, tuple[int, int, object]] = field(default_factory=dict)


@dataclass
class OpticalBlack:
    """Masked (optical-black) sensor pixels, normalised like the mosaic; ``None`` when absent.

    Attributes:
        left: ``(H, nl)`` columns left of the visible area, rows aligned with the visible rows.
        right: ``(H, nr)`` columns right of the visible area.
        top: ``(nt, W)`` rows above the visible area, columns aligned with the visible columns.
        bottom: ``(nb, W)`` rows below the visible area.
    """

    left: np.ndarray | None = None
    right: np.ndarray | None = None
    top: np.ndarray | None = None
    bottom: np.ndarray | None = None


@dataclass
class RawFrame:
    """One decoded Bayer raw file.

    ``mosaic`` may be given as ``None``: it is then computed from ``sensor``, ``active_area`` and
    the levels on first access and kept. :func:`read` does this, so that :func:`~isp.raw.pack`
    can go from the sensor to the packed planes in one pass when nobody asked for the mosaic
    (half the memory traffic of building both). An explicit mosaic is always used as given.

    Attributes:
        path: the file it came from (``None`` when built in memory).
        mosaic: ``float32 (H, W)`` visible area, black-subtracted per position, white-normalised.
        cfa: "RGGB", "BGGR", "GRBG" or "GBRG": the top-left 2x2 of the visible mosaic, row-major.
        black_level: ``(2, 2)`` black level in DN per position of the visible top-left 2x2.
        white_level: saturation level in DN.
        sensor: ``uint16 (Hs, Ws)`` the whole raw image, masked margins included.
        active_area: ``(top, left, bottom, right)`` of the visible area in ``sensor``.
        metadata: see :class:`RawMetadata`.
        optical_black: see :class:`OpticalBlack`.
    """

    path: str | None
    mosaic: np.ndarray | None
    cfa: str
    black_level: np.ndarray
    white_level: float
    sensor: np.ndarray
    active_area: tuple[int, int, int, int]
    metadata: RawMetadata = field(default_factory=RawMetadata)
    optical_black: OpticalBlack = field(default_factory=OpticalBlack)

    @property
    def mosaic_ready(self) -> bool:
        """Whether the mosaic exists already (given, or computed by an earlier access)."""
        return self.__dict__.get("_mosaic") is not None

    @property
    def visible_shape(self) -> tuple[int, int]:
        """``(H, W)`` of the visible area (without computing the mosaic)."""
        top, left, bottom, right = self.active_area
        return bottom - top, right - left


def _get_mosaic(self: RawFrame) -> np.ndarray:
    mosaic = self.__dict__.get("_mosaic")
    if mosaic is None:
        top, left, bottom, right = self.active_area
        mosaic = normalize(self.sensor[top:bottom, left:right], self.black_level, self.white_level)
        self.__dict__["_mosaic"] = mosaic
    return mosaic


def _set_mosaic(self: RawFrame, value: np.ndarray | None) -> None:
    self.__dict__["_mosaic"] = value


# Installed after @dataclass so that the generated __init__ stores through the setter.
RawFrame.mosaic = property(_get_mosaic, _set_mosaic, doc="``float32 (H, W)`` normalised visible area.")


def frame_from_sensor(
    sensor: np.ndarray,
    *,
    cfa: str,
    black_level: float | np.ndarray,
    white_level: float,
    active_area: tuple[int, int, int, int] | None = None,
    metadata: RawMetadata | None = None,
    path: str | None = None,
    lazy: bool = False,
) -> RawFrame:
    """Build a :class:`RawFrame` from a sensor image and its levels (what :func:`read` does after decoding).

    Args:
        sensor: ``uint16 (Hs, Ws)`` whole raw image in DN.
        cfa: Bayer phase of the active area's top-left 2x2 ("RGGB", "BGGR", "GRBG", "GBRG").
        black_level: one value or ``(2, 2)`` per position of the active area's top-left 2x2 (DN).
        white_level: saturation level (DN).
        active_area: ``(top, left, bottom, right)``; the whole sensor when ``None``.
        metadata: :class:`RawMetadata` (defaults when ``None``).
        path: file name to record.
        lazy: leave the mosaic to be computed on first access (see :class:`RawFrame`).

    Returns:
        A frame whose ``mosaic`` is ``float32 (bottom - top, right - left)`` and whose optical
        black holds the margins outside the active area, normalised the same way.

    Example:
        >>> sensor = np.full((6, 8), 100, dtype=np.uint16)
        >>> f = frame_from_sensor(sensor, cfa="RGGB", black_level=100, white_level=1100,
        ...                       active_area=(0, 2, 6, 8))
        >>> f.mosaic.shape, f.optical_black.left.shape, f.optical_black.top is None
        ((6, 6), (6, 2), True)
    """
    if not isinstance(sensor, np.ndarray) or sensor.ndim != 2:
        raise ValueError(
            f"Expected `sensor` to be a 2-d numpy array. Got {getattr(sensor, 'shape', sensor)!r}."
        )
    if cfa not in BAYER_PATTERNS:
        raise ValueError(f"Expected `cfa` to be one of {BAYER_PATTERNS}. Got {cfa!r}.")
    hs, ws = sensor.shape
    top, left, bottom, right = (0, 0, hs, ws) if active_area is None else (int(v) for v in active_area)
    if not (0 <= top < bottom <= hs and 0 <= left < right <= ws):
        raise ValueError(
            f"Expected `active_area` (top, left, bottom, right) inside the sensor (0, 0, {hs}, {ws}). "
            f"Got {active_area}."
        )
    black = np.asarray(black_level, dtype=np.float64)
    black = np.full((2, 2), float(black)) if black.size == 1 else black.reshape(2, 2).copy()
    white = float(white_level)
    if not white > black.max():
        raise ValueError(f"Expected `white_level` above the black level {black.max()}. Got {white_level!r}.")

    def phase_black(r0: int, c0: int) -> np.ndarray:  # black tile for a block starting at (r0, c0)
        return np.roll(black, (-(r0 - top) % 2, -(c0 - left) % 2), axis=(0, 1))

    ob = OpticalBlack(
        left=normalize(sensor[top:bottom, :left], phase_black(top, 0), white) if left > 0 else None,
        right=normalize(sensor[top:bottom, right:], phase_black(top, right), white) if right < ws else None,
        top=normalize(sensor[:top, left:right], phase_black(0, left), white) if top > 0 else None,
        bottom=normalize(sensor[bottom:, left:right], phase_black(bottom, left), white)
        if bottom < hs
        else None,
    )
    return RawFrame(
        path=path,
        mosaic=None if lazy else normalize(sensor[top:bottom, left:right], black, white),
        cfa=cfa,
        black_level=black,
        white_level=white,
        sensor=sensor,
        active_area=(top, left, bottom, right),
        metadata=metadata if metadata is not None else RawMetadata(),
        optical_black=ob,
    )
