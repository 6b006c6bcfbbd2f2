"""Denoising one frame: the frame as the network should see it, its inputs, the tiled forward pass.

:func:`denoise_frame` is the one way a frame is denoised: ``predict.py``, ``train.py predict``
(:meth:`isp.lit.DenoiseModule.predict_step`) and Python callers use it. It builds the whole frame's
inputs through the contract of :mod:`isp.data.inputs` (the version the network was trained with,
:func:`inputs_version`), runs the network tile by tile (:func:`isp.predict.tiling.tiled_forward`)
and returns the denoised mosaic of every visible pixel.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

from isp.data.inputs import EXPOSURE_RANGE, ISO_RANGE, VECTOR_SCALE, model_inputs, model_inputs_v1
from isp.predict.ensemble import ENSEMBLES, ensemble_forward
from isp.predict.tiling import size_multiple, tiled_forward

if TYPE_CHECKING:
    from isp.raw import RawFrame

__all__ = [
    "OVERLAP",
    "TILE",
    "denoise_file",
    "denoise_frame",
    "for_network",
    "frame_inputs",
    "inputs_version",
]

TILE = 512
"""Default tile size in packed pixels (``predict.py --tile 1024`` mosaic pixels)."""
OVERLAP = 96
"""Default overlap of neighbouring tiles in packed pixels (``predict.py --overlap 192``): the
shipped model's tiled output is within 4e-5 of the untiled one at this overlap, 3e-4 at 64
(``tests/weights/test_default_model.py``); the cost is 16% more tile area."""


def for_network(frame: RawFrame) -> tuple[RawFrame, list[str]]:
    """The frame as the network should see it: EXIF values outside the plausible range left out.

    An ISO outside :data:`ISO_RANGE` or an exposure time outside :data:`EXPOSURE_RANGE` cannot be
    what the camera did; the network is given the value as unknown (as for a file that does not
    record it), which never makes its output worse than the input, where clamping to the nearest
    bound can (an ISO-200 frame labelled ISO 10^7 and clamped came out 7 dB worse than it went in).
    The frame's own metadata (written to the output) is not changed.

    Returns:
        ``(frame, notes)``: ``frame`` itself when everything is plausible, else a shallow copy
        with adjusted metadata; one sentence per value left out.
    """
    notes = []
    changes = {}
    for name, label, (lo, hi), unit in (
        ("iso", "ISO", ISO_RANGE, ""),
        ("exposure_time", "exposure time", EXPOSURE_RANGE, " s"),
    ):
        value = getattr(frame.metadata, name)
        if value is not None and not lo <= value <= hi:
            changes[name] = None
            notes.append(
                f"its EXIF {label} {value:g}{unit} is outside the plausible range [{lo:g}, {hi:g}]{unit}; "
                "the network is told it is unknown"
            )
    if not changes:
        return frame, notes
    out = copy.copy(frame)
    out.metadata = copy.copy(frame.metadata)
    for name, value in changes.items():
        setattr(out.metadata, name, value)
    return out, notes


def inputs_version(net: torch.nn.Module, data: dict | None = None) -> int:
    """Which model-input contract ``net`` was trained with (:data:`isp.data.inputs.INPUTS_VERSION`).

    ``data["inputs_version"]`` when the weights record it; 2 when they were trained on
    ``source: scenes`` (whose datasets compute :func:`isp.data.inputs.model_inputs`); otherwise
    read from the network's side channels: ``(7, 5, 8)`` is contract 2, anything else 1.
    """
    data = data or {}
    version = data.get("inputs_version")
    if version is not None:
        return int(version)
    if data.get("source") == "scenes":
        return 2
    return 2 if tuple(getattr(net, "side_channels", ())) == (7, 5, 8) else 1


def frame_inputs(
    frame: RawFrame, *, vector_scale: float | None = None, gain: float = 1.0, version: int = 1
) -> dict[str, torch.Tensor]:
    """The network's inputs for a whole frame: the contract of :mod:`isp.data.inputs`, batched.

    ``version=2``: :func:`isp.data.inputs.model_inputs` (measured noise, whole-row banding
    estimate; the contract of the models trained on ``source: scenes``). ``version=1``:
    :func:`isp.data.inputs.model_inputs_v1` of the packed frame and its noise vectors (the
    contract of :class:`isp.data.RawPairDataset`).

    Args:
        frame: a decoded :class:`isp.raw.RawFrame`.
        vector_scale: the factor the noise vectors were scaled by in training (default:
            :data:`isp.data.inputs.VECTOR_SCALE`).
        gain: digital amplification of the input (1 for ordinary photos).
        version: the input contract (see :func:`inputs_version`).

    Returns:
        ``image (1, 4, h, w)``, ``row (1, C2, h)``, ``col (1, 5, w)``, ``scalar (1, C4)`` float32
        tensors, plus ``info``: the :class:`isp.raw.PackInfo` that :func:`isp.raw.unpack` needs.
    """
    from isp.raw import noise_vectors, pack

    scale = VECTOR_SCALE if vector_scale is None else vector_scale
    if version == 2:
        x = model_inputs(frame, gain=gain, vector_scale=scale)
        arrays, info = {k: getattr(x, k) for k in ("image", "row", "col", "scalar")}, x.info
    elif version == 1:
        planes, info = pack(frame)
        row, col = noise_vectors(frame)
        arrays = model_inputs_v1(planes, row, col, frame.metadata, gain=gain, vector_scale=scale)
    else:
        raise ValueError(f"Expected an input contract version 1 or 2. Got {version!r}.")
    out: dict = {k: torch.from_numpy(v)[None] for k, v in arrays.items()}
    out["info"] = info
    return out


def denoise_frame(
    net: torch.nn.Module,
    frame: RawFrame,
    *,
    data: dict | None = None,
    gain: float = 1.0,
    tile: int = TILE,
    overlap: int = OVERLAP,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
    governor: Callable[[], int] | None = None,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = True,
    ensemble: int = 2,
) -> np.ndarray:
    """Denoise a whole frame tile by tile and return its denoised mosaic.

    Args:
        net: the denoiser, already on ``device`` (its parameters in any memory format) and in eval
            mode.
        frame: the input frame (see :func:`for_network` for implausible EXIF values).
        data: the data settings the net was trained with (``vector_scale``, ``inputs_version``).
        gain: digital amplification of the input (SID's exposure ratio); the output is divided
            by it again, back to the input's units.
        tile: tile size in packed pixels (a mosaic tile of ``2 * tile``).
        overlap: overlap of neighbouring tiles in packed pixels.
        device: where the net runs.
        progress: ``progress(done, total)`` after each tile.
        workers: CPU tiles run at once, one intra-op thread each (see
            :func:`isp.predict.tiling.tiled_forward`).
        governor: with one worker, asked before each CPU tile for torch's thread count
            (:class:`isp.predict.cores.CoreGovernor`; see :func:`isp.predict.tiling.tiled_forward`).
        autocast_dtype: run the net under ``torch.autocast(device.type, autocast_dtype)``
            (``torch.bfloat16`` / ``torch.float16``); ``None``: in the net's own dtype. The
            tiles are blended in float32 either way.
        channels_last: give the net its tiles in ``torch.channels_last`` memory format (default:
            oneDNN convolves NHWC without reordering; ``python benchmarks/inference.py --modes
            1t,auto``: a 24-MP DNG by default in 25.7 s against 31.0 s before this default; the
            values differ by float rounding, 5e-7).
        ensemble: 2 (default, as ``predict.py``): the network's prediction averaged with its
            prediction on the frame turned by 180 degrees (:mod:`isp.predict.ensemble`: +0.11 dB
            on the development set, twice the network's time); 1: the prediction alone.

    Returns:
        ``float32 (H, W)``: the denoised visible mosaic in the input's units (``frame.mosaic``'s
        shape and CFA phase). Every pixel is denoised: where packing would crop a row or column to
        reach the RGGB phase or an even size, the frame is mirrored by one instead
        (:func:`isp.raw.pad_to_rggb`).
    """
    from isp.raw import pad_to_rggb, unpack

    if ensemble not in ENSEMBLES:
        raise ValueError(f"Expected `ensemble` to be one of {ENSEMBLES}. Got {ensemble!r}.")
    data = data or {}
    vector_scale = data.get("vector_scale")
    height, width = frame.visible_shape
    frame, (top, left, _, _) = pad_to_rggb(frame)
    inputs = frame_inputs(
        frame,
        vector_scale=None if vector_scale is None else float(vector_scale),
        gain=gain,
        version=inputs_version(net, data),
    )
    device = torch.device(device)

    def one_view(image: torch.Tensor, *side: torch.Tensor | None) -> torch.Tensor:
        if channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            return net(image, *side)

    align = size_multiple(net)

    def run(image: torch.Tensor, *side: torch.Tensor) -> torch.Tensor:
        return ensemble_forward(one_view, image, *side, views=ensemble, align=align)

    with torch.inference_mode():
        planes = tiled_forward(
            run,
            inputs["image"],
            inputs["row"],
            inputs["col"],
            inputs["scalar"],
            tile=tile,
            overlap=overlap,
            align=align,
            device=device,
            progress=progress,
            workers=workers,
            governor=governor,
        )
    del inputs["image"]
    planes = planes[0].numpy()
    if gain != 1.0:
        planes = planes / np.float32(gain)
    mosaic = unpack(planes, inputs["info"])[top : top + height, left : left + width]
    return np.ascontiguousarray(mosaic, dtype=np.float32)


def denoise_file(
    net: torch.nn.Module,
    path: str | os.PathLike,
    *,
    data: dict | None = None,
    gain: float = 1.0,
    tile: int = TILE,
    overlap: int = OVERLAP,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
    governor: Callable[[], int] | None = None,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = True,
    ensemble: int = 2,
) -> tuple[RawFrame, np.ndarray]:
    """Read a raw file and denoise it: :func:`isp.raw.read`, :func:`for_network`, :func:`denoise_frame`.

    Each EXIF value that :func:`for_network` leaves out is reported as a ``RuntimeWarning`` naming
    the file. Arguments after ``path`` are :func:`denoise_frame`'s.

    Returns:
        ``(frame, mosaic)``: the file's frame with its own metadata (what an output carries) and
        the denoised ``float32 (H, W)`` visible mosaic.
    """
    from isp.raw import read

    source = read(path)
    frame, notes = for_network(source)
    for note in notes:
        warnings.warn(f"{str(path)!r}: {note}", RuntimeWarning, stacklevel=2)
    mosaic = denoise_frame(
        net,
        frame,
        data=data,
        gain=gain,
        tile=tile,
        overlap=overlap,
        device=device,
        progress=progress,
        workers=workers,
        governor=governor,
        autocast_dtype=autocast_dtype,
        channels_last=channels_last,
        ensemble=ensemble,
    )
    return source, mosaic
