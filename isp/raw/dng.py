"""Write a Bayer mosaic as a DNG file that LibRaw (rawpy), dcraw and exiftool accept.

IFD0 is written with tifffile (CFA photometric 32803 and the DNG 1.4 tags). LibRaw reads the ISO
(tag 34855) only from the EXIF sub-IFD, and tifffile does not write the EXIF IFD pointer (34665)
itself, so IFD0 carries a placeholder 34665 entry; the EXIF IFD is appended to the file and the
placeholder patched to point at it. Reference: Adobe DNG Specification 1.4.0.0 (2012) and
EXIF 2.3 (CIPA DC-008).
"""

from __future__ import annotations

import os
import struct
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import tifffile

from .color import xyz_to_cam_from_cam_to_srgb
from .frame import BAYER_PATTERNS, RawMetadata

__all__ = ["DNG_RENDERING_TAGS", "write_dng"]

#: DNG tags (code: name) that say how a raw image is to be rendered (colour, white, exposure, crop).
#: :func:`isp.raw.read` keeps those of a DNG input in ``RawMetadata.dng_tags`` and
#: :func:`write_dng` writes them back as they were, so that a DNG-compliant converter renders the
#: denoised file as it renders the input (Adobe DNG Specification 1.4, chapter 6).
#: NoiseProfile is left out on purpose: it describes the noise that denoising removed.
DNG_RENDERING_TAGS = {
    50708: "UniqueCameraModel",
    50718: "DefaultScale",
    50719: "DefaultCropOrigin",
    50720: "DefaultCropSize",
    50721: "ColorMatrix1",
    50722: "ColorMatrix2",
    50723: "CameraCalibration1",
    50724: "CameraCalibration2",
    50725: "ReductionMatrix1",
    50726: "ReductionMatrix2",
    50727: "AnalogBalance",
    50728: "AsShotNeutral",
    50729: "AsShotWhiteXY",
    50730: "BaselineExposure",
    50731: "BaselineNoise",
    50732: "BaselineSharpness",
    50734: "LinearResponseLimit",
    50778: "CalibrationIlluminant1",
    50779: "CalibrationIlluminant2",
    50780: "BestQualityScale",
    50964: "ForwardMatrix1",
    50965: "ForwardMatrix2",
}

# TIFF field types.
_BYTE, _ASCII, _SHORT, _LONG, _RATIONAL, _UNDEFINED, _SRATIONAL = 1, 2, 3, 4, 5, 7, 10
_TYPE_SIZE = {_BYTE: 1, _ASCII: 1, _SHORT: 2, _LONG: 4, _RATIONAL: 8, _UNDEFINED: 1, _SRATIONAL: 8}
_EXIF_IFD = 34665
# tifffile refuses to write tag 34665, so IFD0 gets this unused tag, which sorts at the same place
# among IFD0's tags (after CFAPattern 33422, before DNGVersion 50706); its entry is then rewritten.
_PLACEHOLDER = 34666
_D65 = 21  # EXIF LightSource code used by CalibrationIlluminant1
_CFA_COLOR = {"R": 0, "G": 1, "B": 2}


def _rational(value: float, signed: bool = False) -> tuple[int, int]:
    """``value`` as a TIFF (S)RATIONAL numerator/denominator pair."""
    limit = 2**31 - 1 if signed else 2**32 - 1
    frac = Fraction(float(value)).limit_denominator(1_000_000)
    while abs(frac.numerator) > limit or frac.denominator > limit:  # very large values
        frac = Fraction(float(value)).limit_denominator(max(1, frac.denominator // 10))
    return frac.numerator, frac.denominator


def _rationals(values, signed: bool = False) -> tuple[int, ...]:
    return tuple(v for x in np.ravel(values) for v in _rational(x, signed))


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


def _exif_ifd(metadata: RawMetadata, offset: int) -> bytes:
    """A little-endian EXIF IFD placed at file offset ``offset`` (values follow the IFD)."""
    entries: list[tuple[int, int, int, bytes]] = []  # tag, type, count, packed value
    if metadata.exposure_time is not None:
        entries.append((33434, _RATIONAL, 1, struct.pack("<2I", *_rational(metadata.exposure_time))))
    if metadata.f_number is not None:
        entries.append((33437, _RATIONAL, 1, struct.pack("<2I", *_rational(metadata.f_number))))
    if metadata.iso is not None:
        iso = int(round(metadata.iso))
        entries.append((34855, _SHORT, 1, struct.pack("<H", min(iso, 65535))))
        if iso > 65535:  # EXIF 2.3: 65535 in ISOSpeedRatings, the value in ISOSpeed
            entries.append((34864, _SHORT, 1, struct.pack("<H", 3)))  # SensitivityType: ISO speed
            entries.append((34867, _LONG, 1, struct.pack("<I", iso)))
    entries.append((36864, _UNDEFINED, 4, b"0230"))  # ExifVersion 2.3
    if metadata.timestamp is not None:
        text = metadata.timestamp.strftime("%Y:%m:%d %H:%M:%S").encode() + b"\0"
        entries.append((36867, _ASCII, len(text), text))
    if metadata.focal_length is not None:
        entries.append((37386, _RATIONAL, 1, struct.pack("<2I", *_rational(metadata.focal_length))))
    entries.sort()
    values_at = offset + 2 + 12 * len(entries) + 4
    head = struct.pack("<H", len(entries))
    tail = b""
    for tag, typ, count, value in entries:
        if len(value) <= 4:
            head += struct.pack("<HHI", tag, typ, count) + value.ljust(4, b"\0")
        else:
            head += struct.pack("<HHII", tag, typ, count, values_at + len(tail))
            tail += value + b"\0" * (len(value) % 2)  # keep offsets on word boundaries
    return head + struct.pack("<I", 0) + tail


def _own_tags(dng_tags) -> dict[int, tuple[int, int, object] | None]:
    """Validated ``metadata.dng_tags``: rendering tags only, ``(tiff_type, count, value)`` each."""
    if not isinstance(dng_tags, dict):
        raise TypeError(f"Expected `metadata.dng_tags` to be a dict. Got {type(dng_tags).__name__}.")
    own: dict[int, tuple[int, int, object] | None] = {}
    for code, value in dng_tags.items():
        if int(code) not in DNG_RENDERING_TAGS:
            raise ValueError(
                f"Expected `metadata.dng_tags` to hold only DNG rendering tags {sorted(DNG_RENDERING_TAGS)}. "
                f"Got tag {code}."
            )
        if not (isinstance(value, tuple) and len(value) == 3 and int(value[0]) in _TYPE_SIZE):
            raise ValueError(
                f"Expected `metadata.dng_tags[{code}]` to be (tiff_type, count, value). Got {value!r}."
            )
        typ, count, data = int(value[0]), int(value[1]), value[2]
        own[int(code)] = (typ, 0 if typ == _ASCII else count, data)
    return own


def _check_args(sensor, cfa, black_level, white_level, active_area):
    if not isinstance(sensor, np.ndarray):
        raise TypeError(f"Expected `sensor` to be a numpy.ndarray. Got {type(sensor).__name__}.")
    if sensor.ndim != 2 or sensor.dtype != np.uint16:
        raise ValueError(
            f"Expected `sensor` to be a 2-d uint16 array. Got shape {sensor.shape}, dtype {sensor.dtype}."
        )
    if cfa not in BAYER_PATTERNS:
        raise ValueError(f"Expected `cfa` to be one of {BAYER_PATTERNS}. Got {cfa!r}.")
    hs, ws = sensor.shape
    if active_area is None:
        active_area = (0, 0, hs, ws)
    active_area = tuple(int(v) for v in active_area)
    top, left, bottom, right = active_area if len(active_area) == 4 else (0, 0, 0, 0)
    if len(active_area) != 4 or not (0 <= top < bottom <= hs and 0 <= left < right <= ws):
        raise ValueError(
            f"Expected `active_area` (top, left, bottom, right) inside the sensor (0, 0, {hs}, {ws}) "
            f"with top < bottom and left < right. Got {active_area}."
        )
    if top % 2 or left % 2:
        raise ValueError(
            "Expected `active_area` to start on an even row and column (LibRaw moves an odd ActiveArea "
            f"origin to the next even one, so the file would not read back as written). Got {active_area}."
        )
    if bottom - top < 22 or right - left < 22:
        raise ValueError(
            f"Expected an `active_area` of at least 22 x 22 pixels (LibRaw rejects smaller images). "
            f"Got {bottom - top} x {right - left}."
        )
    black = np.asarray(black_level, dtype=np.float64)
    if black.size == 1:
        black = np.full((2, 2), float(black))
    if black.size != 4 or not np.all(np.isfinite(black)) or np.any(black < 0):
        raise ValueError(
            f"Expected `black_level` to be a non-negative number or a (2, 2) array. Got {black_level!r}."
        )
    black = black.reshape(2, 2)
    if np.any(black != np.round(black)):
        raise ValueError(
            "Expected whole-DN `black_level` values (LibRaw reads DNG black levels as integers, so a "
            f"fraction would not read back). Got {black.tolist()}."
        )
    if not (
        np.isfinite(white_level) and black.max() < white_level <= 65535 and white_level == round(white_level)
    ):
        raise ValueError(
            f"Expected `white_level` a whole number of DN in (max black level {black.max()}, 65535]. "
            f"Got {white_level!r}."
        )
    return black, float(white_level), active_area


def write_dng(
    path: str | os.PathLike,
    sensor: np.ndarray,
    *,
    cfa: str,
    black_level: float | np.ndarray,
    white_level: float,
    active_area: tuple[int, int, int, int] | None = None,
    metadata: RawMetadata | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a Bayer sensor image and its metadata as an uncompressed DNG, atomically.

    Everything is relative to the visible (active) area, as in :class:`~isp.raw.RawFrame`:
    ``cfa`` and ``black_level`` describe the top-left 2x2 of ``sensor[top:bottom, left:right]``.
    Pixels outside ``active_area`` are kept in the file as masked (optical-black) areas.
    ``read(path)`` returns the same ``sensor``, ``cfa``, levels and metadata.

    Args:
        path: destination; written to a temporary name in the same folder, then renamed.
        sensor: ``uint16 (Hs, Ws)`` raw values in DN, masked margins included.
        cfa: "RGGB", "BGGR", "GRBG" or "GBRG" (top-left 2x2 of the active area, row-major).
        black_level: one value or ``(2, 2)`` per position of the active area's top-left 2x2, in
            whole DN.
        white_level: saturation level (DN).
        active_area: ``(top, left, bottom, right)`` of the visible area, starting on an even row
            and column and at least 22 x 22 (LibRaw's limits); the whole sensor if None.
        metadata: EXIF values, make/model, white balance, colour matrix and orientation; ``None``
            fields are left out of the file. ``None`` writes an empty EXIF IFD and identity colour.
            Its ``dng_tags`` (a DNG input's own colour tags) are written as they are, in place of
            the ColorMatrix1, AsShotNeutral, CalibrationIlluminant1 and UniqueCameraModel built
            from ``wb``, ``cam_to_srgb`` and make/model.
        overwrite: replace an existing file; otherwise an existing ``path`` raises
            :class:`FileExistsError`.

    Returns:
        The path written.

    Example:
        >>> import tempfile, rawpy
        >>> sensor = np.arange(32 * 40, dtype=np.uint16).reshape(32, 40) + 64
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = write_dng(f"{d}/a.dng", sensor, cfa="GRBG", black_level=64, white_level=4095,
        ...                   active_area=(2, 4, 30, 36), metadata=RawMetadata(iso=800))
        ...     with rawpy.imread(str(p)) as raw:
        ...         same = np.array_equal(raw.raw_image, sensor)
        ...         iso, pattern = raw.other.iso_speed, raw.raw_pattern.tolist()
        >>> same, iso, pattern
        (True, 800.0, [[1, 0], [2, 3]])
    """
    black, white, active_area = _check_args(sensor, cfa, black_level, white_level, active_area)
    meta = metadata if metadata is not None else RawMetadata()
    if not isinstance(meta, RawMetadata):
        raise TypeError(f"Expected `metadata` to be a RawMetadata or None. Got {type(metadata).__name__}.")
    wb = np.asarray(meta.wb, dtype=np.float64).reshape(-1)
    if wb.shape != (3,) or not np.all(wb > 0):
        raise ValueError(f"Expected `metadata.wb` to be 3 positive multipliers R, G, B. Got {meta.wb!r}.")
    xyz_to_cam = xyz_to_cam_from_cam_to_srgb(meta.cam_to_srgb)
    orientation = meta.orientation
    if (
        isinstance(orientation, bool)
        or not isinstance(orientation, int | np.integer)
        or not 1 <= orientation <= 8
    ):
        raise ValueError(
            f"Expected `metadata.orientation` to be an integer 1-8 (TIFF Orientation). Got {orientation!r}."
        )
    own = _own_tags(meta.dng_tags)
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"Refusing to overwrite existing file {str(path)!r}; pass overwrite=True.")

    make, model = _ascii(meta.make).strip(), _ascii(meta.model).strip()
    unique = f"{make} {model}".strip() or "isp synthetic"
    top, left, bottom, right = active_area
    black_tag = (50714, _LONG, 4, tuple(int(v) for v in black.ravel()))
    neutral = wb[1] / wb  # AsShotNeutral: camera coordinates of white, G = 1
    tags = [
        (254, _LONG, 1, 0),  # NewSubFileType: main image
        (274, _SHORT, 1, int(orientation)),  # Orientation
        (33421, _SHORT, 2, (2, 2)),  # CFARepeatPatternDim
        (33422, _BYTE, 4, bytes(_CFA_COLOR[c] for c in cfa)),  # CFAPattern
        (_PLACEHOLDER, _LONG, 1, 0),  # becomes the ExifIFD pointer, see below
        (50706, _BYTE, 4, bytes((1, 4, 0, 0))),  # DNGVersion
        (50707, _BYTE, 4, bytes((1, 1, 0, 0))),  # DNGBackwardVersion
        (50708, _ASCII, 0, unique),  # UniqueCameraModel
        (50710, _BYTE, 3, bytes((0, 1, 2))),  # CFAPlaneColor
        (50711, _SHORT, 1, 1),  # CFALayout: rectangular
        (50713, _SHORT, 2, (2, 2)),  # BlackLevelRepeatDim
        black_tag,
        (50717, _LONG, 1, int(round(white))),  # WhiteLevel
        (50721, _SRATIONAL, 9, _rationals(xyz_to_cam, signed=True)),  # ColorMatrix1
        (50728, _RATIONAL, 3, _rationals(neutral)),  # AsShotNeutral
        (50778, _SHORT, 1, _D65),  # CalibrationIlluminant1
        (50829, _LONG, 4, active_area),  # ActiveArea
    ]
    if 50729 in own:  # the input gives white as AsShotWhiteXY: AsShotNeutral may not be there too
        own.setdefault(50728, None)
    if 50721 in own:  # the input's own matrix: its illuminant (absent = unknown), not our D65
        own.setdefault(50778, None)
    tags = [t for t in tags if t[0] not in own]
    tags += [(code, *value) for code, value in sorted(own.items()) if value is not None]
    if make:
        tags.append((271, _ASCII, 0, make))
    if model:
        tags.append((272, _ASCII, 0, model))
    extratags = [(code, typ, count, value, True) for code, typ, count, value in tags]

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        stamp = meta.timestamp.strftime("%Y:%m:%d %H:%M:%S") if meta.timestamp is not None else None
        tifffile.imwrite(
            tmp,
            np.ascontiguousarray(sensor),
            byteorder="<",
            bigtiff=False,
            photometric=32803,
            compression=None,
            rowsperstrip=sensor.shape[0],
            software="isp",
            datetime=stamp,
            metadata=None,
            extratags=extratags,
        )
        with tifffile.TiffFile(tmp) as tif:
            entry_at = tif.pages.first.tags[_PLACEHOLDER].offset
        with open(tmp, "r+b") as fh:
            end = fh.seek(0, os.SEEK_END)
            if end % 2:
                fh.write(b"\0")
                end += 1
            fh.write(_exif_ifd(meta, end))
            fh.seek(entry_at)
            fh.write(struct.pack("<HHII", _EXIF_IFD, _LONG, 1, end))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic, and fails if `path` appeared meanwhile
            os.unlink(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
