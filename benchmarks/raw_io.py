"""Benchmark: read + pack + noise_vectors of a 24-MP DNG vs rawpy's own open + unpack + copy.

The limit (a) is what any reader must do: rawpy.imread + raw_image.copy() (the array dies with the
handle). (b) is isp.raw.read + pack + noise_vectors: the same decode plus black/white normalisation,
optical-black margins, packing and the noise vectors. ``read`` leaves ``frame.mosaic`` to be
computed on first access, so (b) goes from the sensor to the packed planes in one pass; (c) also
touches ``frame.mosaic`` (a second full-size float32 pass and array). Rounds are interleaved
(a, b, c, a, b, c, ...) and medians reported, because timings on shared machines drift; CPU time
(process_time) is reported too, as it is less disturbed by other processes competing for cores.

Memory: tracemalloc sees every numpy allocation (numpy reports to it) but not LibRaw's own
buffers (C malloc inside libraw); the peak RSS increase, measured in a fresh child process per
variant, sees both (but includes allocator slack).

    python benchmarks/raw_io.py                 # 4000 x 6000 visible, 7 rounds
    python benchmarks/raw_io.py --rounds 3 --height 2000 --width 3000
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import rawpy

from isp.raw import RawMetadata, noise_vectors, pack, read, write_dng

MARGIN = (16, 64, 16, 32)  # masked rows top, columns left, rows bottom, columns right


def limit(path: str) -> np.ndarray:
    with rawpy.imread(path) as raw:
        return raw.raw_image.copy()


def ours(path: str):
    frame = read(path)
    planes, info = pack(frame)
    row, col = noise_vectors(frame)
    return frame, planes, info, row, col


def ours_with_mosaic(path: str):
    frame = read(path)
    _ = frame.mosaic  # materialise the (H, W) mosaic too; pack then copies from it
    planes, info = pack(frame)
    row, col = noise_vectors(frame)
    return frame, planes, info, row, col


VARIANTS = {"a": limit, "b": ours, "c": ours_with_mosaic}


def write_sample(folder: Path, height: int, width: int) -> Path:
    top, left, bottom, right = MARGIN
    rng = np.random.default_rng(0)
    hs, ws = height + top + bottom, width + left + right
    sensor = (512 + rng.gamma(2.0, 400.0, size=(hs, ws))).clip(0, 16383).astype(np.uint16)
    sensor[:top] = sensor[-bottom:] = 512
    return write_dng(
        folder / "bench.dng",
        sensor,
        cfa="GRBG",
        black_level=512,
        white_level=16383,
        active_area=(top, left, top + height, left + width),
        metadata=RawMetadata(iso=800, exposure_time=1 / 100),
    )


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(variant: str, path: str) -> None:
    """Run one variant in this fresh process and print its peak RSS increase in bytes.

    VmHWM (the high-water mark of this process's own memory map) is used rather than
    ru_maxrss, which Linux carries over from the parent across fork + exec.
    """
    base = _status_kib("VmRSS")
    VARIANTS[variant](path)
    print(json.dumps({"rss_increase": (_status_kib("VmHWM") - base) * 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--width", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    with tempfile.TemporaryDirectory() as folder:
        path = str(write_sample(Path(folder), args.height, args.width))
        mosaic_bytes = args.height * args.width * 4
        for fn in VARIANTS.values():  # warm-up: page cache, imports
            fn(path)
        times = {name: [] for name in VARIANTS}
        cpu = {name: [] for name in VARIANTS}
        for _ in range(args.rounds):
            for name, fn in VARIANTS.items():
                c, t = time.process_time(), time.perf_counter()
                result = fn(path)
                times[name].append(time.perf_counter() - t)
                cpu[name].append(time.process_time() - c)
                del result
        traced = {}
        for name, fn in VARIANTS.items():
            tracemalloc.start()
            result = fn(path)
            traced[name] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            del result
        rss = {}
        for name in VARIANTS:
            out = subprocess.run(
                [sys.executable, __file__, "--child", name, path], capture_output=True, text=True, check=True
            ).stdout
            rss[name] = json.loads(out.strip().splitlines()[-1])["rss_increase"]

    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    mib = 2**20
    print(f"{args.height} x {args.width} visible DNG (+ margins {MARGIN}), {args.rounds} interleaved rounds")
    print(f"float32 mosaic: {mosaic_bytes / mib:.1f} MiB\n")
    print(
        "| variant | median s | min s | max s | CPU s (median) | tracemalloc peak MiB (x) "
        "| peak RSS rise MiB (x) |"
    )
    print("|---|---|---|---|---|---|---|")
    labels = {
        "a": "(a) rawpy open+unpack+copy",
        "b": "(b) read+pack+noise_vectors",
        "c": "(c) as (b) + frame.mosaic",
    }
    for k in VARIANTS:
        print(
            f"| {labels[k]} | {med[k]:.3f} | {min(times[k]):.3f} | {max(times[k]):.3f} | {med_cpu[k]:.3f} | "
            f"{traced[k] / mib:.0f} ({traced[k] / mosaic_bytes:.2f}x) | "
            f"{rss[k] / mib:.0f} ({rss[k] / mosaic_bytes:.2f}x) |"
        )
    print()
    for k in ("b", "c"):
        paired = statistics.median(t / a for a, t in zip(times["a"], times[k], strict=True))
        print(
            f"({k}) / (a) median time: {med[k] / med['a']:.2f}; median of per-round ratios: {paired:.2f}; "
            f"CPU time: {med_cpu[k] / med_cpu['a']:.2f}"
        )
    print("(target for (b): <= 1.3)")
    print(
        f"(b) peak memory / float32 mosaic: tracemalloc {traced['b'] / mosaic_bytes:.2f}x, "
        f"RSS {rss['b'] / mosaic_bytes:.2f}x (target <= 3)"
    )


if __name__ == "__main__":
    main()
