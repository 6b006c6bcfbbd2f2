"""The CPU cores inference uses: the thread rule and the governor measured on real load."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from isp.predict.cores import (
    CoreGovernor,
    affinity_cores,
    cpu_ticks,
    parse_cpu_quota,
    quota_cores,
    threads_for,
)

two_cpus = pytest.mark.skipif(
    not Path("/proc/stat").is_file() or len(getattr(os, "sched_getaffinity", lambda pid: ())(0)) < 2,
    reason="needs Linux /proc/stat and 2 CPUs",
)


def test_threads_for_counts_a_core_taken_past_the_slack():
    assert [threads_for(2, o) for o in (0.0, 0.2, 0.3, 0.9, 1.2, 2.0, 5.0)] == [2, 2, 1, 1, 1, 1, 1]
    assert [threads_for(4, o) for o in (0.0, 1.1, 1.3, 2.5, 3.9)] == [4, 3, 2, 1, 1]
    assert threads_for(2, 0.45, slack=0.5) == 2 and threads_for(1, 0.0) == 1
    with pytest.raises(ValueError, match="`cores`"):
        threads_for(0, 0.0)
    with pytest.raises(ValueError, match="`cores`"):
        CoreGovernor(cores=0, start=1)


def test_cpu_ticks_reads_every_cpu_of_the_mask():
    ticks = cpu_ticks()
    if ticks is None:
        pytest.skip("no /proc/stat on this system")
    assert set(os.sched_getaffinity(0)) <= set(ticks)
    assert all(total >= idle >= 0 for total, idle in ticks.values())


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@two_cpus
def test_governor_drops_to_one_thread_while_another_process_spins_and_comes_back():
    cpus = sorted(os.sched_getaffinity(0))[:2]
    governor = CoreGovernor(cores=2, start=2, slack=0.5)  # tolerant of a stray process on a CI machine
    assert governor() == 2  # too soon to measure: the first answer stands
    # another process takes the second core while this one works on the first
    pin = f"import os, time; os.sched_setaffinity(0, {{{cpus[1]}}}); t = time.time() + 30\n"
    child = subprocess.Popen([sys.executable, "-c", pin + "while time.time() < t: pass"])
    os_affinity = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {cpus[0]})
        time.sleep(0.3)  # the child is pinned and spinning
        governor()  # start a fresh interval with the child running
        _spin(0.8)
        busy = governor()
        others_busy = governor.others
    finally:
        child.kill()
        child.wait()
    try:
        time.sleep(0.2)
        governor()
        _spin(0.8)  # this process alone: its own CPU time is not counted as others'
        idle = governor()
        others_idle = governor.others
    finally:
        os.sched_setaffinity(0, os_affinity)
    assert others_busy is not None and others_busy > 0.7 and busy == 1
    assert others_idle is not None and others_idle < 0.5 and idle == 2
    assert governor.history[-1] == 2 and 1 in governor.history


def test_cgroup_cpu_quota_caps_the_cores(tmp_path):
    assert [parse_cpu_quota(t) for t in ("max 100000", "100000 100000", "250000 100000", "x y")] == [
        None,
        1,
        3,
        None,
    ]
    assert parse_cpu_quota("-1", period="100000") is None and parse_cpu_quota("20000", period="100000") == 1
    v2, v1 = tmp_path / "v2", tmp_path / "v1"
    v2.mkdir()
    (v2 / "cpu.max").write_text("150000 100000\n")
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert quota_cores(str(v2)) == 2 and quota_cores(str(v1)) == 3
    assert quota_cores(str(tmp_path / "none")) is None
    quota = quota_cores()  # this machine's own cgroup, where it has one
    mask = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert affinity_cores() == (min(mask, quota) if quota else mask)
