"""Errors raised by :mod:`isp.raw`; each message names the file and the reason."""

from __future__ import annotations

import os

__all__ = ["RawError", "RawReadError", "RawWarning", "UnsupportedRawError"]


class RawError(ValueError):
    """Base class of the raw-file errors (a :class:`ValueError`).

    Args:
        path: the file concerned (``None`` for in-memory data).
        reason: one sentence saying what is wrong.

    Example:
        >>> str(RawReadError("a.dng", "the file does not exist"))
        "Cannot read raw file 'a.dng': the file does not exist."
    """

    prefix = "Raw file"

    def __init__(self, path: str | os.PathLike | None, reason: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.reason = reason.rstrip(".")
        super().__init__(f"{self.prefix} {self.path!r}: {self.reason}.")


class RawReadError(RawError):
    """The file is missing, unreadable, truncated or corrupt."""

    prefix = "Cannot read raw file"


class UnsupportedRawError(RawError):
    """The file decodes but is not a Bayer mosaic (X-Trans, Foveon/stacked, monochrome, linear DNG)."""

    prefix = "Unsupported raw file"


class RawWarning(UserWarning):
    """A library's remark about a raw file that still decoded (tifffile, LibRaw), naming the file.

    Example:
        >>> str(RawWarning("a.nef", "tifffile: TiffTag 34665: invalid value offset"))
        "Raw file 'a.nef': tifffile: TiffTag 34665: invalid value offset."
    """

    def __init__(self, path: str | os.PathLike | None, message: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.message = message.rstrip(".")
        super().__init__(f"Raw file {self.path!r}: {self.message}.")
