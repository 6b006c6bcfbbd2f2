"""Import before torch: huge pages for PyTorch's CPU buffers, as the programs have them (isp/cli/__init__.py).

``THP_MEM_ALLOC_ENABLE=0 python benchmarks/...`` measures on 4 KB pages instead.
"""

import os

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


def pages() -> str:
    """``"huge pages"`` or ``"4 KB pages"``: what this process's PyTorch allocator was asked for."""
    return "huge pages" if os.environ.get("THP_MEM_ALLOC_ENABLE", "").strip() == "1" else "4 KB pages"
