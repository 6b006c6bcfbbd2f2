"""Benchmark MSConv2d against its limit (image-only Conv2d) and tile-concat (issue 2).

Interleaved: every repetition runs each implementation once, in turn, so a slow spell on the shared
machine hits them all; the table reports medians over the repetitions after warm-up.

Peak memory: the torch profiler's allocation events (every CPU tensor allocation and free, in
order), summed into a running total over one forward (or forward + backward) call; the peak of that
total is what the call needed on top of its inputs and parameters. "extra" is MSConv2d's peak minus
the image-only conv's, as a fraction of the output tensor's size.

    python benchmarks/msconv.py [--reps 15] [--warmup 3] [--quick] [--threads T] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from isp.nn import MSConv2d, TileConcatConv2d

# name, C1, C_out, size, (C2, C3, C4)
GRID = [
    ("input", 4, 32, 256, (2, 0, 2)),
    ("input", 4, 32, 256, (2, 2, 2)),
    ("input heavy", 4, 32, 256, (8, 8, 8)),
    ("middle", 32, 32, 128, (2, 0, 2)),
    ("middle", 32, 32, 128, (2, 2, 2)),
    ("middle heavy", 32, 32, 128, (8, 8, 8)),
    ("middle", 64, 64, 64, (2, 0, 2)),
    ("middle", 64, 64, 64, (2, 2, 2)),
    ("bottleneck", 256, 256, 16, (2, 0, 2)),
    ("bottleneck", 256, 256, 16, (2, 2, 2)),
]
IMPLS = ("limit", "msconv", "msconv_full", "tile_concat")


def make(c1: int, c_out: int, side: tuple[int, int, int], n: int, size: int):
    """The four modules (same weights where they overlap) and their inputs."""
    torch.manual_seed(0)
    ch = (c1, *side)
    tile = TileConcatConv2d(ch, c_out, 3, padding=1)
    ms = MSConv2d(ch, c_out, 3, padding=1)
    full = MSConv2d.from_tile_concat(tile)
    limit = nn.Conv2d(c1, c_out, 3, padding=1)
    x = torch.randn(n, c1, size, size)
    row = torch.randn(n, side[0], size) if side[0] else None
    col = torch.randn(n, side[1], size) if side[1] else None
    sc = torch.randn(n, side[2]) if side[2] else None
    calls = {
        "limit": lambda: limit(x),
        "msconv": lambda: ms(x, row, col, sc),
        "msconv_full": lambda: full(x, row, col, sc),
        "tile_concat": lambda: tile(x, row, col, sc),
    }
    return calls


def run_once(fn, backward: bool) -> float:
    t = time.perf_counter()
    if backward:
        fn().sum().backward()
    else:
        with torch.no_grad():
            fn()
    return time.perf_counter() - t


def peak_bytes(fn, backward: bool) -> int:
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        if backward:
            fn().sum().backward()
        else:
            with torch.no_grad():
                fn()
    events = sorted(
        (e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
    )
    total = peak = 0
    for _, nbytes in events:
        total += nbytes
        peak = max(peak, total)
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="first two grid rows, 5 reps (a smoke run)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/msconv.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    grid = GRID[:2] if args.quick else GRID
    reps = 5 if args.quick else args.reps
    rows = []
    header = (
        f"{'layer':13} {'C1->Cout':>9} {'HxW':>7} {'side':>8} | {'pass':7} {'limit ms':>9} {'MS ms':>8} "
        f"{'MS/lim':>6} {'full/lim':>8} {'TC/MS':>6} | {'MS extra mem':>12}"
    )
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, float32, CPU")
    print(header)
    print("-" * len(header))
    for name, c1, c_out, size, side in grid:
        calls = make(c1, c_out, side, args.batch, size)
        out_bytes = args.batch * c_out * size * size * 4
        for backward in (False, True):
            times = {k: [] for k in IMPLS}
            for i in range(args.warmup + reps):
                for k in IMPLS:
                    dt = run_once(calls[k], backward)
                    if i >= args.warmup:
                        times[k].append(dt)
            med = {k: statistics.median(v) for k, v in times.items()}
            peaks = {k: peak_bytes(calls[k], backward) for k in IMPLS}
            rec = {
                "layer": name,
                "c1": c1,
                "c_out": c_out,
                "size": size,
                "side": side,
                "batch": args.batch,
                "pass": "fwd+bwd" if backward else "fwd",
                "median_s": med,
                "times_s": times,
                "peak_bytes": peaks,
                "output_bytes": out_bytes,
                "msconv_over_limit": med["msconv"] / med["limit"],
                "full_over_limit": med["msconv_full"] / med["limit"],
                "tile_over_msconv": med["tile_concat"] / med["msconv"],
                "msconv_extra_mem_over_output": (peaks["msconv"] - peaks["limit"]) / out_bytes,
            }
            rows.append(rec)
            print(
                f"{name:13} {f'{c1}->{c_out}':>9} {f'{size}x{size}':>7} {str(side).replace(' ', ''):>8} | "
                f"{rec['pass']:7} {med['limit'] * 1e3:9.2f} {med['msconv'] * 1e3:8.2f} "
                f"{rec['msconv_over_limit']:6.2f} {rec['full_over_limit']:8.2f} "
                f"{rec['tile_over_msconv']:6.2f} | "
                f"{100 * rec['msconv_extra_mem_over_output']:11.1f}%",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "reps": reps,
        "warmup": args.warmup,
    }
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
