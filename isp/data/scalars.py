"""The per-image scalar side input of the denoiser: exposure settings in log2 units.

A photo's noise level is set mostly by its ISO (analogue gain) and by any digital gain applied
afterwards (SID multiplies a short exposure by the exposure ratio to a long one); the exposure
time adds a little (dark current, hot pixels). The network receives them as a small vector of
normalised numbers, each with a flag saying whether the file recorded it, so that a missing
value (0, flag 0) is never confused with ISO 100 or a one-second exposure.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["SCALAR_CHANNELS", "SCALAR_NAMES", "scalars"]

SCALAR_NAMES = ("log2_iso_100", "log2_exposure_s", "log2_gain", "iso_known", "exposure_known")
"""The channels of :func:`scalars`, in order."""

SCALAR_CHANNELS = len(SCALAR_NAMES)
"""Length of the vector :func:`scalars` returns (``C4`` of the network)."""


def _positive(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"Expected `metadata.{name}` to be a number or None. Got {type(value).__name__}.")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"Expected `metadata.{name}` to be a positive finite number or None. Got {value}.")
    return value


def scalars(metadata: Any, gain: float = 1.0) -> np.ndarray:
    """Normalised scalar side input of one image.

    Args:
        metadata: an :class:`isp.raw.RawMetadata` (anything with ``iso`` and ``exposure_time``
            attributes, each a positive number or ``None`` when the file does not record it).
        gain: the digital amplification applied to the input image (SID's exposure ratio), >= 1
            in practice but any positive value is accepted.

    Returns:
        ``(SCALAR_CHANNELS,) = (5,)`` float32: ``log2(ISO / 100)``, ``log2(exposure in s)``,
        ``log2(gain)``, ``iso_known``, ``exposure_known``. A missing ISO or exposure gives 0 and
        its flag 0.

    Example:
        >>> from types import SimpleNamespace
        >>> scalars(SimpleNamespace(iso=400, exposure_time=0.25), gain=8.0).tolist()
        [2.0, -2.0, 3.0, 1.0, 1.0]
        >>> scalars(SimpleNamespace(iso=None, exposure_time=None)).tolist()
        [0.0, 0.0, 0.0, 0.0, 0.0]
    """
    for name in ("iso", "exposure_time"):
        if not hasattr(metadata, name):
            raise TypeError(
                f"Expected `metadata` with attributes `iso` and `exposure_time` (an isp.raw.RawMetadata). "
                f"Got {type(metadata).__name__} without `{name}`."
            )
    iso = _positive(metadata.iso, "iso")
    exposure = _positive(metadata.exposure_time, "exposure_time")
    if isinstance(gain, bool) or not isinstance(gain, (int, float, np.integer, np.floating)):
        raise TypeError(f"Expected `gain` to be a positive number. Got {type(gain).__name__}.")
    if not math.isfinite(float(gain)) or gain <= 0:
        raise ValueError(f"Expected `gain` to be a positive finite number. Got {gain}.")
    return np.array(
        [
            math.log2(iso / 100.0) if iso is not None else 0.0,
            math.log2(exposure) if exposure is not None else 0.0,
            math.log2(float(gain)),
            1.0 if iso is not None else 0.0,
            1.0 if exposure is not None else 0.0,
        ],
        dtype=np.float32,
    )
