"""Import before torch: the process's memory tuned as the programs have it (:func:`isp.tune_memory`).

``ISP_KEEP_FREED_MEMORY=0`` and/or ``THP_MEM_ALLOC_ENABLE=0`` in front of a benchmark measure
without each part.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from isp import tune_memory  # noqa: E402  (imports no torch)

TUNED = tune_memory()


def pages() -> str:
    """What this process's memory runs on, e.g. ``"freed memory kept, huge pages"``."""
    keep = "freed memory kept" if TUNED["keep_freed_memory"] else "freed memory returned"
    huge = "huge pages" if TUNED["huge_pages"] else "4 KB pages"
    return f"{keep}, {huge}"
