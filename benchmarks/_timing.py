"""Interleaved timing: every repetition runs each call once, in turn, so a slow spell hits them all."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def interleaved_medians(fns: dict[str, Callable[[], object]], reps: int, warmup: int) -> dict[str, float]:
    """Each call's median wall-clock seconds over ``reps`` interleaved rounds after ``warmup`` (no grad)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    with torch.no_grad():
        for _ in range(warmup + reps):
            for k, fn in fns.items():
                t = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v[warmup:]) for k, v in times.items()}
