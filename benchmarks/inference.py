"""Inference benchmark of the default denoiser on the CPU: one thread, two threads, two tile workers.

    python benchmarks/inference.py [--megapixels 24] [--ckpt PATH] [--skip-e2e] [--compile]
                                   [--modes 1t,2t,2w] [--precision auto|fp32|bf16[,...]]

Modes: ``1t`` one torch thread; ``2t`` two torch (intra-op) threads, one tile at a time
(``predict.py --threads 2 --parallel ops``); ``2w`` two tiles at once, one thread each
(``predict.py --threads 2 --parallel tiles``); ``auto`` predict.py's default, one tile at a time on
the torch threads :class:`isp.predict.cores.CoreGovernor` picks before each tile from the cores
other processes leave free: 2 on an idle 2-core machine, 1 while another job holds a core.
``--compile`` adds each mode under ``torch.compile``. ``--ensemble 1|2`` as ``predict.py`` (default
2: every tile also turned by 180 degrees, twice the network's time). ``--precision`` as
``predict.py``'s (default ``auto``: bf16 autocast on a CPU with AMX tiles, else fp32); a comma list
(``fp32,bf16``) runs each mode in each, interleaved. ``--busy`` keeps one other
process spinning on the last CPU throughout (a busy machine); ``--busy-window START,END`` does so
only from START to END seconds into each end-to-end run (a job that comes and goes). Measures, in
one run:

1. **Throughput**: megapixels (mosaic) per second of tiled inference on an in-memory frame
   (``--tile``/``--overlap`` as predict.py's, default 1024/192 mosaic pixels), every mode in turn
   in each of ``--repeats`` rounds (interleaved, medians).
2. **Convolution efficiency**: the network's FLOPs per tile (``torch.utils.flop_counter``) over
   its time per tile, divided by the GFLOP/s of one large ``Conv2d`` (64 -> 64, 3x3, on a
   256x256 map) timed in the same process: how close the network runs to the machine's
   convolution speed. Timings are medians of interleaved repeats.
3. **End to end**: ``predict.py`` on a generated ``--megapixels`` DNG in a child process, per
   mode: wall time and the child's peak RSS (``os.wait4``'s ``ru_maxrss``).

Results print as a Markdown table and are saved to ``benchmarks/results/inference.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import _pages  # before torch: the memory tuned as the programs run
import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _quiet import quiet_warnings  # noqa: E402

from isp.predict.cores import CoreGovernor, amx_bf16  # noqa: E402
from isp.predict.ensemble import ENSEMBLES, ensemble_forward  # noqa: E402
from isp.predict.tiling import size_multiple, tiled_forward  # noqa: E402
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


# torch threads, tile workers; "auto" is predict.py's default (torch threads re-chosen before each
# tile by a CoreGovernor, whose first answer is the free cores when the throughput run starts)
MODES = {"1t": (1, 1), "2t": (2, 1), "2w": (1, 2), "auto": (None, 1)}
PREDICT_ARGS = {
    "1t": ["--threads", "1"],
    "2t": ["--threads", "2", "--parallel", "ops"],
    "2w": ["--threads", "2", "--parallel", "tiles"],
    "auto": [],
}


DTYPES = {"fp32": None, "bf16": torch.bfloat16}


def _channels_last(net, image, *side, dtype=None):
    """The net on a ``channels_last`` tile (autocast to ``dtype`` if given), as ``predict.py`` runs it."""
    with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
        return net(image.contiguous(memory_format=torch.channels_last), *side)


def throughput(
    nets: dict, modes: list[str], mosaic_side: int, tile: int, overlap: int, repeats: int, ensemble: int = 2
) -> dict:
    """Mosaic megapixels per second of tiled inference on a square frame, per (mode, net) pair.

    ``nets``: name -> ``(module, autocast dtype or None)``. ``ensemble``: views each tile averages
    (:func:`isp.predict.ensemble.ensemble_forward`), as ``predict.py --ensemble``.
    """
    h = w = mosaic_side // 2
    some = next(iter(nets.values()))[0]
    args = _inputs(some, h, w)
    kw = {"tile": tile // 2, "overlap": overlap // 2, "align": size_multiple(some)}
    governor = CoreGovernor() if "auto" in modes else None
    views = {"views": ensemble, "align": size_multiple(some)}
    runs = {
        (m, name): (
            MODES[m],
            functools.partial(ensemble_forward, functools.partial(_channels_last, net, dtype=dtype), **views),
        )
        for m in modes
        for name, (net, dtype) in nets.items()
    }
    times = {key: [] for key in runs}
    # made outside inference mode, as the frame's are: a compiled net guards on it, and would
    # compile again in the first timed round
    warm = _inputs(some, tile // 2, tile // 2)
    with torch.inference_mode():
        for (threads, _workers), net in runs.values():  # warm-up (and compile) every pair once
            torch.set_num_threads(threads or governor.cores)
            net(*warm)
        for _ in range(repeats):
            for key, ((threads, workers), net) in runs.items():
                torch.set_num_threads(threads or governor.threads)
                t0 = time.perf_counter()
                tiled_forward(net, *args, workers=workers, governor=None if threads else governor, **kw)
                times[key].append(time.perf_counter() - t0)
    mp = mosaic_side * mosaic_side / 1e6
    out = {}
    for m, name in runs:
        t = statistics.median(times[(m, name)])
        out[f"{m}/{name}"] = {
            "frame_megapixels": mp,
            "seconds": t,
            "megapixels_per_s": mp / t,
            "times_s": times[(m, name)],
        }
        if governor is not None and m == "auto":  # how often the governor chose each thread count
            out[f"{m}/{name}"]["governor_threads"] = {
                str(k): governor.history.count(k) for k in sorted(set(governor.history))
            }
    return out


def conv_efficiency(net: nn.Module, tile: int, repeats: int = 7, dtype: torch.dtype | None = None) -> dict:
    """The network's GFLOP/s on one packed tile divided by a large Conv2d's GFLOP/s (both under
    autocast to ``dtype`` if given)."""
    h = w = tile // 2
    args = _inputs(net, h, w, seed=1)
    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
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


def read_size(path: Path) -> tuple[int, int]:
    from isp.raw import read

    return read(path).mosaic.shape


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
    write_dng(
        path,
        sensor,
        cfa="RGGB",
        black_level=512,
        white_level=16383,
        active_area=area,
        metadata=meta,
        overwrite=True,
    )
    return h, w


# predict.py is started from a small launcher process, not from this one: on Linux a child's peak
# RSS starts at its parent's (exec keeps the larger of the old and new images' maxrss), and this
# process holds the model and the throughput frame.
LAUNCHER = """
import json, os, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
err = proc.stderr.read().decode(errors="replace")
_, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"seconds": time.perf_counter() - t0, "maxrss_kib": usage.ru_maxrss,
                  "returncode": os.waitstatus_to_exitcode(status), "stderr": err[-2000:]}))
"""


@contextlib.contextmanager
def _busy_window(window: tuple[float, float] | None) -> Iterator[None]:
    """Inside the block, another process spins on one core from ``window[0]`` to ``window[1]`` s."""
    if window is None:
        yield
        return
    spinners: list[subprocess.Popen] = []

    def stop() -> None:
        while spinners:
            proc = spinners.pop()
            proc.kill()
            proc.wait()

    timers = [
        threading.Timer(window[0], lambda: spinners.append(_spinner(settle=0.0))),
        threading.Timer(window[1], stop),
    ]
    for timer in timers:
        timer.start()
    try:
        yield
    finally:
        for timer in timers:
            timer.cancel()
            timer.join()
        stop()


def end_to_end(
    src: Path,
    mode: str,
    compiled: bool,
    tile: int,
    overlap: int,
    ckpt: str | None,
    busy_window: tuple[float, float] | None = None,
    ensemble: int = 2,
    precision: str = "auto",
) -> dict:
    """predict.py on the DNG ``src`` in a child process: wall time and peak RSS.

    ``busy_window``: another process spins on one core from its first to its second second of the run.
    """
    h, w = read_size(src)
    with tempfile.TemporaryDirectory() as d:
        cmd = [
            sys.executable,
            str(ROOT / "predict.py"),
            str(src),
            "--out-dir",
            str(Path(d) / "out"),
            "--tile",
            str(tile),
            "--overlap",
            str(overlap),
            "--device",
            "cpu",
            "--ensemble",
            str(ensemble),
            "--precision",
            precision,
            *PREDICT_ARGS[mode],
        ]
        if compiled:
            cmd.append("--compile")
        if ckpt:
            cmd += ["--ckpt", ckpt]
        threads = MODES[mode][0] or 1
        env = dict(os.environ)
        if mode != "auto":
            env |= {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        launcher = [sys.executable, "-c", LAUNCHER, *cmd]
        with _busy_window(busy_window):
            launch = subprocess.run(launcher, env=env, capture_output=True, text=True)
        if launch.returncode != 0:
            raise RuntimeError(f"the launcher failed:\n{launch.stderr[-2000:]}")
        report = json.loads(launch.stdout)
        wall = report["seconds"]
        if report["returncode"] != 0:
            raise RuntimeError(f"predict.py failed ({report['returncode']}):\n{report['stderr']}")
        out = Path(d) / "out" / "frame.dng"
        size = out.stat().st_size
    return {
        "visible": [h, w],
        "megapixels": h * w / 1e6,
        "seconds": wall,
        "peak_rss_gb": report["maxrss_kib"] * 1024 / 1e9,  # Linux reports KiB
        "output_bytes": size,
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--megapixels", type=float, default=24.0, help="size of the end-to-end DNG")
    p.add_argument("--modes", default="1t,2t,2w,auto", help="comma-separated: 1t, 2t, 2w, auto (see above)")
    p.add_argument("--compile", action="store_true", help="also every mode under torch.compile")
    p.add_argument("--repeats", type=int, default=3, help="interleaved throughput rounds")
    p.add_argument("--tile", type=int, default=1024, help="mosaic pixels, as predict.py")
    p.add_argument("--overlap", type=int, default=192, help="mosaic pixels, as predict.py")
    p.add_argument("--frame", type=int, default=2048, help="side of the throughput frame (mosaic)")
    p.add_argument("--ckpt", default=None, help="checkpoint (default: the shipped model)")
    p.add_argument("--skip-e2e", action="store_true", help="skip the end-to-end runs")
    p.add_argument("--ensemble", type=int, default=2, choices=ENSEMBLES, help="as predict.py (default 2)")
    p.add_argument(
        "--precision",
        default="auto",
        help="as predict.py (auto: bf16 on a CPU with AMX tiles, else fp32), or a comma list: fp32,bf16",
    )
    p.add_argument("--busy", action="store_true", help="one other process spins on the last CPU throughout")
    p.add_argument(
        "--busy-window",
        type=lambda v: tuple(float(x) for x in v.split(",")),
        default=None,
        metavar="START,END",
        help="end to end only: another process spins on the last CPU from START to END s into each run",
    )
    p.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/inference[_busy].json")
    args = p.parse_args(argv)
    quiet_warnings()
    modes = args.modes.split(",")
    for m in modes:
        if m not in MODES:
            p.error(f"--modes: {m!r} is not one of {sorted(MODES)}")
    auto = "bf16" if amx_bf16() else "fp32"
    args.precisions = [auto if x == "auto" else x for x in args.precision.split(",")]
    for x in args.precisions:
        if x not in DTYPES:
            p.error(f"--precision: {x!r} is not one of auto, {', '.join(DTYPES)}")
    if args.out is None:
        args.out = ROOT / "benchmarks" / "results" / f"inference{'_busy' if args.busy else ''}.json"
    spinner = _spinner() if args.busy else None
    try:
        return _measure(args, modes, spinner is not None)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()


def _spinner(settle: float = 0.5) -> subprocess.Popen:
    """Another process busy on the last CPU of this one's affinity mask until killed."""
    cpu = sorted(os.sched_getaffinity(0))[-1]
    code = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"
    proc = subprocess.Popen([sys.executable, "-c", code])
    time.sleep(settle)  # let it start spinning before anything is measured
    return proc


def _measure(args: argparse.Namespace, modes: list[str], busy: bool) -> dict:
    loaded = load_model(args.ckpt)
    net = loaded.net.eval()
    compiled = torch.compile(net) if args.compile else None
    nets = {
        f"{kind}-{x}" if len(args.precisions) > 1 else kind: (module, DTYPES[x])
        for kind, module in (("eager", net), ("compiled", compiled))
        if module is not None
        for x in args.precisions
    }
    torch.set_num_threads(1)
    results = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
            "busy_spinner": busy,
            "busy_window_s": args.busy_window,
            "torch": torch.__version__,
            "pages": _pages.pages(),
        },
        "model": loaded.model,
        "ensemble": args.ensemble,
        "precision": args.precisions,
        "throughput": throughput(
            nets, modes, args.frame, args.tile, args.overlap, args.repeats, args.ensemble
        ),
        "efficiency": conv_efficiency(net, args.tile, dtype=DTYPES[args.precisions[0]]),  # one thread
        "end_to_end": {},
    }
    if not args.skip_e2e:
        with tempfile.TemporaryDirectory() as d:
            src = Path(d) / "frame.dng"
            make_dng(src, args.megapixels)
            for name, (_, dtype) in nets.items():
                for m in modes:
                    results["end_to_end"][f"{m}/{name}"] = end_to_end(
                        src,
                        m,
                        name.startswith("compiled"),
                        args.tile,
                        args.overlap,
                        args.ckpt,
                        args.busy_window,
                        args.ensemble,
                        next(k for k, v in DTYPES.items() if v == dtype),
                    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    e = results["efficiency"]
    arch = ", ".join(f"{k}={v}" for k, v in loaded.model["init_args"].items())
    print(
        f"model {loaded.model['class_path']}({arch}); load average at start "
        f"{results['machine']['load_average_at_start'][0]:.2f} on {os.cpu_count()} cores, {_pages.pages()}"
        + ("; another process spinning on one core throughout" if busy else "")
        + (f"; end to end: another process spinning {args.busy_window} s in" if args.busy_window else "")
        + f"; ensemble {args.ensemble}; precision {','.join(args.precisions)}"
    )
    print(
        f"network {e['net_gflop_per_mosaic_megapixel']:.2f} GFLOP per mosaic MP; one thread, "
        f"{args.precisions[0]}: "
        f"{e['net_gflops']:.1f} GFLOP/s on a {args.tile}px tile, a large Conv2d {e['conv_gflops']:.1f} "
        f"(efficiency {e['ratio']:.2f})"
    )
    first = next(iter(nets))
    base = results["throughput"][f"1t/{first}"]["megapixels_per_s"] if "1t" in modes else None
    print("\n| mode | net | MP/s (frame) | x one thread | 24-MP end to end (s) | peak RSS (GB) |")
    print("|---|---|---:|---:|---:|---:|")
    for key, t in results["throughput"].items():
        m, name = key.split("/")
        r = results["end_to_end"].get(key)
        rel = f"{t['megapixels_per_s'] / base:.2f}" if base else "-"
        e2e = f"{r['seconds']:.1f} | {r['peak_rss_gb']:.2f}" if r else "- | -"
        print(f"| {m} | {name} | {t['megapixels_per_s']:.2f} | {rel} | {e2e} |")
    return results


if __name__ == "__main__":
    main()
