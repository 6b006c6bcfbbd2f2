"""The programs ask PyTorch for transparent huge pages (``isp.cli`` sets THP_MEM_ALLOC_ENABLE)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")
ROLLUP = Path("/proc/self/smaps_rollup")

# a 64 MB buffer written through, then this process's huge-page total (kB) and the variable
PROBE = """
import os, re
{first}
import {module}
import torch
x = torch.ones(16 * 2**20)
kb = int(re.search(r"AnonHugePages:\\s+(\\d+) kB", open("/proc/self/smaps_rollup").read()).group(1))
print(os.environ.get("THP_MEM_ALLOC_ENABLE"), kb, float(x.sum()))
"""


def _mode() -> str | None:
    if not THP.is_file() or not ROLLUP.is_file():
        return None
    return re.search(r"\[(\w+)\]", THP.read_text()).group(1)


def _probe(module: str, env_value: str | None, first: str = "") -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    if env_value is not None:
        env["THP_MEM_ALLOC_ENABLE"] = env_value
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module, first=first)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    assert float(out[2]) == 16 * 2**20  # the buffer was really written
    return out[0], int(out[1])


@pytest.mark.skipif(_mode() in (None, "never"), reason="no transparent huge pages on this kernel")
def test_the_programs_get_huge_pages_and_a_user_can_opt_out():
    value, kb = _probe("isp.cli.predict", None)
    assert value == "1" and kb >= 2048  # at least one 2 MB page under the 64 MB buffer
    value, kb = _probe("isp.cli.train", "0")
    assert value == "0"  # the user's own setting is kept
    if _mode() == "madvise":  # only PyTorch's madvise asks for them here
        assert kb == 0
        assert _probe("os", None) == ("None", 0)  # without isp.cli: torch's default, no huge pages
        # torch imported first: too late for the allocator, so the variable is left alone
        assert _probe("isp.cli.predict", None, first="import torch") == ("None", 0)
