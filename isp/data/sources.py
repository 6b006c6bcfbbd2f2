"""Where the training pairs come from: SID list files, a manifest, clean raws, the sample set.

Every source turns its configuration into a list of :class:`Pair` (noisy file, clean file,
split, whether to amplify), checking that every file exists and naming the first that does not.

- :func:`sid_pairs`: the list files of Chen et al., "Learning to See in the Dark" (CVPR 2018),
  one pair per line (``./Sony/short/10003_00_0.04s.ARW ./Sony/long/10003_00_10s.ARW ISO200
  F9``); the first digit of the file id gives the split (0 train, 1 test, 2 val). The input is
  amplified by the ratio of the two files' EXIF exposure times (not the numbers in the names).
- :func:`manifest_pairs`: a CSV (header ``noisy,clean[,split]``) or JSON (a list of objects with
  those keys, or ``{"pairs": [...]}``) of noisy/clean pairs, paths relative to the manifest.
- :func:`clean_files`: clean raws for synthetic noise, listed by a manifest's ``clean`` column
  or found under a folder (split from a ``train``/``val``/``test`` path component, else from a
  hash of the path: 10% val, 10% test).
- The sample set (``isp.data.synth``) is a manifest source whose ``pairs.csv`` is generated on
  demand.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from isp.data.cache import MissingDataError
from isp.raw.read import RAW_EXTENSIONS

__all__ = [
    "RAW_EXTENSIONS",
    "SID_LISTS",
    "SPLITS",
    "Pair",
    "check_root",
    "clean_files",
    "manifest_pairs",
    "sid_pairs",
]

SPLITS = ("train", "val", "test")
SID_SPLITS = {"0": "train", "1": "test", "2": "val"}
SID_LISTS = ("Sony_train_list.txt", "Sony_val_list.txt", "Sony_test_list.txt")


@dataclass(frozen=True)
class Pair:
    """One training example: a noisy raw and its clean reference.

    Attributes:
        noisy: the noisy raw file, or ``None`` when noise is synthesised from ``clean``.
        clean: the clean (reference) raw file.
        split: "train", "val" or "test".
        amplify: multiply the noisy input (and its noise vectors) by the exposure ratio
            ``clean / noisy`` read from the files' EXIF, capped at the dataset's ``max_gain``.
    """

    noisy: str | None
    clean: str
    split: str = "train"
    amplify: bool = False


def check_root(root: str | os.PathLike, what: str = "data.root") -> Path:
    """``root`` as a Path, or :class:`MissingDataError` naming it when it is missing or empty."""
    root = Path(root)
    if not root.is_dir():
        raise MissingDataError(
            f"Expected `{what}` to be an existing folder. Got {str(root)!r}, which does not exist."
        )
    if not any(root.iterdir()):
        raise MissingDataError(f"Expected `{what}` {str(root)!r} to hold the data set. It is empty.")
    return root


def _existing(path: Path, origin: str) -> str:
    if not path.is_file():
        raise MissingDataError(f"{origin} references {str(path)!r}, which does not exist.")
    return str(path.resolve())


def _check_split(split: str, origin: str) -> str:
    split = (split or "train").strip().lower()
    if split not in SPLITS:
        raise ValueError(f"Expected the split in {origin} to be one of {SPLITS}. Got {split!r}.")
    return split


def sid_pairs(root: str | os.PathLike, lists: list[str] | tuple[str, ...] = SID_LISTS) -> list[Pair]:
    """Pairs from SID-style list files.

    Args:
        root: the data set folder; list files and the paths inside them are relative to it.
        lists: list file names (each line: ``short_path long_path [anything]``).

    Returns:
        One :class:`Pair` per line with ``amplify=True``; the split from the first digit of the
        short file's id (0 train, 1 test, 2 val).

    Raises:
        MissingDataError: naming the root, list file or raw file that is missing.
    """
    root = check_root(root)
    pairs = []
    for name in lists:
        list_path = root / name
        if not list_path.is_file():
            raise MissingDataError(f"SID list file {str(list_path)!r} (from `lists`) does not exist.")
        for number, line in enumerate(list_path.read_text().splitlines(), 1):
            tokens = line.split()
            if not tokens:
                continue
            origin = f"{str(list_path)!r} line {number}"
            if len(tokens) < 2:
                raise ValueError(f"Expected `short_path long_path` in {origin}. Got {line!r}.")
            short, long = (_existing(root / t, origin) for t in tokens[:2])
            digit = os.path.basename(short)[:1]
            if digit not in SID_SPLITS:
                raise ValueError(
                    f"Expected the file id in {origin} to start with 0 (train), 1 (test) or 2 (val). "
                    f"Got {os.path.basename(short)!r}."
                )
            pairs.append(Pair(short, long, SID_SPLITS[digit], amplify=True))
    return pairs


def _manifest_rows(path: Path) -> list[dict]:
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text())
        rows = data.get("pairs") if isinstance(data, dict) else data
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError(
                f"Expected the JSON manifest {str(path)!r} to be a list of objects with keys noisy, "
                f"clean[, split] (or {{'pairs': [...]}}). Got {type(rows).__name__}."
            )
        return rows
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def manifest_pairs(
    manifest: str | os.PathLike, *, amplify: bool = False, need_noisy: bool = True
) -> list[Pair]:
    """Pairs listed in a CSV or JSON manifest.

    Args:
        manifest: ``.csv`` with a header ``noisy,clean[,split]`` or ``.json`` (a list of objects with
            those keys, or ``{"pairs": [...]}``); relative paths are resolved against the manifest's
            folder; a missing split means "train".
        amplify: set on every pair (see :class:`Pair`).
        need_noisy: require the ``noisy`` column (``False``: only ``clean`` is read, and the pairs
            have ``noisy=None``, for synthetic noise).

    Raises:
        MissingDataError: naming the manifest or the first file it references that is missing.
    """
    manifest = Path(manifest)
    if not manifest.is_file():
        raise MissingDataError(f"Manifest {str(manifest)!r} does not exist.")
    base = manifest.parent
    pairs = []
    for number, row in enumerate(_manifest_rows(manifest), 1):
        origin = f"Manifest {str(manifest)!r} entry {number}"
        keys = ("noisy", "clean") if need_noisy else ("clean",)
        missing = [k for k in keys if not row.get(k)]
        if missing:
            raise ValueError(f"Expected {origin} to have the fields {keys}. It lacks {missing}.")
        split = _check_split(row.get("split") or "train", origin)
        clean = _existing(base / row["clean"], origin)
        noisy = _existing(base / row["noisy"], origin) if need_noisy else None
        pairs.append(Pair(noisy, clean, split, amplify=amplify))
    if not pairs:
        raise MissingDataError(f"Manifest {str(manifest)!r} lists no pairs.")
    return pairs


def _split_of(relative: Path) -> str:
    for part in relative.parts[:-1]:
        if part.lower() in SPLITS:
            return part.lower()
    bucket = int(hashlib.sha1(relative.as_posix().encode()).hexdigest()[:8], 16) % 10
    return {0: "val", 1: "test"}.get(bucket, "train")


def clean_files(root: str | os.PathLike, manifest: str | os.PathLike | None = None) -> list[Pair]:
    """Clean raws for synthetic noise, as pairs with ``noisy=None``.

    Args:
        root: folder searched recursively for raw files (by extension, see ``RAW_EXTENSIONS``)
            when ``manifest`` is ``None``; otherwise the folder ``manifest`` is relative to.
        manifest: a manifest (see :func:`manifest_pairs`) whose ``clean`` column lists the files.

    Returns:
        Sorted pairs; the split comes from the manifest, else from a ``train``/``val``/``test``
        folder in the path below ``root``, else from a hash of that path (80/10/10).
    """
    root = check_root(root)
    if manifest is not None:
        pairs = manifest_pairs(root / manifest, need_noisy=False)
        unique = {p.clean: p for p in pairs}  # a clean file shared by several noisy ones
        return [unique[k] for k in sorted(unique)]
    found = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in RAW_EXTENSIONS)
    if not found:
        raise MissingDataError(
            f"Expected raw files ({', '.join(sorted(RAW_EXTENSIONS))}) under `data.root` {str(root)!r}. Found none."
        )
    return [Pair(None, str(p.resolve()), _split_of(p.relative_to(root))) for p in found]
