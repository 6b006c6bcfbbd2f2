"""Read any Bayer raw file LibRaw opens into a :class:`~isp.raw.RawFrame`, with its own metadata.

Levels, pattern and EXIF come from the file (rawpy / LibRaw), never from constants. Facts about
rawpy 0.28 / LibRaw 0.22 this relies on (see shared/DESIGN.md): ``black_level_per_channel`` is
indexed by colour index and ``raw_pattern`` numbers the second green 3, so the black level of each
visible position is ``black_level_per_channel[raw_pattern]``; ``raw_image`` dies with the handle
(copied inside ``with``); missing EXIF values are 0 (mapped to ``None`` here).

rawpy 0.28 does not expose make and model; they are read from the TIFF IFD0 (tifffile) for
TIFF-based raws (DNG, NEF, CR2, ARW, PEF, ...) and are "" for others (CR3, RAF, ...). For DNG
files the colour matrix also comes from the file's ``ColorMatrix`` tags, because LibRaw replaces it
by its built-in table when it knows the make and model.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import rawpy
import tifffile

from .color import auto_white_balance, cam_to_srgb_from_xyz
from .dng import DNG_RENDERING_TAGS
from .errors import RawReadError, RawWarning, UnsupportedRawError
from .frame import BAYER_PATTERNS, RawFrame, RawMetadata, frame_from_sensor

__all__ = ["MAX_ZERO_ROWS", "MIN_BYTES_PER_PIXEL", "RAW_EXTENSIONS", "read"]

#: File extensions (lower case, with the dot) of camera raw formats that folders are searched for:
#: those LibRaw reads (its list of supported formats), Apple QuickTake .qtk and Kodak .kdc among them.
RAW_EXTENSIONS = frozenset(
    ".3fr .ari .arw .bay .bmq .cap .cine .cr2 .cr3 .crw .cs1 .dc2 .dcr .dng .drf .dsc .erf .fff .gpr "
    ".ia .iiq .j6i .k25 .kc2 .kdc .mdc .mef .mos .mrw .nef .nrw .orf .ori .pef .ptx .pxn .qtk .raf "
    ".raw .rdc .rw2 .rwl .rwz .sr2 .srf .srw .sti .x3f".split()
)

#: A raw file smaller than this many bytes per sensor pixel cannot hold the image its header
#: declares, however it is compressed (the densest real file seen, a dim QuickTake 150 frame, has
#: 0.07; a header-only or truncated file has ~0.001): it is refused as truncated.
MIN_BYTES_PER_PIXEL = 1 / 64
#: Refused as missing data when more than this fraction of the visible rows decode to 0 DN in every
#: pixel: what LibRaw returns past the end of a truncated file (no real exposure has whole rows at
#: 0, not even a dark frame of a camera with black level 0; real files here have none).
MAX_ZERO_ROWS = 0.5

_TIFF_MAGIC = (b"II*\0", b"MM\0*")
_D65_LIKE = (21, 20, 1, 23, 24)  # D65, D55, Daylight, D50, ISO studio tungsten: preference order
# LibRaw's sizes.flip -> TIFF Orientation (the inverse of dcraw's "50132467"[orientation & 7])
_LIBRAW_FLIP_TO_ORIENTATION = {0: 1, 1: 2, 3: 3, 2: 4, 4: 5, 6: 6, 7: 7, 5: 8}


@dataclass
class _TiffInfo:
    make: str = ""
    model: str = ""
    is_dng: bool = False
    xyz_to_cam: np.ndarray | None = None
    iso: float | None = None
    has_cfa: bool = False  # some IFD says PhotometricInterpretation CFA (32803)
    dng_tags: dict | None = None  # a DNG's rendering tags, {code: (type, count, value)}


def _tiff_info(path: str) -> _TiffInfo | None:
    """Make, model and DNG colour matrix from a TIFF-based raw; checks its data lie inside the file.

    Returns ``None`` for files that are not TIFF-based. Raises :class:`RawReadError` when the
    structure is broken or an image's data run past the end of the file (a truncated file, which
    LibRaw would otherwise decode silently into zeros or garbage).
    """
    with open(path, "rb") as fh:
        magic = fh.read(4)
        size = fh.seek(0, os.SEEK_END)
    if magic not in _TIFF_MAGIC:
        return None
    info = _TiffInfo()
    try:
        with tifffile.TiffFile(path) as tif:
            pages = list(tif.pages)
            page0 = pages[0]
            tags = page0.tags
            info.make = str(tags.valueof(271, "") or "").strip("\0 ")
            info.model = str(tags.valueof(272, "") or "").strip("\0 ")
            info.is_dng = 50706 in tags
            exif = tags.valueof(34665) or {}
            if isinstance(exif, dict) and exif.get("ISOSpeed"):
                info.iso = float(exif["ISOSpeed"])
            if info.is_dng:
                matrices = {}
                for cm, ill in ((50721, 50778), (50722, 50779)):
                    if cm in tags and len(tags[cm].value) >= 9:
                        v = np.asarray(tags[cm].value, dtype=np.float64)
                        m = (v[0::2] / v[1::2])[:9].reshape(3, 3) if v.size >= 18 else v[:9].reshape(3, 3)
                        matrices[int(tags.valueof(ill, 0))] = m
                for ill in (*_D65_LIKE, *matrices):
                    if ill in matrices:
                        info.xyz_to_cam = matrices[ill]
                        break
            if info.is_dng:
                info.dng_tags = {}
            for page in pages + [p for p in _subifds(tif, page0)]:
                info.has_cfa |= int(page.photometric) == 32803
                if info.dng_tags is not None and (page is page0 or int(page.photometric) == 32803):
                    for tag in page.tags.values():
                        if tag.code in DNG_RENDERING_TAGS and tag.code not in info.dng_tags:
                            info.dng_tags[tag.code] = (int(tag.dtype), int(tag.count), tag.value)
                offsets, counts = page.dataoffsets, page.databytecounts
                if len(offsets) and max(o + c for o, c in zip(offsets, counts, strict=False)) > size:
                    raise RawReadError(path, f"the file is truncated: image data end beyond its {size} bytes")
    except RawReadError:
        raise
    except Exception as exc:  # tifffile's many parse errors: a broken TIFF structure
        if magic in _TIFF_MAGIC and path.lower().endswith(".dng"):
            raise RawReadError(path, f"corrupt TIFF/DNG structure ({type(exc).__name__}: {exc})") from exc
        return None  # vendor TIFF variants tifffile cannot walk: leave the judgement to LibRaw
    return info


@contextlib.contextmanager
def _library_messages(path: str, messages: list[str]) -> Iterator[None]:
    """Collect what LibRaw (C stderr) and tifffile (its logger) say while reading ``path``.

    LibRaw writes its data errors (``Unexpected end of file``, ``Corrupt data near ...``) to the
    process's standard error, prefixed with the file name; tifffile logs its complaints. Both are
    taken here into ``messages`` (one line each, without the file name prefix) so that the caller
    can judge them and report them with the file they concern, instead of letting them reach the
    terminal on their own.
    """
    logger = logging.getLogger("tifffile")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    with contextlib.ExitStack() as stack:
        try:
            sys.stderr.flush()
            capture = stack.enter_context(tempfile.TemporaryFile())
            saved = os.dup(2)
        except (OSError, ValueError):  # no usable fd 2 or temporary file: nothing is captured
            saved, capture = None, None
        else:
            os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            if saved is not None:
                os.dup2(saved, 2)
                os.close(saved)
                capture.seek(0)
                for line in capture.read(65536).decode("utf-8", "replace").splitlines():
                    line = line.strip()
                    for prefix in (f"{path}:", f"{os.path.basename(path)}:"):
                        if line.startswith(prefix):
                            line = line[len(prefix) :].strip()
                    if line:
                        messages.append(f"LibRaw: {line}")
            logger.removeHandler(handler)
            logger.propagate = propagate
            messages.extend(f"tifffile: {r.getMessage()}" for r in records)


def _said(messages: list[str]) -> str:
    return f"; {'; '.join(messages)}" if messages else ""


def _check_extent(path: str, size: int, shape: tuple[int, int]) -> None:
    """Refuse a file too small for the raw image its header declares (any format)."""
    pixels = int(shape[0]) * int(shape[1])
    if size < pixels * MIN_BYTES_PER_PIXEL:
        raise RawReadError(
            path,
            f"the file is truncated: its header declares a {shape[1]} x {shape[0]} raw image, but its "
            f"{size} bytes cannot hold it even compressed (at least {int(pixels * MIN_BYTES_PER_PIXEL)} "
            "bytes); LibRaw would decode the missing data as zeros or garbage",
        )


def _check_decoded(path: str, visible: np.ndarray) -> None:
    """Refuse a decoded image whose rows are mostly all 0 DN: the data ended early or are missing."""
    h = visible.shape[0]
    if h == 0:
        return
    zero = np.count_nonzero(visible.max(axis=1) == 0)
    if zero > MAX_ZERO_ROWS * h:
        raise RawReadError(
            path,
            f"{zero} of its {h} visible rows decode to 0 DN in every pixel: the raw data are missing "
            "or end early (a truncated or damaged file)",
        )


def _subifds(tif: tifffile.TiffFile, page) -> list:
    """The pages of ``page``'s SubIFDs (where NEF, DNG and others keep the raw image)."""
    out = []
    for offset in page.subifds or ():
        tif.filehandle.seek(offset)
        out.append(tifffile.TiffPage(tif, index=0))
    return out


def _none_if_zero(value: float) -> float | None:
    value = float(value)
    return value if value > 0 and np.isfinite(value) else None


def _cfa(raw: rawpy.RawPy, path: str) -> tuple[str, np.ndarray]:
    """The Bayer phase string and the raw_pattern, or UnsupportedRawError."""
    if raw.raw_type != rawpy.RawType.Flat:
        raise UnsupportedRawError(
            path, "the sensor data are stacked (Foveon or a linear/demosaiced DNG), not a Bayer mosaic"
        )
    pattern = raw.raw_pattern
    if pattern is None or raw.num_colors < 3:
        raise UnsupportedRawError(path, "the sensor has no colour filter array (monochrome)")
    pattern = np.array(pattern)
    if pattern.shape != (2, 2):
        kind = "X-Trans" if pattern.shape == (6, 6) else "non-Bayer"
        raise UnsupportedRawError(path, f"the colour filter array is {kind} {pattern.shape}, not 2x2 Bayer")
    desc = raw.color_desc.decode("ascii", "replace")
    try:
        cfa = "".join(desc[int(c)] for c in pattern.ravel())
    except IndexError:
        cfa = "?"
    if cfa not in BAYER_PATTERNS:
        raise UnsupportedRawError(
            path, f"the colour filter array {cfa!r} ({desc}) is not an RGB Bayer pattern"
        )
    return cfa, pattern


def read(path: str | os.PathLike) -> RawFrame:
    """Decode a Bayer raw file (NEF, ARW, CR2, CR3, RAF Bayer, ORF, RW2, PEF, DNG, ...).

    Args:
        path: the raw file.

    Returns:
        :class:`~isp.raw.RawFrame` with the visible mosaic ``float32 (H, W)`` black-subtracted per
        position and white-normalised (computed on first access of ``frame.mosaic``, so that
        :func:`~isp.raw.pack` can build the planes straight from the sensor), the CFA of its
        top-left 2x2, the levels, the whole sensor ``uint16 (Hs, Ws)``, the active area LibRaw
        reports, the EXIF metadata (missing values ``None``) and the margins outside the active
        area as optical black.

    Raises:
        RawReadError: the file is missing, unreadable, truncated or corrupt: also when the file is
            too small for the image its header declares (:data:`MIN_BYTES_PER_PIXEL`), LibRaw
            reports a data error, or most rows decode to 0 (:data:`MAX_ZERO_ROWS`), which
            is how a truncated file of any format decodes.
        UnsupportedRawError: X-Trans, Foveon/stacked, monochrome or linear DNG.

    Warns:
        RawWarning: what tifffile or LibRaw said about the file, naming it.

    Example:
        >>> import tempfile
        >>> from isp.raw import write_dng
        >>> sensor = np.full((32, 40), 64, dtype=np.uint16); sensor[2:, 4:] += 100
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = write_dng(f"{d}/a.dng", sensor, cfa="BGGR", black_level=64, white_level=1064,
        ...                   active_area=(2, 4, 32, 40), metadata=RawMetadata(iso=400))
        ...     frame = read(f"{d}/a.dng")
        >>> frame.cfa, frame.mosaic.shape, round(float(frame.mosaic[0, 0]), 6), frame.metadata.iso
        ('BGGR', (30, 36), 0.1, 400.0)
        >>> frame.metadata.exposure_time is None, frame.optical_black.left.shape
        (True, (30, 4))
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise RawReadError(path, "the file does not exist")
    if not os.path.isfile(path):
        raise RawReadError(path, "not a regular file")
    messages: list[str] = []
    try:
        with _library_messages(path, messages):
            info = _tiff_info(path)
    except OSError as exc:
        raise RawReadError(path, f"cannot open it ({exc.strerror or exc})") from exc
    if info is not None and not (info.is_dng or info.make or info.has_cfa):
        # LibRaw decodes any 16-bit greyscale TIFF as if it were a Bayer raw.
        raise UnsupportedRawError(
            path, "a plain TIFF image (no camera make, DNG or CFA tags), not a camera raw"
        )
    size = os.path.getsize(path)
    try:
        with _library_messages(path, messages), rawpy.imread(path) as raw:
            sizes = raw.sizes
            _check_extent(path, size, (sizes.raw_height, sizes.raw_width))
            cfa, pattern = _cfa(raw, path)
            sensor = raw.raw_image.copy()
            per_channel = np.asarray(raw.black_level_per_channel, dtype=np.float64)
            white = float(raw.white_level)
            other = raw.other
            iso, shutter = other.iso_speed, other.shutter_speed
            aperture, focal, stamp = other.aperture, other.focal_length, other.timestamp
            cam_wb = np.asarray(raw.camera_whitebalance, dtype=np.float64)
            day_wb = np.asarray(raw.daylight_whitebalance, dtype=np.float64)
            xyz_to_cam = np.asarray(raw.rgb_xyz_matrix, dtype=np.float64)
            flip = int(sizes.flip)
    except (UnsupportedRawError, RawReadError):
        raise
    except rawpy.LibRawFileUnsupportedError as exc:
        raise RawReadError(
            path, f"LibRaw does not recognise it as a raw file (unknown format or corrupt){_said(messages)}"
        ) from exc
    except rawpy.LibRawError as exc:
        raise RawReadError(
            path, f"LibRaw failed to decode it ({type(exc).__name__}: {exc}){_said(messages)}"
        ) from exc
    except OSError as exc:
        raise RawReadError(path, f"cannot open it ({exc}){_said(messages)}") from exc
    data_errors = [m for m in messages if m.startswith("LibRaw:")]
    if any("end of file" in m.lower() for m in data_errors):
        raise RawReadError(
            path, f"the file is truncated: its raw data end before the image does{_said(data_errors)}"
        )
    if data_errors:
        raise RawReadError(path, f"its raw data are corrupt{_said(data_errors)}")
    for message in messages:
        warnings.warn(RawWarning(path, message), stacklevel=2)

    if sensor.dtype != np.uint16 or sensor.ndim != 2:
        raise UnsupportedRawError(
            path, f"the raw image is {sensor.dtype} {sensor.shape}, not a 2-d uint16 mosaic"
        )
    top, left = int(sizes.top_margin), int(sizes.left_margin)
    active_area = (top, left, top + int(sizes.height), left + int(sizes.width))
    visible = sensor[active_area[0] : active_area[2], active_area[1] : active_area[3]]
    _check_decoded(path, visible)
    if info is not None and info.is_dng and info.xyz_to_cam is not None:
        xyz_to_cam = info.xyz_to_cam
    metadata = RawMetadata(
        iso=_none_if_zero(iso),
        exposure_time=_none_if_zero(shutter),
        f_number=_none_if_zero(aperture),
        focal_length=_none_if_zero(focal),
        make=info.make if info is not None else "",
        model=info.model if info is not None else "",
        timestamp=_timestamp(stamp),
        wb=_white_balance(cam_wb, day_wb, visible, cfa, per_channel[pattern], white),
        cam_to_srgb=_cam_to_srgb(xyz_to_cam),
        orientation=_LIBRAW_FLIP_TO_ORIENTATION.get(flip, 1),
        dng_tags=dict(info.dng_tags or {}) if info is not None else {},
    )
    if metadata.iso is not None and metadata.iso >= 65535 and info is not None and info.iso:
        metadata.iso = info.iso  # EXIF 2.3 ISOSpeed, for values LibRaw clips at 65535
    return frame_from_sensor(
        sensor,
        cfa=cfa,
        black_level=per_channel[pattern],
        white_level=white,
        active_area=active_area,
        metadata=metadata,
        path=path,
        lazy=True,
    )


def _timestamp(stamp) -> _dt.datetime | None:
    if isinstance(stamp, _dt.datetime):
        return None if stamp == _dt.datetime.fromtimestamp(0) else stamp
    stamp = float(stamp or 0)
    return _dt.datetime.fromtimestamp(stamp) if stamp > 0 else None


def _white_balance(camera, daylight, visible, cfa, black, white) -> np.ndarray:
    """As-shot multipliers R, G, B with G = 1; daylight multipliers, then ones, when absent.

    A camera white balance starting with -1 is LibRaw's (dcraw's) "the camera chose it
    automatically and did not record it": the as-shot balance is then dcraw's automatic one, with
    which dcraw, LibRaw and RawTherapee render the file.
    """
    if camera.size >= 3 and camera[0] == -1 and min(visible.shape) >= 8:
        auto = auto_white_balance(visible, cfa, black, white)
        if auto is not None:
            return auto
    for wb in (camera, daylight):
        if wb.size >= 3 and np.all(np.isfinite(wb[:3])) and np.all(wb[:3] > 0):
            return wb[:3] / wb[1]
    return np.ones(3)


def _cam_to_srgb(xyz_to_cam: np.ndarray) -> np.ndarray:
    """The file's camera -> sRGB matrix; identity when the file carries none."""
    m = cam_to_srgb_from_xyz(xyz_to_cam)
    return np.eye(3) if m is None else m
