"""Inference benchmark of the default denoiser on the CPU.

    python benchmarks/inference.py [--megapixels 24] [--threads 2] [--ckpt PATH] [--skip-e2e]

Measures, in one run:

1. **Throughput**: megapixels (mosaic) per second of tiled inference on an in-memory frame
   (``--tile``/``--overlap`` as predict.py's, default 1024/128 mosaic pixels).
2. **Convolution efficiency**: the network's FLOPs per tile (``torch.utils.flop_counter``) over
   its time per tile, divided by the GFLOP/s of one large ``Conv2d`` (64 -> 64, 3x3, on a
   256x256 map) timed in the same process: how close the network runs to the machine's
   convolution speed. Timings are medians of interleaved repeats.
3. **End to end**: ``predict.py`` on a generated ``--megapixels`` DNG in a child process: wall time
   and the child's peak RSS (``os.wait4``'s ``ru_maxrss``).

Results print as a Markdown table and are saved to ``benchmarks/results/inference.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from isp.inference import size_multiple, tiled_forward  # noqa: E402
from isp.weights import load_model  # noqa: E402


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _inputs(net: nn.Module, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    c2, c3, c4 = getattr(net, "side_channels", (5, 5, 5))
    image = torch.rand(1, 4, h, w, generator=g) * 0.3
    row = torch.randn(1, c2, h, generator=g) * 0.1
    col = torch.randn(1, c3, w, generator=g) * 0.1
    return image, row, col, torch.zeros(1, c4)


def throughput(net: nn.Module, mosaic_side: int, tile: int, overlap: int) -> dict:
    """Mosaic megapixels per second of tiled inference on a square frame."""
    h = w = mosaic_side // 2
    args = _inputs(net, h, w)
    with torch.inference_mode():
        net(*_inputs(net, 64, 64))  # warm-up
        kw = {"tile": tile // 2, "overlap": overlap // 2, "align": size_multiple(net)}
        t = _median_time(lambda: tiled_forward(net, *args, **kw), 3)
    mp = mosaic_side * mosaic_side / 1e6
    return {"frame_megapixels": mp, "seconds": t, "megapixels_per_s": mp / t}


def conv_efficiency(net: nn.Module, tile: int, repeats: int = 7) -> dict:
    """The network's GFLOP/s on one packed tile divided by a large Conv2d's GFLOP/s."""
    h = w = tile // 2
    args = _inputs(net, h, w, seed=1)
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            net(*args)
        net_flops = counter.get_total_flops()
        ref = nn.Conv2d(64, 64, 3, padding=1).eval()
        x = torch.randn(1, 64, 256, 256)
        counter = FlopCounterMode(display=False)
        with counter:
            ref(x)
        ref_flops = counter.get_total_flops()
        net(*args), ref(x)  # warm-up
        net_times, ref_times = [], []
        for _ in range(repeats):  # interleaved, so both see the same machine load
            net_times.append(_median_time(lambda: net(*args), 1))
            ref_times.append(_median_time(lambda: ref(x), 1))
    net_gflops = net_flops / statistics.median(net_times) / 1e9
    ref_gflops = ref_flops / statistics.median(ref_times) / 1e9
    return {
        "tile_packed": [h, w],
        "net_gflop_per_tile": net_flops / 1e9,
        "net_gflop_per_mosaic_megapixel": net_flops / 1e9 / (4 * h * w / 1e6),
        "net_seconds_per_tile": statistics.median(net_times),
        "net_gflops": net_gflops,
        "conv_reference": "Conv2d(64, 64, 3, padding=1) on (1, 64, 256, 256)",
        "conv_gflops": ref_gflops,
        "ratio": net_gflops / ref_gflops,
    }


def make_dng(path: Path, megapixels: float) -> tuple[int, int]:
    """A noisy synthetic DNG of about ``megapixels`` (3:2, masked margins like the sample set)."""
    from isp.raw import RawMetadata, write_dng

    w = int(round(math.sqrt(megapixels * 1e6 * 1.5) / 2)) * 2
    h = int(round(w / 1.5 / 2)) * 2
    top, left = 8, 16
    rng = np.random.default_rng(0)
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    xx = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    sensor = np.empty((h + top, w + left), dtype=np.uint16)
    sensor[:] = 512
    for y0 in range(0, h, 512):  # in chunks: keep this process small too
        y1 = min(h, y0 + 512)
        clean = 512 + 6000 * (0.2 + 0.5 * yy[y0:y1] * xx + 0.2 * np.sin(40 * xx) ** 2)
        noisy = clean + rng.normal(0, 60, size=clean.shape).astype(np.float32)
        sensor[top + y0 : top + y1, left:] = np.clip(np.rint(noisy), 0, 16383).astype(np.uint16)
    meta = RawMetadata(iso=3200.0, exposure_time=1 / 100, f_number=2.8, make="isp", model="benchmark")
    area = (top, left, h + top, w + left)
    write_dng(path, sensor, cfa="RGGB", black_level=512, white_level=16383, active_area=area, metadata=meta,
              overwrite=True)
    return h, w


def end_to_end(megapixels: float, threads: int, tile: int, overlap: int, ckpt: str | None) -> dict:
    """predict.py on a generated DNG in a child process: wall time and peak RSS."""
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "frame.dng"
        h, w = make_dng(src, megapixels)
        cmd = [sys.executable, str(ROOT / "predict.py"), str(src), "--out-dir", str(Path(d) / "out"),
               "--tile", str(tile), "--overlap", str(overlap), "--device", "cpu"]
        if ckpt:
            cmd += ["--ckpt", ckpt]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(f"predict.py failed ({proc.returncode}):\n{err[-2000:]}")
        out = Path(d) / "out" / "frame.dng"
        size = out.stat().st_size
    return {
        "visible": [h, w],
        "megapixels": h * w / 1e6,
        "seconds": wall,
        "peak_rss_gb": usage.ru_maxrss * 1024 / 1e9,  # Linux reports KiB
        "output_bytes": size,
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--megapixels", type=float, default=24.0, help="size of the end-to-end DNG")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--tile", type=int, default=1024, help="mosaic pixels, as predict.py")
    p.add_argument("--overlap", type=int, default=128, help="mosaic pixels, as predict.py")
    p.add_argument("--frame", type=int, default=2048, help="side of the throughput frame (mosaic)")
    p.add_argument("--ckpt", default=None, help="checkpoint (default: the shipped model)")
    p.add_argument("--skip-e2e", action="store_true", help="skip the end-to-end run")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "inference.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    loaded = load_model(args.ckpt)
    net = loaded.net
    results = {
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads,
                    "torch": torch.__version__},
        "model": loaded.model,
        "throughput": throughput(net, args.frame, args.tile, args.overlap),
        "efficiency": conv_efficiency(net, args.tile),
    }
    if not args.skip_e2e:
        results["end_to_end"] = end_to_end(args.megapixels, args.threads, args.tile, args.overlap, args.ckpt)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    t, e = results["throughput"], results["efficiency"]
    print("| measure | value |\n|---|---|")
    arch = ", ".join(f"{k}={v}" for k, v in loaded.model["init_args"].items())
    print(f"| model | {loaded.model['class_path']}({arch}) |")
    print(f"| threads | {args.threads} |")
    print(f"| tiled throughput ({t['frame_megapixels']:.1f} MP frame) | {t['megapixels_per_s']:.2f} MP/s |")
    print(f"| network FLOPs | {e['net_gflop_per_mosaic_megapixel']:.2f} GFLOP per mosaic MP |")
    print(f"| network speed (one {args.tile}px tile) | {e['net_gflops']:.1f} GFLOP/s |")
    print(f"| large Conv2d speed | {e['conv_gflops']:.1f} GFLOP/s |")
    print(f"| efficiency (network / Conv2d) | {e['ratio']:.2f} |")
    if "end_to_end" in results:
        r = results["end_to_end"]
        size = f"{r['megapixels']:.1f} MP DNG ({r['visible'][1]}x{r['visible'][0]})"
        print(f"| end to end, {size} | {r['seconds']:.1f} s |")
        print(f"| peak RSS (predict.py child) | {r['peak_rss_gb']:.2f} GB |")
    return results


if __name__ == "__main__":
    main()
