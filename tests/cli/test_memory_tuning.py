"""The programs tune the process's memory for PyTorch (``isp.tune_memory``), and a user can opt out."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")
ROLLUP = Path("/proc/self/smaps_rollup")

# a conv called again and again (a 32 MB output each call): the page faults of one call, this
# process's huge-page total (kB), the variable, and a check value
PROBE = """
import json, os, re, resource
{first}
import {module}
import torch
torch.set_num_threads(1)
conv = torch.nn.Conv2d(8, 32, 3, padding=1)
x = torch.ones(4, 8, 256, 256)
with torch.no_grad():
    conv(x), conv(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        y = conv(x)
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4
kb = int(re.search(r"AnonHugePages:\\s+(\\d+) kB", open("/proc/self/smaps_rollup").read()).group(1))
print(json.dumps([os.environ.get("THP_MEM_ALLOC_ENABLE"), kb, faults, y.numel()]))
"""


def _thp_mode() -> str | None:
    if not THP.is_file() or not ROLLUP.is_file():
        return None
    return re.search(r"\[(\w+)\]", THP.read_text()).group(1)


def _probe(module: str, first: str = "", **env_values: str) -> tuple[str | None, int, int]:
    env = {k: v for k, v in os.environ.items() if k not in ("THP_MEM_ALLOC_ENABLE", "ISP_KEEP_FREED_MEMORY")}
    env.update(env_values, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module, first=first)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    value, kb, faults, total = json.loads(out.splitlines()[-1])
    assert total == 4 * 32 * 256 * 256
    return value, kb, faults


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_freed_memory_is_kept_for_the_next_buffer():
    _, _, kept = _probe("isp.cli.predict", THP_MEM_ALLOC_ENABLE="0")
    _, _, returned = _probe("isp.cli.predict", THP_MEM_ALLOC_ENABLE="0", ISP_KEEP_FREED_MEMORY="0")
    assert returned > 8_000  # returned to the system and faulted in again, 4 KB at a time (32 MB)
    # each call's output reuses pages of the one before (0 to 2,048 faults a call, with the heap's layout)
    assert kept * 4 < returned


@pytest.mark.skipif(_thp_mode() in (None, "never"), reason="no transparent huge pages on this kernel")
def test_the_programs_get_huge_pages_and_a_user_can_opt_out():
    value, kb, _ = _probe("isp.cli.predict")
    assert value == "1" and kb >= 2048  # at least one 2 MB page under the 32 MB outputs
    value, kb, _ = _probe("isp.cli.train", THP_MEM_ALLOC_ENABLE="0")
    assert value == "0"  # the user's own setting is kept
    if _thp_mode() == "madvise":  # only PyTorch's madvise asks for them here
        assert kb == 0
        assert _probe("os")[:2] == (None, 0)  # without isp.cli: torch's default, no huge pages
        # torch imported first: too late for the allocator, so the variable is left alone
        assert _probe("isp.cli.predict", first="import torch")[:2] == (None, 0)


def test_tune_memory_reports_what_took(monkeypatch):
    import torch  # noqa: F401  (imported first, as in a user's program that imports torch early)

    import isp
    import isp._memory

    monkeypatch.setattr(isp._memory, "_TUNED", {"keep_freed_memory": False, "huge_pages": False})
    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    tuned = isp.tune_memory()  # torch is imported in this process: the variable is left alone
    assert tuned == {"keep_freed_memory": platform.libc_ver()[0] == "glibc", "huge_pages": False}
    assert "THP_MEM_ALLOC_ENABLE" not in os.environ
    assert isp._memory.memory_tuned() is tuned["keep_freed_memory"]
    monkeypatch.setattr(isp._memory, "_TUNED", {"keep_freed_memory": False, "huge_pages": False})
    monkeypatch.setenv("ISP_KEEP_FREED_MEMORY", "0")
    assert isp.tune_memory() == {"keep_freed_memory": False, "huge_pages": False}
    assert not isp._memory.memory_tuned()
