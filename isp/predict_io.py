"""Files in and out of prediction: input discovery, output naming, atomic no-clobber writing.

- :func:`discover_inputs` expands files and folders (recursively, raw extensions only) into a
  sorted, de-duplicated list of files; a missing input is reported, not fatal.
- :func:`output_path` names an output ``DIR/<input stem>.<ext>``.
- :func:`atomic_output` gives a writer a temporary name beside the final file and renames it
  into place only once the writer returned, so an interrupted run never leaves a half file
  under the final name; it refuses to replace an existing file without ``overwrite=True`` and
  never replaces one of the inputs.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from isp.data.inputs import EXPOSURE_RANGE, ISO_RANGE
from isp.raw.read import RAW_EXTENSIONS

if TYPE_CHECKING:
    from isp.raw import RawFrame

__all__ = [
    "FORMATS",
    "RAW_EXTENSIONS",
    "OutputExistsError",
    "EXPOSURE_RANGE",
    "ISO_RANGE",
    "TEMP_MARK",
    "atomic_output",
    "check_finite_output",
    "for_network",
    "remove_stale_temporaries",
    "denoise_frame",
    "denoised_sensor",
    "discover_inputs",
    "frame_inputs",
    "inputs_version",
    "output_path",
    "render_srgb",
    "write_denoised_dng",
    "write_output",
]

# ISO_RANGE, EXPOSURE_RANGE (isp.data.inputs): the values a camera can record (the Nikon D5/D6
# "Hi 5" is ISO 3,276,800); outside them the network is told the value is unknown (for_network).

#: Marks the temporary files of prediction: ``.<output name>.isp-<pid>-<random>.tmp``.
TEMP_MARK = ".isp-"
_TEMP_RE = re.compile(r"^\..+\.isp-(\d+)-[^/]*\.tmp$")

#: Output formats and their file extensions.
FORMATS = {"dng": ".dng", "tiff": ".tiff", "png": ".png"}


class OutputExistsError(FileExistsError):
    """The output file exists and may not be replaced (no ``overwrite``, or it is an input)."""


def discover_inputs(inputs: Iterable[str | os.PathLike]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Expand files and folders into the list of raw files to process.

    A file given by name is taken whatever its extension (reading it says whether it is a raw
    file); a folder is searched recursively for files with a :data:`RAW_EXTENSIONS` extension
    (any case; hidden files and folders skipped). The result is sorted within each input and
    de-duplicated across inputs by resolved path. Nothing is skipped silently: a subfolder that
    cannot be read, a symbolic link loop and a broken link with a raw extension are reported.

    Args:
        inputs: paths of files and folders.

    Returns:
        ``(files, missing)``: the files, and ``(path, reason)`` for each input that is neither a
        file nor a folder and for each part of a folder that could not be searched.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> for name in ["b.NEF", "a.dng", "notes.txt", "sub/c.ARW"]:
        ...     (d / name).parent.mkdir(exist_ok=True); _ = (d / name).write_bytes(b"")
        >>> files, missing = discover_inputs([d, d / "gone.dng"])
        >>> [f.relative_to(d).as_posix() for f in files], [m[1] for m in missing]
        (['a.dng', 'b.NEF', 'sub/c.ARW'], ['no such file or folder'])
    """
    files: list[Path] = []
    missing: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found, problems = _walk(path)
            missing.extend(problems)
        elif path.is_file():
            found = [path]
        else:
            missing.append((path, _why_missing(path)))
            continue
        for p in found:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                files.append(p)
    return files, missing


def _why_missing(path: Path) -> str:
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "a symbolic link loop (it never reaches a file)"
        if err.errno == errno.ENOENT:
            return "a broken symbolic link" if path.is_symlink() else "no such file or folder"
        return f"cannot be read: {err.strerror}"
    return "neither a file nor a folder"


def _walk(top: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Raw files under ``top`` (sorted) and ``(path, reason)`` for what could not be searched.

    Symbolic links to folders are followed once: a link back into a folder already searched is
    reported as a loop. Hidden files and folders are skipped.
    """
    found: list[Path] = []
    problems: list[tuple[Path, str]] = []
    visited: set[tuple[int, int]] = set()
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            st = folder.stat()
        except OSError as err:
            problems.append(
                (
                    folder,
                    _why_missing(folder) if err.errno == errno.ELOOP else f"cannot be read: {err.strerror}",
                )
            )
            continue
        if (st.st_dev, st.st_ino) in visited:
            problems.append((folder, "a symbolic link loop: it leads back to a folder already searched"))
            continue
        visited.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as err:
            problems.append((folder, f"folder cannot be read: {err.strerror}; its files were not searched"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            p = Path(entry.path)
            try:
                is_dir = entry.is_dir()
                is_file = not is_dir and entry.is_file()
            except OSError:
                problems.append((p, _why_missing(p)))
                continue
            if is_dir:
                stack.append(p)
            elif is_file:
                if p.suffix.lower() in RAW_EXTENSIONS:
                    found.append(p)
            elif entry.is_symlink() and p.suffix.lower() in RAW_EXTENSIONS or _is_loop(p):
                problems.append((p, _why_missing(p)))
    return sorted(found), problems


def _is_loop(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError as err:
        return err.errno == errno.ELOOP
    return False


def output_path(input_path: str | os.PathLike, out_dir: str | os.PathLike, fmt: str) -> Path:
    """The output file of ``input_path``: ``out_dir/<stem>.<ext of fmt>``.

    Example:
        >>> output_path("shots/IMG_0001.CR2", "out", "dng").as_posix()
        'out/IMG_0001.dng'
    """
    if fmt not in FORMATS:
        raise ValueError(f"Expected `fmt` to be one of {sorted(FORMATS)}. Got {fmt!r}.")
    return Path(out_dir) / (Path(input_path).stem + FORMATS[fmt])


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


@contextlib.contextmanager
def atomic_output(
    final: str | os.PathLike,
    *,
    overwrite: bool = False,
    protected: Sequence[str | os.PathLike] = (),
) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` when the block succeeds.

    The temporary file (``.<name>.isp-<pid>-<random>.tmp`` in the same folder, so the rename is
    atomic; :func:`remove_stale_temporaries` knows the name) is created empty; the block writes
    it. If the block raises (including ``KeyboardInterrupt``), the temporary file is removed and
    ``final`` is untouched. Without ``overwrite`` the rename is
    a hard link, which fails rather than replace a file that appeared meanwhile.

    Args:
        final: the output path.
        overwrite: replace an existing ``final``.
        protected: paths that must never be replaced, ``overwrite`` or not (the inputs).

    Raises:
        OutputExistsError: ``final`` exists and ``overwrite`` is false, or ``final`` is one of
            ``protected``.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
        >>> with atomic_output(out) as tmp:
        ...     _ = tmp.write_text("done")
        >>> out.read_text(), sorted(p.name for p in out.parent.iterdir())
        ('done', ['a.txt'])
    """
    final = Path(final)
    for p in protected:
        if _same_file(final, Path(p)):
            raise OutputExistsError(f"Refusing to write {str(final)!r}: it is one of the input files.")
    if final.exists() and not overwrite:
        raise OutputExistsError(f"Output {str(final)!r} exists; pass --overwrite to replace it.")
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{final.name}{TEMP_MARK}{os.getpid()}-", suffix=".tmp", dir=final.parent
    )
    os.close(fd)
    tmp = Path(name)
    umask = os.umask(0o022)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it 0600; give the output the usual permissions
    try:
        yield tmp
        if overwrite:
            os.replace(tmp, final)
        else:
            try:
                os.link(tmp, final)
            except FileExistsError:
                raise OutputExistsError(
                    f"Output {str(final)!r} appeared while it was written; pass --overwrite to replace it."
                ) from None
            except OSError:  # no hard links on this file system: check, then rename
                if final.exists():
                    raise OutputExistsError(f"Output {str(final)!r} exists; pass --overwrite.") from None
                os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove what killed runs left in ``folder``: temporaries of :func:`atomic_output`'s naming.

    Only files named ``.<name>.isp-<pid>-<random>.tmp`` (and the writers' own temporaries beside
    them, which carry the same mark) whose process ``pid`` is no longer running are removed: a run
    writing into the same folder at the same time keeps its files. Nothing else is touched.

    Returns:
        The files removed.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_RE.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and _running(pid):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


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


# -- outputs from a denoised frame -----------------------------------------------------------------


def denoised_sensor(frame: RawFrame, mosaic: np.ndarray, *, chunk_rows: int = 512) -> np.ndarray:
    """The input's whole sensor image with its visible area replaced by a denoised mosaic.

    The mosaic (0 = black, 1 = white level) goes back to DN per CFA position,
    ``mosaic * (white - black) + black``, rounded and clipped to ``[0, 65535]``; the masked
    margins keep the input's values. Works in row chunks so a 24-megapixel frame needs no
    full-size float64 temporaries.

    Args:
        frame: the input :class:`isp.raw.RawFrame`.
        mosaic: ``float (H, W)`` denoised visible mosaic (``frame.mosaic``'s shape).
        chunk_rows: rows converted at a time (even).

    Returns:
        ``uint16 (Hs, Ws)``, ``frame.sensor``'s shape.

    Example:
        >>> import numpy as np
        >>> from isp.raw import RawFrame
        >>> f = RawFrame(None, np.zeros((2, 4), np.float32), "RGGB", np.array([[60, 64], [64, 68]]),
        ...              1000.0, np.full((3, 4), 7, np.uint16), (1, 0, 3, 4))
        >>> denoised_sensor(f, np.full((2, 4), 0.5, np.float32)).tolist()
        [[7, 7, 7, 7], [530, 532, 530, 532], [532, 534, 532, 534]]
    """
    top, left, bottom, right = frame.active_area
    if mosaic.shape != (bottom - top, right - left):
        raise ValueError(
            f"Expected `mosaic` of the visible shape {(bottom - top, right - left)}. Got {mosaic.shape}."
        )
    check_finite_output(mosaic)
    black = np.asarray(frame.black_level, dtype=np.float32).reshape(2, 2)
    scale = np.float32(frame.white_level) - black
    sensor = frame.sensor.copy()
    width = right - left
    black_rows = np.tile(black, (1, (width + 1) // 2))[:, :width]
    scale_rows = np.tile(scale, (1, (width + 1) // 2))[:, :width]
    chunk_rows += chunk_rows % 2
    for y0 in range(0, mosaic.shape[0], chunk_rows):
        y1 = min(y0 + chunk_rows, mosaic.shape[0])
        reps = (y1 - y0 + 1) // 2
        b = np.tile(black_rows, (reps, 1))[: y1 - y0]
        s = np.tile(scale_rows, (reps, 1))[: y1 - y0]
        dn = np.rint(mosaic[y0:y1].astype(np.float32) * s + b)
        sensor[top + y0 : top + y1, left:right] = np.clip(dn, 0, 65535).astype(np.uint16)
    return sensor


def check_finite_output(mosaic: np.ndarray) -> None:
    """Raise ``ValueError`` unless every value of a denoised mosaic is finite.

    A NaN or infinity would be written as 0 or 65535 DN: nothing is written from such an output.

    Example:
        >>> try:
        ...     check_finite_output(np.array([[0.0, np.nan]], np.float32))
        ... except ValueError as err:
        ...     print(str(err)[:70])
        Expected a finite denoised mosaic: the network output holds 1 non-fini
    """
    finite = np.isfinite(mosaic)
    if not finite.all():
        bad = int(finite.size - np.count_nonzero(finite))
        raise ValueError(
            f"Expected a finite denoised mosaic: the network output holds {bad} non-finite value(s) "
            f"(NaN or infinity) of {finite.size}; nothing was written."
        )


def write_denoised_dng(path: str | os.PathLike, frame: RawFrame, sensor: np.ndarray) -> None:
    """Write ``sensor`` as a DNG with ``frame``'s CFA, levels, active area and metadata.

    Args:
        path: the file to write (replaced if it exists: pass a temporary name).
        frame: the input frame whose metadata is carried over.
        sensor: ``uint16 (Hs, Ws)`` from :func:`denoised_sensor`.
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


def write_output(
    final: str | os.PathLike,
    frame: RawFrame,
    mosaic: np.ndarray,
    fmt: str = "dng",
    *,
    overwrite: bool = False,
    protected: Sequence[str | os.PathLike] = (),
) -> Path:
    """Write a denoised mosaic of ``frame`` to ``final`` as DNG, 16-bit TIFF or 8-bit PNG.

    ``dng``: the denoised mosaic in the input's full sensor frame with its metadata (see
    :func:`denoised_sensor`, :func:`write_denoised_dng`). ``tiff``/``png``: an sRGB rendering by
    LibRaw (:func:`render_srgb`; the input file must still exist). Written atomically through
    :func:`atomic_output`.

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


def _write(tmp: Path, frame: RawFrame, mosaic: np.ndarray, fmt: str) -> None:
    """Write the output of ``frame`` in format ``fmt`` to the temporary ``tmp``."""
    sensor = denoised_sensor(frame, mosaic)
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


# -- one frame through the network ------------------------------------------------------------------


def inputs_version(net: torch.nn.Module, data: dict | None = None) -> int:
    """Which model-input contract ``net`` was trained with (:data:`isp.data.inputs.INPUTS_VERSION`).

    ``data["inputs_version"]`` when the weights record it; otherwise read from the network's side
    channels: ``(7, 5, 8)`` is contract 2 (:func:`isp.data.inputs.model_inputs`), anything else 1.
    """
    version = (data or {}).get("inputs_version")
    if version is not None:
        return int(version)
    return 2 if tuple(getattr(net, "side_channels", ())) == (7, 5, 8) else 1


def frame_inputs(
    frame: RawFrame, *, vector_scale: float | None = None, gain: float = 1.0, version: int = 1
) -> dict[str, torch.Tensor]:
    """The network's inputs for a whole frame, built as the training data builds them.

    ``version=2``: :func:`isp.data.inputs.model_inputs` (measured noise, whole-row banding
    estimate; the contract of the models trained on ``source: scenes``). ``version=1``: the
    packed planes times ``gain``; channels 0-3 of the row/column noise vectors (offsets and
    spreads) times ``gain * vector_scale``, the validity channel 4 as 0/1; the scalars of
    :func:`isp.data.scalars.scalars` (the contract of :class:`isp.data.RawPairDataset`).

    Args:
        frame: a decoded :class:`isp.raw.RawFrame`.
        vector_scale: the factor the noise vectors were scaled by in training (default:
            ``isp.data.dataset.VECTOR_SCALE``).
        gain: digital amplification of the input (1 for ordinary photos).
        version: the input contract (see :func:`inputs_version`).

    Returns:
        ``image (1, 4, h, w)``, ``row (1, C2, h)``, ``col (1, 5, w)``, ``scalar (1, C4)`` float32
        tensors, plus ``info``: the :class:`isp.raw.PackInfo` that :func:`isp.raw.unpack` needs.
    """
    from isp.data.dataset import VECTOR_SCALE

    if version == 2:
        from isp.data.inputs import model_inputs

        scale = VECTOR_SCALE if vector_scale is None else vector_scale
        x = model_inputs(frame, gain=gain, vector_scale=scale)
        out = {k: torch.from_numpy(getattr(x, k))[None] for k in ("image", "row", "col", "scalar")}
        out["info"] = x.info
        return out
    if version != 1:
        raise ValueError(f"Expected an input contract version 1 or 2. Got {version!r}.")
    from isp.data.scalars import scalars
    from isp.raw import noise_vectors, pack

    scale = np.float32(gain * (VECTOR_SCALE if vector_scale is None else vector_scale))
    planes, info = pack(frame)
    row, col = noise_vectors(frame)
    row = np.array(row, dtype=np.float32)
    col = np.array(col, dtype=np.float32)
    row[:4] *= scale
    col[:4] *= scale
    planes = np.ascontiguousarray(planes, dtype=np.float32)
    if gain != 1.0:
        planes *= np.float32(gain)
    return {
        "image": torch.from_numpy(planes)[None],
        "row": torch.from_numpy(row)[None],
        "col": torch.from_numpy(col)[None],
        "scalar": torch.from_numpy(scalars(frame.metadata, gain=gain))[None],
        "info": info,
    }


def denoise_frame(
    net: torch.nn.Module,
    frame: RawFrame,
    *,
    data: dict | None = None,
    tile: int = 256,
    overlap: int = 16,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> np.ndarray:
    """Denoise a whole frame tile by tile and return its denoised mosaic.

    Args:
        net: the denoiser, already on ``device`` (and in ``channels_last`` when asked) and in eval
            mode.
        frame: the input frame.
        data: the data settings the net was trained with (``vector_scale``).
        tile: tile size in packed pixels (a mosaic tile of ``2 * tile``).
        overlap: overlap of neighbouring tiles in packed pixels.
        device: where the net runs.
        progress: ``progress(done, total)`` after each tile.
        workers: CPU tiles run at once, one intra-op thread each (see
            :func:`isp.inference.tiled_forward`).
        autocast_dtype: run the net under ``torch.autocast(device.type, autocast_dtype)``
            (``torch.bfloat16`` / ``torch.float16``); ``None``: in the net's own dtype. The
            tiles are blended in float32 either way.
        channels_last: give the net its tiles in ``torch.channels_last`` memory format.

    Returns:
        ``float32 (H, W)``: the denoised visible mosaic in the input's units (``frame.mosaic``'s
        shape and CFA phase; the rows/columns that packing crops keep their input values).
    """
    from isp.inference import size_multiple, tiled_forward
    from isp.raw import unpack

    data = data or {}
    vector_scale = data.get("vector_scale")
    inputs = frame_inputs(
        frame,
        vector_scale=None if vector_scale is None else float(vector_scale),
        version=inputs_version(net, data),
    )
    device = torch.device(device)

    def run(image: torch.Tensor, *side: torch.Tensor) -> torch.Tensor:
        if channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            return net(image, *side)

    with torch.inference_mode():
        planes = tiled_forward(
            run,
            inputs["image"],
            inputs["row"],
            inputs["col"],
            inputs["scalar"],
            tile=tile,
            overlap=overlap,
            align=size_multiple(net),
            device=device,
            progress=progress,
            workers=workers,
        )
    del inputs["image"]
    return unpack(planes[0].numpy(), inputs["info"]).astype(np.float32, copy=False)
