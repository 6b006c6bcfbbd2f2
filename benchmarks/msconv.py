"""Benchmark MSConv2d against its limit (image-only Conv2d) and tile-concat (issue 2).

Interleaved: every repetition runs each implementation once, in turn, so a slow spell on the shared
machine hits them all; the table reports medians over the repetitions after warm-up, of wall-clock
time and of process CPU time. With other jobs on the cores, CPU time with ``--threads 1`` is the
steadiest measure of the work each implementation does (with more threads, OpenMP threads spin while
waiting for a preempted peer, so CPU time inflates too).

Peak memory: the torch profiler's allocation events (every CPU tensor allocation and free, in
order), summed into a running total over one forward (or forward + backward) call; the peak of that
total is what the call needed on top of its inputs and parameters. "extra" is MSConv2d's peak minus
the image-only conv's, as a fraction of the output tensor's size.

    python benchmarks/msconv.py [--reps 15] [--warmup 3] [--quick] [--threads T] [--out FILE.json]
                                [--epilogue] [--compile] [--channels-last] [--precision bf16]
                                [--fused-epilogue]

``--epilogue`` ends every call with the UNet's LeakyReLU and ``--compile`` compiles every call:
together they measure the side terms' add fused into the activation's pass by Inductor.
``--channels-last`` gives every input and module the channels-last layout and ``--precision bf16``
runs every call under bf16 autocast: the layers as ``predict.py`` runs them on a CPU with AMX tiles.
``--fused-epilogue`` (forward only) ends every call with a compiled LeakyReLU, MSConv2d's side terms
added in its pass (:func:`isp.nn.ms_conv2d_leaky_relu`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import _pages  # before torch: the memory tuned as the programs run
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _quiet import quiet_stderr, quiet_warnings  # noqa: E402

from isp.nn import MSConv2d, TileConcatConv2d  # noqa: E402
from isp.nn._epilogue import fresh_side_leaky_relu  # noqa: E402

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
IMPLS = ("limit", "msconv", "tile_concat")


def make(
    c1: int,
    c_out: int,
    side: tuple[int, int, int],
    n: int,
    size: int,
    device: str = "cpu",
    epilogue: bool = False,
    compiled: bool = False,
    channels_last: bool = False,
    autocast_dtype: torch.dtype | None = None,
    fused: bool = False,
):
    """The four modules (same weights where they overlap) and their inputs, as calls.

    ``epilogue``: each call ends with the UNet's LeakyReLU(0.2); ``compiled``: each call is
    ``torch.compile``d (Inductor fuses the side terms' add with that activation);
    ``channels_last``: images and modules in that layout; ``autocast_dtype``: each call under autocast;
    ``fused``: every call ends with LeakyReLU(0.2) as a compiled kernel, MSConv2d's side terms added
    in its pass (:func:`isp.nn.ms_conv2d_leaky_relu`; without autograd, so forward rows only).
    """
    torch.manual_seed(0)
    ch = (c1, *side)
    tile = TileConcatConv2d(ch, c_out, 3, padding=1, device=device)
    ms = MSConv2d(ch, c_out, 3, padding=1, device=device)
    full = MSConv2d.from_tile_concat(tile)
    limit = nn.Conv2d(c1, c_out, 3, padding=1, device=device)
    x = torch.randn(n, c1, size, size, device=device)
    row = torch.randn(n, side[0], size, device=device) if side[0] else None
    col = torch.randn(n, side[1], size, device=device) if side[1] else None
    sc = torch.randn(n, side[2], device=device) if side[2] else None
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        for m in (tile, ms, full, limit):
            m.to(memory_format=torch.channels_last)
    act = torch.nn.LeakyReLU(0.2) if epilogue else torch.nn.Identity()
    fns = {
        "limit": lambda x, row, col, sc: act(limit(x)),
        "msconv": lambda x, row, col, sc: act(ms(x, row, col, sc)),
        "msconv_full": lambda x, row, col, sc: act(full(x, row, col, sc)),
        "tile_concat": lambda x, row, col, sc: act(tile(x, row, col, sc)),
    }
    if fused:  # every conv output a fresh buffer: its activation in place where that is faster

        def act_(out):
            return fresh_side_leaky_relu(out, None, None, 0.2)

        fns = {
            "limit": lambda x, row, col, sc: act_(limit(x)),
            "msconv": lambda x, row, col, sc: ms.forward_leaky_relu(x, row, col, sc, 0.2),
            "msconv_full": lambda x, row, col, sc: act_(full(x, row, col, sc)),
            "tile_concat": lambda x, row, col, sc: act_(tile(x, row, col, sc)),
        }
    if compiled:
        fns = {k: torch.compile(f) for k, f in fns.items()}
    if autocast_dtype is None:
        return {k: (lambda f=f: f(x, row, col, sc)) for k, f in fns.items()}

    def under_autocast(f):
        def call():
            with torch.autocast(torch.device(device).type, dtype=autocast_dtype):
                return f(x, row, col, sc)

        return call

    return {k: under_autocast(f) for k, f in fns.items()}


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def run_once(fn, backward: bool) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of one call (CPU time is steadier on a shared machine)."""
    _sync()
    t, c = time.perf_counter(), time.process_time()
    if backward:
        fn().sum().backward()
    else:
        with torch.no_grad():
            fn()
    _sync()
    return time.perf_counter() - t, time.process_time() - c


def peak_bytes(fn, backward: bool, device: str = "cpu") -> int:
    if device != "cpu":  # the caching allocator's own peak over the call
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        if backward:
            fn().sum().backward()
        else:
            with torch.no_grad():
                fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
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
    parser.add_argument("--with-full", action="store_true", help="also time MSConv2d.from_tile_concat (full)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (synchronised timings)")
    parser.add_argument("--epilogue", action="store_true", help="every call ends with LeakyReLU(0.2)")
    parser.add_argument("--compile", action="store_true", help="every call under torch.compile")
    parser.add_argument("--channels-last", action="store_true", help="images and modules channels-last")
    parser.add_argument(
        "--fused-epilogue",
        action="store_true",
        help="forward only: every call ends with a compiled LeakyReLU, MSConv2d's side terms in its pass",
    )
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="bf16: autocast")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/msconv.json"))
    args = parser.parse_args()
    quiet_warnings()
    if args.threads:
        torch.set_num_threads(args.threads)
    grid = GRID[:2] if args.quick else GRID
    reps = min(args.reps, 5) if args.quick else args.reps
    rows = []
    meta = {
        "torch": torch.__version__,
        "pages": _pages.pages(),
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "reps": reps,
        "warmup": args.warmup,
        "load_average_at_start": os.getloadavg(),
        "device": args.device,
        "epilogue": "leaky_relu" if args.epilogue else None,
        "compiled": args.compile,
        "channels_last": args.channels_last,
        "precision": args.precision,
        "fused_epilogue": args.fused_epilogue,
    }
    autocast_dtype = torch.bfloat16 if args.precision == "bf16" else None
    impls = (*IMPLS, "msconv_full") if args.with_full else IMPLS
    header = (
        f"{'layer':12} {'C1->Cout':>8} {'HxW':>7} {'side':>7} | {'pass':7} {'limit ms':>8} {'MS ms':>7} "
        f"{'MS/lim':>6} {'TC/MS':>5} | {'MS/lim':>6} {'TC/MS':>5} | {'MS extra':>8}"
    )
    where = f"{torch.get_num_threads()} threads, CPU" if args.device == "cpu" else args.device
    how = ("compiled, " if args.compile else "") + ("+ LeakyReLU, " if args.epilogue else "")
    how += "channels_last, " if args.channels_last else ""
    how += "fused LeakyReLU epilogue, " if args.fused_epilogue else ""
    dtype = "bf16 autocast" if autocast_dtype else "float32"
    print(f"torch {torch.__version__}, {_pages.pages()}, {where}, {how}batch {args.batch}, {dtype}")
    print(f"{'':47}| {'wall-clock medians':^30} | {'CPU-time medians':^12} | {'memory':>8}")
    print(header)
    print("-" * len(header))
    for name, c1, c_out, size, side in grid:
        out_bytes = args.batch * c_out * size * size * 4
        for backward in (False,) if args.fused_epilogue else (False, True):
            if args.compile:  # fresh graphs per row and pass: one compile each (grad mode is a guard)
                torch._dynamo.reset()
            calls = make(
                c1,
                c_out,
                side,
                args.batch,
                size,
                args.device,
                args.epilogue,
                args.compile,
                args.channels_last,
                autocast_dtype,
                args.fused_epilogue,
            )
            times = {k: [] for k in impls}
            cpu = {k: [] for k in impls}
            for i in range(args.warmup + reps):
                for j in range(len(impls)):  # rotate the order: no implementation always runs first
                    k = impls[(i + j) % len(impls)]
                    dt, dc = run_once(calls[k], backward)
                    if i >= args.warmup:
                        times[k].append(dt)
                        cpu[k].append(dc)
            med = {k: statistics.median(v) for k, v in times.items()}
            med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
            peaks = {k: peak_bytes(calls[k], backward, args.device) for k in impls}
            rec = {
                "layer": name,
                "c1": c1,
                "c_out": c_out,
                "size": size,
                "side": side,
                "batch": args.batch,
                "pass": "fwd+bwd" if backward else "fwd",
                "median_s": med,
                "median_cpu_s": med_cpu,
                "times_s": times,
                "cpu_s": cpu,
                "peak_bytes": peaks,
                "output_bytes": out_bytes,
                "msconv_over_limit": med["msconv"] / med["limit"],
                "tile_over_msconv": med["tile_concat"] / med["msconv"],
                "cpu_msconv_over_limit": med_cpu["msconv"] / med_cpu["limit"],
                "cpu_tile_over_msconv": med_cpu["tile_concat"] / med_cpu["msconv"],
                "msconv_extra_mem_over_output": (peaks["msconv"] - peaks["limit"]) / out_bytes,
            }
            if args.with_full:
                rec["full_over_limit"] = med["msconv_full"] / med["limit"]
            rows.append(rec)
            print(
                f"{name:12} {f'{c1}->{c_out}':>8} {f'{size}x{size}':>7} {str(side).replace(' ', ''):>7} | "
                f"{rec['pass']:7} {med['limit'] * 1e3:8.1f} {med['msconv'] * 1e3:7.1f} "
                f"{rec['msconv_over_limit']:6.2f} {rec['tile_over_msconv']:5.2f} | "
                f"{rec['cpu_msconv_over_limit']:6.2f} {rec['cpu_tile_over_msconv']:5.2f} | "
                f"{100 * rec['msconv_extra_mem_over_output']:7.1f}%",
                flush=True,
            )
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
