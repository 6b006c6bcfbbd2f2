"""Unprocessing: an sRGB photograph back to a clean camera-raw scene, and the forward pipeline.

After Brooks et al., "Unprocessing Images for Learned Raw Denoising" (CVPR 2019): invert a
camera pipeline step by step on a processed image, with the camera's unknowns drawn at random::

    sRGB --inverse tone curve--> --inverse gamma--> linear sRGB --inverse colour matrix--> camera
    RGB (white-balanced) --inverse white balance--> camera RGB (as the sensor saw it)

The tone curve is Brooks's smoothstep ``3x^2 - 2x^3`` (inverted in closed form), the gamma the
sRGB transfer function; the colour matrix ``cam_to_srgb`` is a random matrix whose rows sum to one
(white stays white) with the positive diagonal and negative cross-talk terms of real cameras'
matrices; the white-balance gains are drawn from Brooks's ranges (red 1.9-2.4, blue 1.5-1.9).
:func:`process` is the forward pipeline, so ``process(unprocess(x)) == x`` up to rounding where
nothing clips. The Bayer sampling itself is :func:`isp.data.synth.mosaic_from_rgb`.

Paper: https://arxiv.org/abs/1811.11127
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CameraPipeline", "process", "random_pipeline", "srgb_to_linear", "unprocess"]


@dataclass(frozen=True)
class CameraPipeline:
    """The unknowns of one camera's pipeline.

    Attributes:
        cam_to_srgb: ``(3, 3)`` white-balanced camera RGB -> linear sRGB (rows sum to 1).
        wb: ``(3,)`` white-balance gains (R, G, B), green 1.
    """

    cam_to_srgb: np.ndarray
    wb: np.ndarray


def random_pipeline(rng: np.random.Generator) -> CameraPipeline:
    """A random :class:`CameraPipeline` (colour matrix with cross-talk 0.2-0.9, Brooks's WB ranges)."""
    strength = rng.uniform(0.2, 0.9)
    mix = rng.dirichlet(np.ones(3), size=3)  # row-stochastic cross-talk
    cam_to_srgb = (1.0 + strength) * np.eye(3) - strength * mix
    wb = np.array([rng.uniform(1.9, 2.4), 1.0, rng.uniform(1.5, 1.9)])
    return CameraPipeline(cam_to_srgb.astype(np.float64), wb)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """The inverse sRGB transfer function (IEC 61966-2-1)."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def _inverse_smoothstep(y: np.ndarray) -> np.ndarray:
    y = np.clip(y, 0.0, 1.0)
    return 0.5 - np.sin(np.arcsin(1.0 - 2.0 * y) / 3.0)


def unprocess(srgb: np.ndarray, pipeline: CameraPipeline) -> np.ndarray:
    """A processed image back to what the sensor saw: ``(H, W, 3)`` in [0, 1] -> ``(H, W, 3)``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.uniform(0.2, 0.6, (4, 4, 3))
        >>> p = CameraPipeline(np.eye(3), np.array([2.0, 1.0, 1.5]))
        >>> bool(np.allclose(process(unprocess(x, p), p), x, atol=1e-6))
        True
    """
    x = np.asarray(srgb, dtype=np.float64)
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"Expected `srgb` of shape (H, W, 3). Got {x.shape}.")
    linear = srgb_to_linear(_inverse_smoothstep(x))
    cam = linear @ np.linalg.inv(pipeline.cam_to_srgb).T
    return np.clip(cam / pipeline.wb, 0.0, None)


def process(cam: np.ndarray, pipeline: CameraPipeline) -> np.ndarray:
    """The forward pipeline: sensor camera RGB ``(H, W, 3)`` -> sRGB ``(H, W, 3)`` in [0, 1]."""
    x = np.asarray(cam, dtype=np.float64) * pipeline.wb
    linear = np.clip(x @ pipeline.cam_to_srgb.T, 0.0, 1.0)
    y = _linear_to_srgb(linear)
    return 3 * y**2 - 2 * y**3
