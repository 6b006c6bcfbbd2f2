"""How many CPU cores inference may use: the free cores now, and again between tiles.

On a 2-core machine two torch (intra-op) threads denoise one tile about 1.8x as fast as one
thread while the other core is idle, but when another process takes a core OpenMP's short
parallel regions wait for the preempted thread and two threads run at half the speed of one
(docs/benchmarks.md, "Inference"). :func:`free_cores` counts the idle cores once, at the start;
:class:`CoreGovernor` re-counts them between tiles, from the CPU time the whole machine and this
process spent since the last tile (``/proc/stat`` and :func:`time.process_time`), so a job that
starts or ends on the other core mid-file changes the thread count at the next tile.
"""

from __future__ import annotations

import math
import os
import time

__all__ = [
    "CoreGovernor",
    "affinity_cores",
    "amx_bf16",
    "cpu_busy",
    "cpu_ticks",
    "free_cores",
    "parse_cpu_quota",
    "quota_cores",
    "threads_for",
]


def affinity_cores() -> int:
    """The number of CPUs this process may run on.

    Its affinity mask (``os.cpu_count()`` elsewhere), at most its cgroup's CPU quota
    (:func:`quota_cores`: a container started with ``--cpus 2`` on a larger machine).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = quota_cores()
    return max(1, min(cores, quota)) if quota is not None else cores


def amx_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in AMX tiles (Intel Xeon since Sapphire Rapids).

    There oneDNN runs a bfloat16 convolution 6-8x as fast as a float32 one (a 3x3 conv of 32 to
    128 channels, one thread, measured on this project's 2-core Xeon), so :mod:`isp.cli.predict`
    denoises under bfloat16 autocast by default on such a CPU. Elsewhere (AVX-512 or AVX2 alone,
    other architectures) bfloat16 is emulated and slower than float32: False.
    """
    import torch

    try:
        return bool(
            torch.backends.mkldnn.is_available()
            and torch.cpu._is_amx_tile_supported()
            and torch.cpu._is_avx512_bf16_supported()
            and torch.cpu._init_amx()  # the kernel grants the process the AMX state
        )
    except (AttributeError, RuntimeError):  # a torch without these probes
        return False


def parse_cpu_quota(text: str, period: str | None = None) -> int | None:
    """Whole cores a cgroup CPU quota allows (rounded up), or None for no limit.

    ``text``: cgroup v2's ``cpu.max`` (``"max 100000"`` or ``"150000 100000"``), or cgroup v1's
    ``cpu.cfs_quota_us`` (``"-1"`` or ``"150000"``) with ``period`` its ``cpu.cfs_period_us``.

    Example:
        >>> parse_cpu_quota("max 100000"), parse_cpu_quota("150000 100000")
        (None, 2)
        >>> parse_cpu_quota("50000", period="100000"), parse_cpu_quota("-1", period="100000")
        (1, None)
    """
    fields = text.split()
    if period is not None:
        fields = [*fields[:1], period.strip()]
    if len(fields) != 2 or fields[0] in ("max", "-1"):
        return None
    try:
        quota, per = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return max(1, math.ceil(quota / per)) if quota > 0 and per > 0 else None


def quota_cores(root: str = "/sys/fs/cgroup") -> int | None:
    """The cores this process's cgroup CPU quota allows (:func:`parse_cpu_quota`), None without one."""
    try:
        with open(os.path.join(root, "cpu.max")) as f:  # cgroup v2
            return parse_cpu_quota(f.read())
    except OSError:
        pass
    try:
        with (
            open(os.path.join(root, "cpu", "cpu.cfs_quota_us")) as q,
            open(os.path.join(root, "cpu", "cpu.cfs_period_us")) as p,
        ):  # cgroup v1
            return parse_cpu_quota(q.read(), p.read())
    except OSError:
        return None


def cpu_ticks() -> dict[int, tuple[int, int]] | None:
    """Per CPU, ``(total, idle)`` clock ticks since boot from ``/proc/stat`` (iowait counts as idle).

    Returns None where ``/proc/stat`` cannot be read (not Linux).
    """
    ticks = {}
    try:
        with open("/proc/stat") as f:
            for line in f:
                name, *fields = line.split()
                if name.startswith("cpu") and name != "cpu":
                    values = [int(v) for v in fields[:8]]
                    ticks[int(name[3:])] = (sum(values), values[3] + values[4])
    except (OSError, ValueError, IndexError):
        return None
    return ticks or None


def cpu_busy(cpus: list[int] | None = None, window: float = 0.2) -> dict[int, float] | None:
    """The fraction of time each CPU spent busy over the next ``window`` seconds (Linux).

    Read from ``/proc/stat`` twice (idle and iowait count as idle). ``cpus``: the CPUs to report
    (default: this process's affinity mask). Returns None where ``/proc/stat`` cannot be read.
    """
    try:
        cpus = sorted(os.sched_getaffinity(0)) if cpus is None else list(cpus)
    except AttributeError:
        return None
    before = cpu_ticks()
    time.sleep(window)
    after = cpu_ticks()
    if before is None or after is None:
        return None
    busy = {}
    for cpu in cpus:
        if cpu in before and cpu in after:
            total = after[cpu][0] - before[cpu][0]
            idle = after[cpu][1] - before[cpu][1]
            busy[cpu] = 1.0 - idle / total if total > 0 else 0.0
    return busy or None


def free_cores(window: float = 0.2) -> int:
    """The CPU cores this process may use that other work is not using now (at least 1).

    The cores of the process's affinity mask minus the cores busy over the next ``window``
    seconds (:func:`cpu_busy`), rounded: on an idle 2-core machine 2, with another job busy on
    one core 1. Where ``/proc/stat`` cannot be read, the 1-minute load average stands in (it lags:
    a minute after a job ends it still counts it).
    """
    cores = affinity_cores()
    busy = cpu_busy(window=window) if window > 0 else None
    if busy is not None:
        load = sum(busy.values())
    else:
        try:
            load = os.getloadavg()[0]
        except OSError:
            load = 0.0
    return max(1, min(cores, int(cores - load + 0.5)))


def threads_for(cores: int, others: float, slack: float = 0.25) -> int:
    """Intra-op threads for ``cores`` usable cores of which other processes use ``others`` (in cores).

    A core counts as taken once others use more than ``slack`` of it: an intra-op thread that
    shares its core with another process stalls every parallel region of its peers.

    Example:
        >>> threads_for(2, 0.05), threads_for(2, 0.4), threads_for(2, 1.0), threads_for(4, 1.3)
        (2, 1, 1, 2)
    """
    if cores < 1:
        raise ValueError(f"Expected `cores` to be a positive integer. Got {cores}.")
    taken = max(0, math.ceil(others - slack))
    return max(1, min(cores, cores - taken))


class CoreGovernor:
    """Torch's intra-op thread count for the next tile, re-chosen from the load since the last one.

    Call it before each tile; it returns the number of threads to use. Between two calls it
    measures the busy CPU time of the whole machine (``/proc/stat``, over this process's affinity
    mask) minus this process's own CPU time (:func:`time.process_time`, all its threads): the
    cores other processes used (:attr:`others`). Its answer is :func:`threads_for` of that, so two
    threads run while the other core is free and one as soon as another job takes it, and back.
    Intervals shorter than ``min_interval`` seconds keep the previous answer (clock ticks are 10 ms).
    Without ``/proc/stat`` it keeps its first answer.

    Args:
        cores: the most threads to use (default: the affinity mask's CPUs).
        start: the first answer (default: :func:`free_cores`, measured over 0.2 s).
        slack: a core other processes use less than this fraction of still counts as free.
        min_interval: seconds of measurement needed before the answer changes.

    Example:
        >>> governor = CoreGovernor(cores=2, start=2)
        >>> governor() in (1, 2)
        True
    """

    def __init__(
        self,
        cores: int | None = None,
        start: int | None = None,
        slack: float = 0.25,
        min_interval: float = 0.25,
    ) -> None:
        self.cores = affinity_cores() if cores is None else int(cores)
        if self.cores < 1:
            raise ValueError(f"Expected `cores` to be a positive integer. Got {cores}.")
        first = free_cores() if start is None else int(start)
        self.threads = max(1, min(self.cores, first))
        self.slack = slack
        self.min_interval = min_interval
        self.others: float | None = None
        self.history: list[int] = []
        try:
            self._cpus = sorted(os.sched_getaffinity(0))
        except AttributeError:
            self._cpus = None
        self._hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._mark = self._sample()

    def _sample(self) -> tuple[float, float, float] | None:
        """``(wall s, machine busy s, own CPU s)`` now, or None without ``/proc/stat``."""
        ticks = cpu_ticks()
        if ticks is None or self._cpus is None:
            return None
        busy = sum(ticks[c][0] - ticks[c][1] for c in self._cpus if c in ticks) / self._hz
        return time.monotonic(), busy, time.process_time()

    def __call__(self) -> int:
        """The thread count for the next tile (and the measurement since the last call)."""
        now = self._sample()
        if now is not None and self._mark is not None and now[0] - self._mark[0] >= self.min_interval:
            wall = now[0] - self._mark[0]
            self.others = max(0.0, ((now[1] - self._mark[1]) - (now[2] - self._mark[2])) / wall)
            self.threads = threads_for(self.cores, self.others, self.slack)
            self._mark = now
        elif self._mark is None:
            self._mark = now
        self.history.append(self.threads)
        return self.threads
