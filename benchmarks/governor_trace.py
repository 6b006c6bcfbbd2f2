"""Trace predict's thread governor through a job that comes and goes on the other core.

    python benchmarks/governor_trace.py [--megapixels 24] [--busy-window 5,15] [--ckpt PATH]

Denoises a generated DNG with the shipped model as ``predict.py``'s default does (one tile at a
time, torch's thread count from :class:`isp.predict.cores.CoreGovernor` before each tile) while
another process spins on the last CPU from START to END seconds. Prints, per tile, the second it
started, the threads it ran on and the cores the governor saw other processes use, then the
tiles' mean seconds per thread count.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _pages  # noqa: F401  (before torch: the memory tuned as the programs run)
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _quiet import quiet_warnings  # noqa: E402
from inference import _busy_window, make_dng  # noqa: E402

from isp.predict import denoise_file  # noqa: E402
from isp.predict.cores import CoreGovernor  # noqa: E402
from isp.weights import load_model  # noqa: E402


def main(argv: list[str] | None = None) -> list[tuple[float, int, float | None]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--megapixels", type=float, default=24.0)
    p.add_argument("--busy-window", type=lambda v: tuple(float(x) for x in v.split(",")), default=(5.0, 15.0))
    p.add_argument("--ckpt", default=None)
    args = p.parse_args(argv)
    quiet_warnings()
    loaded = load_model(args.ckpt)
    net = loaded.net.eval()
    governor = CoreGovernor()
    trace: list[tuple[float, int, float | None]] = []
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "frame.dng"
        make_dng(src, args.megapixels)
        torch.set_num_threads(governor.threads)
        t0 = time.perf_counter()

        def traced() -> int:
            threads = governor()
            trace.append((time.perf_counter() - t0, threads, governor.others))
            return threads

        with _busy_window(args.busy_window):
            t0 = time.perf_counter()
            denoise_file(net, src, data=loaded.data, governor=traced)
        total = time.perf_counter() - t0
    print(f"another process spins on one core from {args.busy_window[0]} to {args.busy_window[1]} s")
    print("| tile starts (s) | threads | others (cores) |\n|---:|---:|---:|")
    for t, threads, others in trace:
        print(f"| {t:.1f} | {threads} | {'-' if others is None else f'{others:.2f}'} |")
    per = {}
    for (t, threads, _), (t_next, _, _) in zip(trace, [*trace[1:], (total, 0, None)], strict=True):
        per.setdefault(threads, []).append(t_next - t)
    summary = ", ".join(
        f"{k} thread(s): {len(v)} tiles, {statistics.mean(v):.2f} s each" for k, v in sorted(per.items())
    )
    print(f"\n{total:.1f} s in all; {summary}")
    return trace


if __name__ == "__main__":
    main()
