"""Memory tuning for PyTorch's CPU convolutions: large freed buffers kept mapped, huge pages.

Without it, glibc maps each large buffer afresh and hands it back when freed, so a convolution's
output faults in page by page on every call: a 32 -> 32 3x3 conv at 8 x 128² took 11,400 minor
page faults a call and 18-40 ms depending on where its buffers landed, a 4 -> 32 conv at 8 x 256²
72 ms against 19 with freed memory kept (docs/benchmarks.md, "Memory"). Importing this module
imports no torch.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["memory_tuned", "tune_memory"]

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
_HEAP_BYTES = 1 << 30


_TUNED = {"keep_freed_memory": False, "huge_pages": False}


def memory_tuned() -> bool:
    """Whether :func:`tune_memory` took in this process (either part)."""
    return any(_TUNED.values())


def tune_memory() -> dict[str, bool]:
    """Keep large freed buffers mapped for reuse, and ask PyTorch for huge pages; returns what took.

    The programs call it (:mod:`isp.cli`); in your own program call it first thing, before
    importing torch (the first part works at any time, the second only then).

    - ``ISP_KEEP_FREED_MEMORY`` (default 1; 0 turns it off): glibc's ``mallopt`` serves buffers
      up to 1 GiB from the heap and keeps up to 1 GiB of freed memory mapped, so the next buffer of
      that size reuses pages already faulted in. Only where the C library has ``mallopt`` (glibc).
    - ``THP_MEM_ALLOC_ENABLE`` (PyTorch's own; set to 1 unless already set): transparent huge pages
      for PyTorch's buffers of 2 MB or more. PyTorch reads it once, at its first allocation, so it
      is set only while torch is not imported yet; DataLoader workers and child processes inherit
      it.
    """
    keep = False
    if os.environ.get("ISP_KEEP_FREED_MEMORY", "1").strip() != "0" and sys.platform.startswith("linux"):
        try:
            mallopt = ctypes.CDLL(None).mallopt
        except (OSError, AttributeError):  # no glibc (musl, ...): leave the allocator as it is
            mallopt = None
        if mallopt is not None:
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            keep = all(mallopt(p, _HEAP_BYTES) for p in (_M_MMAP_THRESHOLD, _M_TRIM_THRESHOLD))
    if "torch" not in sys.modules:  # later the variable would change nothing, and only mislead
        os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    huge = os.environ.get("THP_MEM_ALLOC_ENABLE", "").strip() == "1"  # set here or by the user
    _TUNED["keep_freed_memory"] |= keep
    _TUNED["huge_pages"] |= huge
    return dict(_TUNED)
