"""Decode cache: every raw file is decoded by LibRaw once, then read back as memory-mapped ``.npy``.

Decoding a raw file (rawpy / LibRaw) costs far more than a training step needs from it (the SID
authors point this out), so :class:`DecodeCache` keeps, per file, under
``cache_dir/<key>/``::

    planes.npy   float32 (4, H/2, W/2)  isp.raw.pack(frame): R, Gr, Gb, B
    row.npy      float32 (5, H/2)       isp.raw.noise_vectors(frame), mosaic units, unscaled
    col.npy      float32 (5, W/2)
    meta.json    path, CFA, shape, levels and the RawMetadata fields (ISO, exposure, WB, ...)

and, for clean frames that get synthetic noise (which needs the whole sensor with its masked
margins), a second entry ``cache_dir/<key>-frame/`` with every field of the
:class:`isp.raw.RawFrame` (``sensor.npy``, ``mosaic.npy``, ``ob_<side>.npy``, ``frame.json``).

The key hashes the absolute path, the modification time and the size of the file (and the
cache format version), so an edited file is decoded again. Each entry is written into a
temporary folder and renamed into place: parallel DataLoader workers (or DDP ranks) that decode
the same file at once each write their own folder and one rename wins; a reader sees a complete
entry or none. Keys are computed once (when a Dataset is built), so later epochs touch neither
LibRaw nor the source file: it may even be gone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from isp.raw import OpticalBlack, RawFrame, RawMetadata, noise_vectors, pack, read

__all__ = ["CACHE_VERSION", "CachedRaw", "DecodeCache", "MissingDataError"]

CACHE_VERSION = 1
"""Bumped whenever the layout of an entry changes (old entries are then ignored)."""

_OB_SIDES = ("left", "right", "top", "bottom")


class MissingDataError(ValueError, FileNotFoundError):
    """A data root, manifest, list file or raw file that a dataset needs does not exist.

    Both a :class:`ValueError` (bad configuration) and a :class:`FileNotFoundError`.
    """


@dataclass(frozen=True)
class CachedRaw:
    """One decoded raw file as read back from the cache (arrays are read-only memory maps).

    Attributes:
        path: the source file.
        planes: ``float32 (4, H/2, W/2)`` packed R, Gr, Gb, B planes.
        row: ``float32 (5, H/2)`` row noise vectors (mosaic units, as ``isp.raw.noise_vectors``).
        col: ``float32 (5, W/2)`` column noise vectors.
        metadata: the file's :class:`isp.raw.RawMetadata`.
    """

    path: str
    planes: np.ndarray
    row: np.ndarray
    col: np.ndarray
    metadata: RawMetadata


def _to_json(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist()}
    if isinstance(value, dt.datetime):
        return {"__datetime__": value.isoformat()}
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict) and "__ndarray__" in value:
        return np.asarray(value["__ndarray__"], dtype=np.float64)
    if isinstance(value, dict) and "__datetime__" in value:
        return dt.datetime.fromisoformat(value["__datetime__"])
    return value


def _metadata_to_json(metadata: RawMetadata) -> dict:
    return {f.name: _to_json(getattr(metadata, f.name)) for f in dataclasses.fields(metadata)}


def _metadata_from_json(data: dict) -> RawMetadata:
    names = {f.name for f in dataclasses.fields(RawMetadata)}
    return RawMetadata(**{k: _from_json(v) for k, v in data.items() if k in names})


class DecodeCache:
    """A folder of decoded raw files; see the module docstring for the layout.

    Args:
        root: the cache folder (created when first written).

    Attributes:
        decodes: how many raw files this object (in this process) has decoded with LibRaw.

    Example:
        >>> import tempfile
        >>> DecodeCache(tempfile.mkdtemp()).decodes
        0
    """

    MAX_OPEN = 128
    """Opened entries kept per process (each holds three memory maps, and a file descriptor each)."""

    def __init__(self, root: str | os.PathLike) -> None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"Expected `cache_dir` to be a path. Got {type(root).__name__}.")
        self.root = Path(root)
        self.decodes = 0
        self._opened: dict[str, CachedRaw] = {}

    def __getstate__(self) -> dict:
        # memory maps stay in the process that opened them (DataLoader workers reopen their own)
        return {**self.__dict__, "_opened": {}}

    def __repr__(self) -> str:
        return f"DecodeCache({str(self.root)!r})"

    # keys -------------------------------------------------------------------------------------
    @staticmethod
    def key(path: str | os.PathLike) -> str:
        """The cache key of ``path``: a hash of its absolute path, mtime, size and the format version.

        Raises:
            MissingDataError: when ``path`` does not exist.
        """
        path = os.path.abspath(os.fspath(path))
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise MissingDataError(f"Raw file {path!r} does not exist.") from None
        text = f"v{CACHE_VERSION}\0{path}\0{st.st_mtime_ns}\0{st.st_size}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def _dir(self, key: str, frame: bool = False) -> Path:
        return self.root / (f"{key}-frame" if frame else key)

    def has(self, key: str, *, frame: bool = False) -> bool:
        """Whether the entry ``key`` (or its full-frame entry) is complete in the cache."""
        return (self._dir(key, frame) / ("frame.json" if frame else "meta.json")).is_file()

    # writing ----------------------------------------------------------------------------------
    def _commit(self, tmp: Path, final: Path) -> None:
        try:
            os.rename(tmp, final)
        except OSError as err:  # another process wrote the same entry first: keep theirs
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not final.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            shutil.rmtree(tmp, ignore_errors=True)

    def _tmpdir(self, key: str) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        return tmp

    def _write_planes(self, key: str, frame: RawFrame, path: str) -> None:
        planes, _ = pack(frame)
        row, col = noise_vectors(frame)
        tmp = self._tmpdir(key)
        try:
            np.save(tmp / "planes.npy", np.ascontiguousarray(planes, dtype=np.float32))
            np.save(tmp / "row.npy", np.ascontiguousarray(row, dtype=np.float32))
            np.save(tmp / "col.npy", np.ascontiguousarray(col, dtype=np.float32))
            meta = {
                "version": CACHE_VERSION,
                "path": path,
                "cfa": frame.cfa,
                "shape": list(frame.visible_shape),
                "metadata": _metadata_to_json(frame.metadata),
            }
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._commit(tmp, self._dir(key))

    def _write_frame(self, key: str, frame: RawFrame, path: str) -> None:
        tmp = self._tmpdir(key)
        try:
            np.save(tmp / "sensor.npy", np.ascontiguousarray(frame.sensor))
            np.save(tmp / "mosaic.npy", np.ascontiguousarray(frame.mosaic, dtype=np.float32))
            for side in _OB_SIDES:
                value = getattr(frame.optical_black, side)
                if value is not None:
                    np.save(tmp / f"ob_{side}.npy", np.ascontiguousarray(value, dtype=np.float32))
            info = {
                "version": CACHE_VERSION,
                "path": path,
                "cfa": frame.cfa,
                "black_level": np.asarray(frame.black_level, dtype=np.float64).tolist(),
                "white_level": float(frame.white_level),
                "active_area": [int(v) for v in frame.active_area],
                "metadata": _metadata_to_json(frame.metadata),
            }
            (tmp / "frame.json").write_text(json.dumps(info, indent=1))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._commit(tmp, self._dir(key, frame=True))

    def ensure(self, path: str | os.PathLike, key: str | None = None, *, frame: bool = False) -> str:
        """Decode ``path`` into the cache unless it is there already; returns its key.

        Args:
            path: the raw file.
            key: its key when known (see :meth:`key`); computed from the file otherwise.
            frame: also keep the whole :class:`~isp.raw.RawFrame` (for synthetic noise).

        Raises:
            MissingDataError: the file is not in the cache and does not exist.
            isp.raw.RawError: LibRaw cannot read it.
        """
        path = os.path.abspath(os.fspath(path))
        key = key or self.key(path)
        need_planes, need_frame = not self.has(key), frame and not self.has(key, frame=True)
        if need_planes or need_frame:
            if not os.path.exists(path):
                raise MissingDataError(f"Raw file {path!r} does not exist and is not in the cache.")
            decoded = read(path)
            self.decodes += 1
            if need_planes:
                self._write_planes(key, decoded, path)
            if need_frame:
                self._write_frame(key, decoded, path)
        return key

    # reading ----------------------------------------------------------------------------------
    def load(self, path: str | os.PathLike, key: str | None = None) -> CachedRaw:
        """The cached planes, noise vectors and metadata of ``path`` (decoding it first if needed).

        The opened memory maps are kept (up to ``MAX_OPEN`` files per process), so a later epoch
        reads pages only.
        """
        if key is not None and key in self._opened:
            return self._opened[key]
        key = self.ensure(path, key)
        d = self._dir(key)
        meta = json.loads((d / "meta.json").read_text())
        item = CachedRaw(
            path=meta["path"],
            planes=np.load(d / "planes.npy", mmap_mode="r"),
            row=np.load(d / "row.npy", mmap_mode="r"),
            col=np.load(d / "col.npy", mmap_mode="r"),
            metadata=_metadata_from_json(meta["metadata"]),
        )
        if len(self._opened) >= self.MAX_OPEN:
            self._opened.pop(next(iter(self._opened)))
        self._opened[key] = item
        return item

    def load_frame(self, path: str | os.PathLike, key: str | None = None) -> RawFrame:
        """The whole cached :class:`~isp.raw.RawFrame` of ``path`` (memory-mapped arrays)."""
        key = self.ensure(path, key, frame=True)
        d = self._dir(key, frame=True)
        info = json.loads((d / "frame.json").read_text())
        ob = {
            side: np.load(d / f"ob_{side}.npy", mmap_mode="r") if (d / f"ob_{side}.npy").exists() else None
            for side in _OB_SIDES
        }
        return RawFrame(
            path=info["path"],
            mosaic=np.load(d / "mosaic.npy", mmap_mode="r"),
            cfa=info["cfa"],
            black_level=np.asarray(info["black_level"], dtype=np.float64),
            white_level=float(info["white_level"]),
            sensor=np.load(d / "sensor.npy", mmap_mode="r"),
            active_area=tuple(info["active_area"]),
            metadata=_metadata_from_json(info["metadata"]),
            optical_black=OpticalBlack(**ob),
        )
