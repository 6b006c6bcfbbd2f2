"""A denoised sensor image rendered to sRGB by LibRaw's own pipeline (rawpy ``postprocess``)."""

from __future__ import annotations

import os

import numpy as np

__all__ = ["render_srgb"]


def render_srgb(raw_path: str | os.PathLike, sensor: np.ndarray, *, bits: int = 16) -> np.ndarray:
    """Render a denoised sensor image through LibRaw's own pipeline (rawpy ``postprocess``).

    The input file is opened again, its raw buffer replaced by ``sensor``, and LibRaw renders
    it with the camera's as-shot white balance, AHD demosaic, the file's colour matrix, sRGB
    primaries and gamma, and its default automatic brightness (as ``dcraw -w``).

    Args:
        raw_path: the input raw file (read only).
        sensor: ``uint16 (Hs, Ws)`` the whole sensor image, as ``frame.sensor``.
        bits: 8 or 16 bits per channel.

    Returns:
        ``(H, W, 3)`` uint8 or uint16 sRGB of the visible area.
    """
    import rawpy

    if bits not in (8, 16):
        raise ValueError(f"Expected `bits` to be 8 or 16. Got {bits!r}.")
    with rawpy.imread(os.fspath(raw_path)) as raw:
        if raw.raw_image.shape != sensor.shape:
            raise ValueError(
                f"Expected `sensor` of the raw file's shape {raw.raw_image.shape}. Got {sensor.shape}."
            )
        raw.raw_image[...] = sensor
        return raw.postprocess(use_camera_wb=True, output_bps=bits)
