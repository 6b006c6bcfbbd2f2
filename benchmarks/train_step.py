"""Training-step benchmark of the conditioned UNet, and of the cached DataLoader that feeds it.

    python benchmarks/train_step.py [--base-width 16] [--depth 3] [--batch 8] [--crop 64]
                                    [--reps 15] [--warmup 3] [--threads N] [--data-root DIR]
                                    [--channels-last] [--precision bf16]

1. **Conditioning cost**: one optimiser step (forward, L1 loss, backward, Adam) of the UNet with
   ``conditioning`` msconv, none and tile_concat on the same random batch, and one inference
   tile (``--tile`` packed pixels, batch 1, ``torch.inference_mode``). Interleaved: every
   repetition runs each variant once, in turn, so a slow spell on the shared machine hits them
   all; medians of the per-repetition ratios after warm-up. ``--compile`` runs every variant
   under ``torch.compile`` (compiled in the warm-up). Targets: msconv / none <= 1.02 (issue 15);
   tile_concat / msconv is reported beside it. ``--channels-last`` gives the images that layout
   and ``--precision bf16`` runs steps and tiles under bf16 autocast (predict's tiles on a CPU
   with AMX tiles run both). ``--fuse-epilogues`` runs the tiles with ``UNet.fuse_epilogues()``
   (every LeakyReLU a compiled kernel, MSConv2d's side terms added in its pass).
2. **Data rate**: batches per second that ``RawDataModule.train_dataloader()`` (sample data,
   decode cache already filled by ``prepare_data``) delivers, against the batches per second the
   msconv model consumes. Target: >= 3x (data never limits training on the CPU).

Results print as a Markdown table and are saved to ``benchmarks/results/train_step.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import _pages  # before torch: the memory tuned as the programs run
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _quiet import quiet_warnings  # noqa: E402

from isp.lit import denoise_loss  # noqa: E402
from isp.models import UNet, count_parameters  # noqa: E402

VARIANTS = ("msconv", "none", "tile_concat")


def make_batch(batch: int, crop: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(batch, 4, crop, crop, generator=g) * 0.5
    return {
        "image": clean + 0.05 * torch.randn(clean.shape, generator=g),
        "target": clean,
        "row": torch.randn(batch, 5, crop, generator=g),
        "col": torch.randn(batch, 5, crop, generator=g),
        "scalar": torch.randn(batch, 5, generator=g),
    }


def make_step(net: torch.nn.Module, batch: dict, autocast_dtype: torch.dtype | None = None):
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)

    def step() -> None:
        with torch.autocast(
            "cpu", dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None
        ):
            pred = net(batch["image"], batch["row"], batch["col"], batch["scalar"])
        loss = denoise_loss(pred.float(), batch["target"], "l1")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def _interleaved(calls: dict, reps: int, warmup: int) -> tuple[dict, dict]:
    """Wall-clock and process CPU seconds per call (CPU time is steadier on a shared machine)."""
    times = {v: [] for v in calls}
    cpu = {v: [] for v in calls}
    for rep in range(warmup + reps):
        for variant in calls:
            t0, c0 = time.perf_counter(), time.process_time()
            calls[variant]()
            if rep >= warmup:
                times[variant].append(time.perf_counter() - t0)
                cpu[variant].append(time.process_time() - c0)
    return times, cpu


def _ratio(times: dict, a: str, b: str) -> float:
    return statistics.median(x / y for x, y in zip(times[a], times[b], strict=True))


def time_steps(args) -> dict:
    batch = make_batch(args.batch, args.crop)
    g = torch.Generator().manual_seed(1)
    t = args.tile
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    batch["image"] = batch["image"].contiguous(memory_format=layout)
    dtype = torch.bfloat16 if args.precision == "bf16" else None
    tile = (
        torch.rand(1, 4, t, t, generator=g).contiguous(memory_format=layout),
        torch.randn(1, 5, t, generator=g),
        torch.randn(1, 5, t, generator=g),
        torch.randn(1, 5, generator=g),
    )
    steps, infer, params = {}, {}, {}
    for variant in VARIANTS:
        torch.manual_seed(0)
        net = UNet(base_width=args.base_width, depth=args.depth, conditioning=variant)
        params[variant] = count_parameters(net)
        run = torch.compile(net) if args.compile else net
        steps[variant] = make_step(run, batch, dtype)
        torch.manual_seed(0)
        eval_net = UNet(base_width=args.base_width, depth=args.depth, conditioning=variant).eval()
        eval_net.fuse_epilogues(args.fuse_epilogues)
        eval_run = torch.compile(eval_net) if args.compile else eval_net

        def forward(net=eval_run) -> None:
            with (
                torch.inference_mode(),
                torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None),
            ):
                net(*tile)

        infer[variant] = forward
    step_times, step_cpu = _interleaved(steps, args.reps, args.warmup)
    tile_times, tile_cpu = _interleaved(infer, args.reps, args.warmup)
    return {
        "cpu_msconv_over_none": _ratio(step_cpu, "msconv", "none"),
        "cpu_tile_msconv_over_none": _ratio(tile_cpu, "msconv", "none"),
        "median_s": {v: statistics.median(t) for v, t in step_times.items()},
        "tile_median_s": {v: statistics.median(t) for v, t in tile_times.items()},
        "params": params,
        "msconv_over_none": _ratio(step_times, "msconv", "none"),
        "tile_concat_over_msconv": _ratio(step_times, "tile_concat", "msconv"),
        "tile_msconv_over_none": _ratio(tile_times, "msconv", "none"),
        "tile_tile_concat_over_msconv": _ratio(tile_times, "tile_concat", "msconv"),
    }


def data_rate(args, model_step_s: float) -> dict:
    from isp.data import RawDataModule

    dm = RawDataModule(
        root=args.data_root,
        source="sample",
        crop_size=args.crop,
        batch_size=args.batch,
        num_workers=args.workers,
        cache_dir=args.cache_dir,
    )
    dm.prepare_data()
    dm.setup("fit")
    loader = dm.train_dataloader()
    n = 0
    t0 = None
    for epoch in range(100):
        for i, _ in enumerate(loader):
            if epoch == 0 and i == 0:
                t0 = time.perf_counter()  # start after the first batch (worker start-up)
                continue
            n += 1
            if n >= args.data_batches:
                break
        if n >= args.data_batches:
            break
    elapsed = time.perf_counter() - t0
    loader_rate = n / elapsed
    model_rate = 1.0 / model_step_s
    return {
        "batches": n,
        "loader_batches_per_s": loader_rate,
        "model_batches_per_s": model_rate,
        "loader_over_model": loader_rate / model_rate,
        "workers": args.workers,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=64, help="packed pixels")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--tile", type=int, default=256, help="packed side of the inference tile")
    parser.add_argument("--compile", action="store_true", help="every variant under torch.compile")
    parser.add_argument("--channels-last", action="store_true", help="images channels-last")
    parser.add_argument(
        "--fuse-epilogues", action="store_true", help="tiles: UNet.fuse_epilogues() (compiled activations)"
    )
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="bf16: autocast")
    parser.add_argument("--data-root", default="data/sample")
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--data-batches", type=int, default=60)
    parser.add_argument("--skip-data", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train_step.json"))
    args = parser.parse_args(argv)
    quiet_warnings()
    if args.threads:
        torch.set_num_threads(args.threads)
    result = {
        "config": vars(args),
        "torch": torch.__version__,
        "pages": _pages.pages(),
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
    }
    result["step"] = time_steps(args)
    step = result["step"]
    print(
        f"UNet base_width={args.base_width} depth={args.depth}, "
        f"batch {args.batch}x4x{args.crop}x{args.crop}, inference tile 1x4x{args.tile}x{args.tile}, "
        f"{args.reps} interleaved reps, {torch.get_num_threads()} threads, {_pages.pages()}"
        f"{', torch.compile' if args.compile else ', eager'}"
        f"{', channels_last' if args.channels_last else ''}"
        f"{', bf16 autocast' if args.precision == 'bf16' else ''}"
        f"{', fused epilogues (tiles)' if args.fuse_epilogues else ''}"
    )
    print("| conditioning | params | median step (ms) | median tile (ms) |")
    print("|---|---:|---:|---:|")
    for v in VARIANTS:
        print(
            f"| {v} | {step['params'][v]:,} | {1000 * step['median_s'][v]:.1f} "
            f"| {1000 * step['tile_median_s'][v]:.1f} |"
        )
    print(
        f"\nmsconv / none (median of per-rep ratios): step {step['msconv_over_none']:.3f}, "
        f"tile {step['tile_msconv_over_none']:.3f} (target <= 1.02)"
    )
    print(
        f"tile_concat / msconv: step {step['tile_concat_over_msconv']:.3f}, "
        f"tile {step['tile_tile_concat_over_msconv']:.3f}"
    )
    if not args.skip_data:
        result["data"] = data_rate(args, step["median_s"]["msconv"])
        d = result["data"]
        print(
            f"\nDataLoader (cached, {d['workers']} workers): {d['loader_batches_per_s']:.1f} batches/s; "
            f"model consumes {d['model_batches_per_s']:.1f} batches/s; "
            f"ratio {d['loader_over_model']:.1f}x (target >= 3)"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
