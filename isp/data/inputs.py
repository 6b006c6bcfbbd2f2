"""The one path from a raw frame to the network's inputs: training, ``predict.py`` and the writer.

Two contracts, both built here and nowhere else: version 2 (:func:`model_inputs`, the shipped
model's) measures the noise and the banding; version 1 (:func:`model_inputs_v1`, the models
trained on :class:`isp.data.RawPairDataset`) scales the packed planes and noise vectors only.

:func:`model_inputs` turns a :class:`~isp.raw.RawFrame` into ``image (4, h, w)``, ``row (7, h)``,
``col (5, w)`` and ``scalar (8,)``::

    image   packed planes R, Gr, Gb, B (mosaic units) minus the estimated row banding, x gain
    row     0-4  masked-pixel offset / spread of the even and odd sensor row, validity
                 (``isp.raw.noise_vectors``; offsets and spreads x gain x vector_scale)
            5-6  the whole-row banding estimate subtracted from the image, even / odd sensor row
                 (:func:`isp.noise.banding.row_banding`; x gain x vector_scale)
    col     0-4  the same masked-pixel statistics per column (masked rows above / below)
    scalar  0-4  log2(ISO / 100), log2(exposure s), log2(gain), iso_known, exposure_known
                 (``isp.data.scalars``; an ISO outside 6..3276800 or an exposure outside
                 1e-6..86400 s is read as unknown, with a warning)
            5    log2(a / 1e-3)        measured shot-noise slope of var = a x + b (x gain)
            6    log2(b / 1e-5) / 2    measured read variance (x gain^2), i.e. log2 of its std
            7    confidence of that measurement (0: a prior from the ISO)

``a`` and ``b`` come from :func:`isp.noise.estimate.estimate_noise` (masked pixels and the image
itself), so two files with the same ISO but different noise get different inputs. Everything is
measured on the whole frame before any crop or tile, so a tile sees the whole row's banding and
the whole frame's noise level; :func:`crop_inputs` cuts the result for a crop.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

import numpy as np

from isp.data.scalars import scalars
from isp.noise.banding import row_banding
from isp.noise.estimate import NoiseEstimate, estimate_noise
from isp.noise.masked import censored_rows, clipped
from isp.raw import PackInfo, RawFrame, noise_vectors, pack
from isp.raw.pack import phase_crop

__all__ = [
    "GAIN_SCALAR",
    "INPUTS_VERSION",
    "ISO_RANGE",
    "EXPOSURE_RANGE",
    "ModelInputs",
    "ROW_CHANNELS",
    "SCALAR_CHANNELS",
    "SCALAR_NAMES",
    "VECTOR_SCALE",
    "crop_inputs",
    "model_inputs",
    "model_inputs_v1",
    "noise_from_scalars",
]

INPUTS_VERSION = 2
"""Version of this contract, recorded with trained weights (1: the five-channel scalars)."""
ROW_CHANNELS = 7
SCALAR_NAMES = (
    "log2_iso_100", "log2_exposure_s", "log2_gain", "iso_known", "exposure_known",
    "log2_a_1e-3", "log2_read_std_3e-3", "noise_confidence",
)  # fmt: skip
SCALAR_CHANNELS = len(SCALAR_NAMES)
GAIN_SCALAR = SCALAR_NAMES.index("log2_gain")
"""Index of ``log2(gain)`` in ``scalar`` (the same in both contracts): how a writer undoes the gain."""
VECTOR_SCALE = 1024.0
"""Default factor on the offset/spread channels of the noise vectors (after the gain): spreads of
unamplified data (about 6e-5 .. 8e-4 in mosaic units) become 0.1 .. 3."""
ISO_RANGE = (6.0, 3_276_800.0)
"""EXIF ISOs outside this are read as unknown (with a warning): no camera records them truthfully,
and clamping to a bound can make the output worse than the input (measured, issue 14)."""
EXPOSURE_RANGE = (1e-6, 86_400.0)
"""Exposure times (s) outside this (an electronic shutter .. a day) are read as unknown."""
_A_REF, _B_REF = 1e-3, 1e-5


@dataclass
class ModelInputs:
    """The network's inputs for one frame (numpy, float32) and what was measured on the way.

    Attributes:
        image: ``(4, h, w)``.
        row: ``(ROW_CHANNELS, h)``.
        col: ``(5, w)``.
        scalar: ``(SCALAR_CHANNELS,)``.
        info: how the mosaic was packed (:func:`isp.raw.unpack` needs it).
        noise: the noise measurement (before the gain).
        banding: ``(2, h)`` the row offsets subtracted from the image (before the gain).
    """

    image: np.ndarray
    row: np.ndarray
    col: np.ndarray
    scalar: np.ndarray
    info: PackInfo
    noise: NoiseEstimate
    banding: np.ndarray


def _clamp_metadata(metadata, path: str | None):
    changes = {}
    for name, (lo, hi) in (("iso", ISO_RANGE), ("exposure_time", EXPOSURE_RANGE)):
        value = getattr(metadata, name, None)
        if value is None:
            continue
        value = float(value)
        if not math.isfinite(value) or value <= 0:
            warnings.warn(
                f"{path or 'frame'}: EXIF {name} {value!r} is not a positive number; ignored.", stacklevel=3
            )
            changes[name] = None
        elif not lo <= value <= hi:
            warnings.warn(
                f"{path or 'frame'}: EXIF {name} {value:g} is outside {lo:g}..{hi:g}; read as unknown.",
                stacklevel=3,
            )
            changes[name] = None
    return replace(metadata, **changes) if changes else metadata


def _ob_offsets(
    frame: RawFrame, row: np.ndarray, floor: float, read_var: float
) -> tuple[np.ndarray | None, float | np.ndarray | None]:
    """Per-row masked offsets ``(2, h)`` and their noise variance (a censored fit where pixels clip).

    ``read_var`` is the masked pixels' read variance (:func:`isp.noise.estimate.ob_read_variance`,
    as the noise estimate measured it).
    """
    ob = frame.optical_black
    masked = [m for m in (ob.left, ob.right) if m is not None and m.ndim == 2 and m.shape[1] >= 2]
    if not masked or row[4].max() <= 0:
        return None, None
    block = np.concatenate(masked, axis=1) if len({m.shape[0] for m in masked}) == 1 else masked[0]
    m = block.shape[1]
    if np.mean(clipped(block, floor)) > 1e-3:  # clipped at 0 DN: means and medians are biased
        top, _ = phase_crop(frame.cfa)
        h = row.shape[1]
        fit = censored_rows(block, floor)
        offsets = np.stack([fit.offsets[top : top + 2 * h : 2], fit.offsets[top + 1 : top + 2 * h : 2]])
        variances = np.stack([fit.variances[top : top + 2 * h : 2], fit.variances[top + 1 : top + 2 * h : 2]])
        return offsets, np.maximum(variances, 1e-14)
    return row[[0, 2]].astype(np.float64), max(read_var, 1e-14) / m


def measure_noise(
    frame: RawFrame, planes: np.ndarray, iso: float | None
) -> tuple[np.ndarray, np.ndarray, float, NoiseEstimate]:
    """The masked-pixel vectors, the raw floor and the noise estimate that :func:`model_inputs` uses.

    Args:
        frame: the decoded frame.
        planes: ``(4, h, w)`` its packed planes (float32, before any destriping).
        iso: the EXIF ISO as read (None when unknown).

    Returns:
        ``(row (5, h), col (5, w), floor, noise)``: :func:`isp.raw.noise_vectors`, the normalised
        value of 0 DN, and :func:`isp.noise.estimate.estimate_noise`.
    """
    row, col = noise_vectors(frame)
    black = float(np.mean(frame.black_level))
    floor = -black / (float(frame.white_level) - black)
    floor += 1e-9  # 0 DN itself counts as at the floor; the same floor for both masked-pixel fits
    ob = frame.optical_black
    noise = estimate_noise(planes, masked=[ob.left, ob.right], iso=iso, floor=floor)
    return row, col, floor, noise


def model_inputs(
    frame: RawFrame,
    *,
    gain: float = 1.0,
    vector_scale: float = 1024.0,
    destripe: bool = True,
) -> ModelInputs:
    """The network's inputs for a whole frame (see the module docstring for the channels).

    Args:
        frame: the decoded frame (noisy).
        gain: digital amplification of the input (SID's exposure ratio; 1 for photos).
        vector_scale: factor on the vectors' offsets, spreads and banding estimates (after
            ``gain``).
        destripe: estimate and subtract row banding (off: channels 5-6 of ``row`` are 0).

    Returns:
        :class:`ModelInputs`.

    Example:
        >>> from isp.raw import frame_from_sensor
        >>> rng = np.random.default_rng(0)
        >>> sensor = (512 + rng.normal(2000, 30, (64, 80))).astype(np.uint16)
        >>> f = frame_from_sensor(sensor, cfa="RGGB", black_level=512, white_level=16383,
        ...                       active_area=(0, 16, 64, 80))
        >>> x = model_inputs(f)
        >>> x.image.shape, x.row.shape, x.col.shape, x.scalar.shape
        ((4, 32, 32), (7, 32), (5, 32), (8,))
    """
    if not isinstance(frame, RawFrame):
        raise TypeError(f"Expected `frame` to be an isp.raw.RawFrame. Got {type(frame).__name__}.")
    if not (isinstance(gain, int | float) and math.isfinite(gain) and gain > 0):
        raise ValueError(f"Expected `gain` to be a positive finite number. Got {gain!r}.")
    metadata = _clamp_metadata(frame.metadata, frame.path)
    planes, info = pack(frame)
    planes = np.array(planes, dtype=np.float32)
    if not np.isfinite(planes).all():
        raise ValueError(f"{frame.path or 'frame'}: the decoded mosaic holds non-finite values.")
    row, col, floor, noise = measure_noise(frame, planes, metadata.iso)
    h = planes.shape[1]
    banding = np.zeros((2, h), np.float32)
    if destripe:
        has_ob = noise.source in ("image+ob", "ob+prior")
        offsets, variance = _ob_offsets(frame, row, floor, noise.b) if has_ob else (None, None)
        banding = row_banding(planes, offsets, variance)
        planes[:2] -= banding[0][None, :, None]
        planes[2:] -= banding[1][None, :, None]
    scale = np.float32(gain * vector_scale)
    row7 = np.zeros((ROW_CHANNELS, h), np.float32)
    row7[:5] = row
    row7[:4] *= scale
    row7[5:7] = banding * scale
    col = np.array(col, dtype=np.float32)
    col[:4] *= scale
    if gain != 1.0:
        planes *= np.float32(gain)
    a, b = noise.a * gain, noise.b * gain * gain
    scalar = np.concatenate(
        [
            scalars(metadata, gain),
            np.array([math.log2(a / _A_REF), 0.5 * math.log2(b / _B_REF), noise.confidence], np.float32),
        ]
    ).astype(np.float32)
    return ModelInputs(planes, row7, col, scalar, info, noise, banding)


def model_inputs_v1(
    planes: np.ndarray,
    row: np.ndarray,
    col: np.ndarray,
    metadata,
    *,
    gain: float = 1.0,
    vector_scale: float = VECTOR_SCALE,
) -> dict[str, np.ndarray]:
    """Contract 1: the network's inputs from packed planes and noise vectors (a frame or a crop).

    ``image`` is ``planes * gain``; channels 0-3 (offsets and spreads) of ``row`` and ``col`` are
    multiplied by ``gain * vector_scale``, the validity channel 4 stays 0/1; ``scalar`` is
    :func:`isp.data.scalars.scalars` of ``metadata`` (5 channels). Unlike contract 2 nothing is
    measured, so a crop of the inputs equals the inputs of the crop: the dataset calls this after
    cropping, prediction on the whole frame.

    Args:
        planes: ``(4, h, w)`` packed planes (:func:`isp.raw.pack`); not modified.
        row: ``(5, h)`` row noise vectors (:func:`isp.raw.noise_vectors`); not modified.
        col: ``(5, w)`` column noise vectors.
        metadata: the noisy file's :class:`isp.raw.RawMetadata`.
        gain: digital amplification of the input (SID's exposure ratio; 1 for photos).
        vector_scale: factor on the vectors' offsets and spreads (after ``gain``).

    Returns:
        ``image (4, h, w)``, ``row (5, h)``, ``col (5, w)``, ``scalar (5,)``, float32.

    Example:
        >>> from isp.raw import RawMetadata
        >>> x = model_inputs_v1(np.ones((4, 2, 3)), np.ones((5, 2)), np.ones((5, 3)), RawMetadata(),
        ...                     gain=2.0, vector_scale=10.0)
        >>> x["image"][0, 0, 0], x["row"][:, 0].tolist(), x["scalar"].shape
        (np.float32(2.0), [20.0, 20.0, 20.0, 20.0, 1.0], (5,))
    """
    scale = np.float32(gain * vector_scale)
    image = np.array(planes, dtype=np.float32)
    image *= np.float32(gain)
    row = np.array(row, dtype=np.float32)
    col = np.array(col, dtype=np.float32)
    row[:4] *= scale
    col[:4] *= scale
    return {"image": image, "row": row, "col": col, "scalar": scalars(metadata, gain)}


def noise_from_scalars(scalar):
    """``(a, b)`` back from scalar channels 5 and 6 (numpy arrays or torch tensors ``(..., C4)``)."""
    return _A_REF * 2.0 ** scalar[..., 5], _B_REF * 4.0 ** scalar[..., 6]


def crop_inputs(x: ModelInputs, top: int, left: int, height: int, width: int) -> dict[str, np.ndarray]:
    """``image``, ``row``, ``col``, ``scalar`` of a crop (packed pixels) of :func:`model_inputs`' result."""
    return {
        "image": np.ascontiguousarray(x.image[:, top : top + height, left : left + width]),
        "row": np.ascontiguousarray(x.row[:, top : top + height]),
        "col": np.ascontiguousarray(x.col[:, left : left + width]),
        "scalar": x.scalar,
    }
