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
import errno
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal

from isp.raw.read import RAW_EXTENSIONS

__all__ = [
    "FORMATS",
    "Format",
    "OutputExistsError",
    "TEMP_MARK",
    "atomic_output",
    "discover_inputs",
    "output_path",
    "remove_stale_temporaries",
]

#: Marks the temporary files of prediction: ``.<output name>.isp-<pid>-<random>.tmp``.
TEMP_MARK = ".isp-"
_TEMP_RE = re.compile(r"^\..+\.isp-(\d+)-[^/]*\.tmp$")

#: Output formats and their file extensions.
FORMATS = {"dng": ".dng", "tiff": ".tiff", "png": ".png"}
Format = Literal["dng", "tiff", "png"]


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


def output_path(input_path: str | os.PathLike, out_dir: str | os.PathLike, fmt: Format) -> Path:
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
