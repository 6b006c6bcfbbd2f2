"""Output writers of prediction: a denoised mosaic to a DNG, a 16-bit TIFF or an 8-bit PNG.

The DNG holds the denoised mosaic in the input's full sensor frame with its CFA, levels, colour
tags and EXIF (:func:`isp.raw.levels.denormalize`, :func:`isp.raw.write_dng`); TIFF and PNG hold
LibRaw's sRGB rendering of it (:func:`isp.raw.render.render_srgb`). Every output is written
atomically (:func:`isp.predict.files.atomic_output`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from isp.predict.files import FORMATS, Format, OutputExistsError, atomic_output
from isp.raw.levels import denormalize
from isp.raw.render import render_srgb

if TYPE_CHECKING:
    from collections.abc import Sequence

    from isp.raw import RawFrame

__all__ = ["write_denoised_dng", "write_output"]


def write_denoised_dng(path: str | os.PathLike, frame: RawFrame, sensor: np.ndarray) -> None:
    """Write ``sensor`` as a DNG with ``frame``'s CFA, levels, active area and metadata.

    Args:
        path: the file to write (replaced if it exists: pass a temporary name).
        frame: the input frame whose metadata is carried over.
        sensor: ``uint16 (Hs, Ws)`` from :func:`isp.raw.levels.denormalize`.
    """
    from isp.raw import write_dng

    write_dng(
        path,
        sensor,
        cfa=frame.cfa,
        black_level=frame.black_level,
        white_level=frame.white_level,
        active_area=frame.active_area,
        metadata=frame.metadata,
        overwrite=True,
    )


def write_output(
    final: str | os.PathLike,
    frame: RawFrame,
    mosaic: np.ndarray,
    fmt: Format = "dng",
    *,
    overwrite: bool = False,
    protected: Sequence[str | os.PathLike] = (),
) -> Path:
    """Write a denoised mosaic of ``frame`` to ``final`` as DNG, 16-bit TIFF or 8-bit PNG.

    ``dng``: the denoised mosaic in the input's full sensor frame with its metadata (see
    :func:`isp.raw.levels.denormalize`, :func:`write_denoised_dng`). ``tiff``/``png``: an sRGB
    rendering by LibRaw (:func:`isp.raw.render.render_srgb`; the input file must still exist).
    Written atomically through :func:`atomic_output`.

    Args:
        final: output path.
        frame: the input frame (``frame.path`` is needed for ``tiff``/``png``).
        mosaic: ``float (H, W)`` the denoised visible mosaic.
        fmt: ``"dng"``, ``"tiff"`` or ``"png"``.
        overwrite: replace an existing ``final``.
        protected: paths never to replace (the inputs).

    Returns:
        ``final`` as a :class:`~pathlib.Path`.
    """
    if fmt not in FORMATS:
        raise ValueError(f"Expected `fmt` to be one of {sorted(FORMATS)}. Got {fmt!r}.")
    final = Path(final)
    try:
        with atomic_output(final, overwrite=overwrite, protected=protected) as tmp:
            _write(tmp, frame, mosaic, fmt)
    except OutputExistsError:
        raise
    except OSError as err:  # disk full, file too large, I/O error: say which output and why
        message = f"cannot write the output {str(final)!r}: {err.strerror or err}"
        raise (OSError(err.errno, message) if err.errno else OSError(message)) from err
    return final


def _write(tmp: Path, frame: RawFrame, mosaic: np.ndarray, fmt: Format) -> None:
    """Write the output of ``frame`` in format ``fmt`` to the temporary ``tmp``."""
    sensor = denormalize(frame, mosaic)
    if fmt == "dng":
        write_denoised_dng(tmp, frame, sensor)
    else:
        if frame.path is None:
            raise ValueError("Expected `frame.path` to name the input raw file for an sRGB rendering.")
        rgb = render_srgb(frame.path, sensor, bits=16 if fmt == "tiff" else 8)
        del sensor
        if fmt == "tiff":
            import tifffile

            tifffile.imwrite(tmp, rgb, photometric="rgb")
        else:
            from PIL import Image

            Image.fromarray(rgb).save(tmp, format="PNG")
