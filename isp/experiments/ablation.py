"""The results study: conditioning variants x seeds, classical baselines, tables, JSON and a plot.

``python -m isp.experiments.ablation --out docs`` trains, with identical data, seeds,
hyper-parameters and step budget, the UNet of :mod:`isp.models.unet` in these variants:

=================  ============  ===============================================================
variant            conditioning  side inputs the network reads
=================  ============  ===============================================================
msconv             msconv        scalars + per-row and per-column noise vectors (the default)
tile_concat        tile_concat   the same, broadcast to constant channels (MSConv2d's reference)
film               film          the same, as a per-channel scale/shift (FiLM)
none               none          nothing (blind denoiser)
msconv_scalars     msconv        scalars only
msconv_flat        msconv        scalars + each vector channel's mean over the frame, appended to
                                 the scalars (the vectors "flattened" into scalars)
=================  ============  ===============================================================

Data: the clean frames of the procedural sample set (:mod:`isp.data.synth`) with calibrated noise
drawn on the fly (:class:`isp.noise.SyntheticNoise`, SonyA7S2 profile, ISO log-uniform in
100..25600, ELD's per-shot spread of the noise scales, row noise on the masked columns too),
through :class:`isp.data.RawDataModule` (``source="synthetic"``) exactly as ``train.py`` reads
it. The held-out test set is every clean test frame at each of the nine stops ISO 100..25600,
with noise fixed by a seed (the same images for every method and every seed).

Training: :class:`isp.lit.DenoiseModule` (L1 loss, Adam, cosine decay to 0 over the run) driven
by a Lightning ``Trainer(max_steps=...)``, no validation, seeded by ``seed_everything`` (weights,
crop positions, flips, noise draws). Evaluation: per-image PSNR/SSIM raw and sRGB
(:mod:`isp.experiments.evaluate`), per ISO bucket.

Baselines on the same test images: the noisy input, and BM3D after the generalised Anscombe
transform given each image's TRUE noise parameters (:mod:`isp.experiments.baselines`), recovered
by replaying the dataset's random draws (:func:`true_noise_params`).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import os
import platform
import shlex
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from isp.data.synth import parse_size
from isp.experiments.evaluate import DEFAULT_ISO_EDGES, METRICS, bucket_names, bucket_of, image_metrics

__all__ = [
    "VARIANTS",
    "SideInputs",
    "StudyConfig",
    "Variant",
    "build_net",
    "main",
    "make_test_set",
    "run_study",
    "side_inputs",
    "true_noise_params",
]

TEST_ISOS = tuple(100.0 * 2**k for k in range(9))  # 100 .. 25600


@dataclass(frozen=True)
class Variant:
    """One arm of the study.

    Attributes:
        name: key in :data:`VARIANTS` and in the outputs.
        label: human-readable name for tables and the plot.
        conditioning: the UNet's ``conditioning``.
        inputs: which side inputs reach the network: "full", "scalars" or "flat" (see
            :func:`side_inputs`).
    """

    name: str
    label: str
    conditioning: str
    inputs: str = "full"
    description: str = ""


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            "msconv",
            "msconv (default)",
            "msconv",
            "full",
            "MSConv2d at every stage; scalars + per-row and per-column noise vectors",
        ),
        Variant(
            "tile_concat",
            "tile_concat",
            "tile_concat",
            "full",
            "the same inputs broadcast to constant channels and concatenated (MSConv2d's reference)",
        ),
        Variant(
            "film",
            "film",
            "film",
            "full",
            "plain convs, per-channel scale/shift from the scalars and the vectors' frame means",
        ),
        Variant("none", "none (blind)", "none", "full", "plain convs; no side input at all"),
        Variant(
            "msconv_scalars",
            "msconv, scalars only",
            "msconv",
            "scalars",
            "MSConv2d with the 5 scalars only (no row/column vectors)",
        ),
        Variant(
            "msconv_flat",
            "msconv, vectors flattened",
            "msconv",
            "flat",
            "MSConv2d with the 5 scalars + the frame mean of each of the 5 row and 5 column "
            "vector channels (15 scalars, no per-row resolution)",
        ),
    )
}


def side_inputs(
    row: Tensor | None, col: Tensor | None, scalar: Tensor | None, inputs: str = "full"
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Select or reshape the side inputs for a variant.

    Args:
        row: ``(N, C2, H)``.
        col: ``(N, C3, W)``.
        scalar: ``(N, C4)``.
        inputs: "full" (unchanged), "scalars" (row and col dropped) or "flat" (row and col
            replaced by their means along H and W, appended to the scalars).

    Returns:
        ``(row, col, scalar)``; for "flat" ``(None, None, (N, C4 + C2 + C3))``.

    Example:
        >>> r, c, s = side_inputs(torch.ones(2, 5, 8), torch.zeros(2, 5, 6), torch.full((2, 5), 3.0), "flat")
        >>> r, c, s.shape, s[0, 5:].tolist()
        (None, None, torch.Size([2, 15]), [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    """
    if inputs == "full":
        return row, col, scalar
    if inputs == "scalars":
        return None, None, scalar
    if inputs == "flat":
        if row is None or col is None or scalar is None:
            raise ValueError("Expected `row`, `col` and `scalar` for inputs='flat'. Got a None.")
        return None, None, torch.cat([scalar, row.mean(-1), col.mean(-1)], dim=1)
    raise ValueError(f"Expected `inputs` to be 'full', 'scalars' or 'flat'. Got {inputs!r}.")


class SideInputs(nn.Module):
    """Wraps a network so that it sees only the side inputs of a variant (module form of :func:`side_inputs`).

    Shapes: ``image (N, 4, H, W), row (N, C2, H), col (N, C3, W), scalar (N, C4) -> net's output``.

    Args:
        net: the wrapped network ``net(image, row, col, scalar)``.
        inputs: "full", "scalars" or "flat".

    Example:
        >>> from isp.models import UNet
        >>> m = SideInputs(UNet(row_channels=0, col_channels=0, scalar_channels=15, base_width=4, depth=1),
        ...                "flat")
        >>> m(torch.rand(1, 4, 8, 8), torch.rand(1, 5, 8), torch.rand(1, 5, 8), torch.rand(1, 5)).shape
        torch.Size([1, 4, 8, 8])
    """

    def __init__(self, net: nn.Module, inputs: str = "full") -> None:
        super().__init__()
        if inputs not in ("full", "scalars", "flat"):
            raise ValueError(f"Expected `inputs` to be 'full', 'scalars' or 'flat'. Got {inputs!r}.")
        self.net = net
        self.inputs = inputs

    def forward(
        self,
        image: Tensor,
        row: Tensor | None = None,
        col: Tensor | None = None,
        scalar: Tensor | None = None,
    ) -> Tensor:
        """Run the wrapped network on the variant's side inputs."""
        return self.net(image, *side_inputs(row, col, scalar, self.inputs))

    def extra_repr(self) -> str:
        """Which side inputs the wrapped network reads."""
        return f"inputs={self.inputs!r}"


def build_net(variant: Variant, *, base_width: int, depth: int, channels: tuple[int, int, int] = (5, 5, 5)):
    """The variant's UNet wrapped in :class:`SideInputs`.

    Args:
        variant: the study arm.
        base_width: UNet width of the first level.
        depth: UNet depth.
        channels: ``(C2, C3, C4)`` of the data (row, column, scalar channels).

    Example:
        >>> build_net(VARIANTS["msconv_flat"], base_width=4, depth=1).net.side_channels
        (0, 0, 15)
    """
    from isp.models import UNet

    c2, c3, c4 = channels
    if variant.inputs == "scalars":
        c2, c3 = 0, 0
    elif variant.inputs == "flat":
        c2, c3, c4 = 0, 0, c4 + c2 + c3
    net = UNet(
        row_channels=c2,
        col_channels=c3,
        scalar_channels=c4,
        base_width=base_width,
        depth=depth,
        conditioning=variant.conditioning,
    )
    return SideInputs(net, variant.inputs)


def true_noise_params(dataset, index: int):
    """The noise parameters (DN) that ``dataset[index]`` was synthesised with, for an evaluation item.

    An evaluation item of :class:`isp.data.dataset.RawPairDataset` with synthetic noise draws
    from ``numpy.random.default_rng([dataset.seed, index])``: first the ISO
    (``noise.sample_iso``), then, with ``jitter``, the calibration's per-shot spread of the read
    and row scales (``profile.params(iso, dn_range, rng)``), then the pixels. Replaying the first
    two draws gives the exact parameters (a test checks that the replayed parameters regenerate the
    item bit for bit).

    Args:
        dataset: a ``RawPairDataset`` with ``train=False`` and a ``SyntheticNoise``.
        index: the item.

    Returns:
        ``(NoiseParams in DN, iso, dn_range)`` where ``dn_range = white - mean(black)`` of the frame.
    """
    from isp.noise import get_profile

    if dataset.train or dataset.noise is None:
        raise ValueError("Expected an evaluation dataset (train=False) with synthetic `noise`.")
    pair = dataset.pairs[index]
    frame = dataset.cache.load_frame(pair.clean, dataset.keys[pair.clean])
    dn_range = float(frame.white_level) - float(np.mean(frame.black_level))
    rng = np.random.default_rng([dataset.seed, index])
    noise = dataset.noise
    iso = noise.sample_iso(rng)
    params = get_profile(noise.profile).params(iso, dn_range=dn_range, rng=rng if noise.jitter else None)
    if noise.read_noise == "gaussian":
        params = params.as_gaussian()
    return params, iso, dn_range


def make_test_set(
    pairs,
    cache,
    *,
    isos=TEST_ISOS,
    seed: int = 1000,
    crop_size: int | None = 64,
    profile: str = "SonyA7S2",
    jitter: bool = True,
):
    """The fixed held-out test set: every test pair's clean frame at every ISO of ``isos``.

    Args:
        pairs: the data module's pairs (the ``test`` split is used).
        cache: the data module's :class:`~isp.data.cache.DecodeCache`.
        isos: ISO stops.
        seed: base seed; stop ``k`` uses ``seed + k`` (noise fixed per item).
        crop_size: centre crop in packed pixels (None: whole frames).
        profile: the noise calibration.
        jitter: draw ELD's per-shot spread of the scales (as in training).

    Returns:
        A list of ``(dataset, index)``: one ``RawPairDataset`` per ISO, each item in order.
    """
    from isp.data.dataset import RawPairDataset
    from isp.noise import SyntheticNoise

    test = [p for p in pairs if p.split == "test"]
    if not test:
        raise ValueError("Expected clean frames in the 'test' split for the study's test set. Found none.")
    items = []
    for k, iso in enumerate(isos):
        noise = SyntheticNoise(profile=profile, iso_range=(iso, iso), jitter=jitter)
        ds = RawPairDataset(test, cache, crop_size=crop_size, train=False, noise=noise, seed=seed + k)
        items += [(ds, i) for i in range(len(ds))]
    return items


@dataclass
class TestSet:
    """The materialised test images (identical inputs for every method) and their true noise.

    Attributes:
        samples: the dataset items (dicts of the contract, see :mod:`isp.data.dataset`).
        noise: per item ``(NoiseParams in DN, iso, dn_range)`` from :func:`true_noise_params`.
    """

    samples: list[dict]
    noise: list[tuple]

    @classmethod
    def from_items(cls, items) -> TestSet:
        """Load every ``(dataset, index)`` of :func:`make_test_set` once."""
        samples = [ds[i] for ds, i in items]
        noise = [true_noise_params(ds, i) for ds, i in items]
        for sample, (_, iso, _) in zip(samples, noise, strict=True):
            if abs(iso - float(sample["iso"])) > 1e-3 * iso:
                raise RuntimeError(f"Replayed ISO {iso} differs from the item's {float(sample['iso'])}.")
        return cls(samples, noise)

    def __len__(self) -> int:
        return len(self.samples)

    def batches(self, batch_size: int):
        """Yield collated batches in order."""
        for start in range(0, len(self.samples), batch_size):
            chunk = self.samples[start : start + batch_size]
            batch = {k: torch.stack([c[k] for c in chunk]) for k in chunk[0] if k != "path"}
            batch["path"] = [c["path"] for c in chunk]
            yield batch


def _records(batch: dict, metrics: dict[str, Tensor], edges) -> list[dict]:
    out = []
    for j in range(batch["image"].shape[0]):
        iso = float(batch["iso"][j])
        name = f"{Path(batch['path'][j]).stem}@iso{iso:g}"
        rec = {"name": name, "iso": iso, "bucket": bucket_of(iso, edges)}
        rec.update({k: round(float(metrics[k][j]), 5) for k in METRICS})
        out.append(rec)
    return out


@torch.no_grad()
def evaluate_net(
    net: nn.Module, test: TestSet, *, batch_size: int = 8, edges=DEFAULT_ISO_EDGES
) -> list[dict]:
    """Per-image metrics of ``net`` on the test set."""
    net.eval()
    out = []
    for batch in test.batches(batch_size):
        pred = net(batch["image"], batch["row"], batch["col"], batch["scalar"])
        out += _records(batch, image_metrics(pred, batch["target"], batch["wb"], batch["cam_to_srgb"]), edges)
    return out


def evaluate_noisy(test: TestSet, *, batch_size: int = 8, edges=DEFAULT_ISO_EDGES) -> list[dict]:
    """Per-image metrics of the noisy input itself."""
    out = []
    for batch in test.batches(batch_size):
        m = image_metrics(batch["image"], batch["target"], batch["wb"], batch["cam_to_srgb"])
        out += _records(batch, m, edges)
    return out


def evaluate_bm3d(
    test: TestSet, *, row_aware: bool = True, edges=DEFAULT_ISO_EDGES
) -> tuple[list[dict], float]:
    """Per-image metrics of BM3D-VST given each image's true noise parameters; also seconds per image."""
    from isp.experiments.baselines import bm3d_vst, noise_in_normalised_units

    out = []
    seconds = 0.0
    for batch, (params, _, dn_range) in zip(test.batches(1), test.noise, strict=True):
        amplification = float(2.0 ** batch["scalar"][0, 2])  # the log2(gain) channel
        noise = noise_in_normalised_units(params, dn_range, amplification)
        start = time.perf_counter()
        pred = bm3d_vst(batch["image"][0].numpy(), noise, row_aware=row_aware)
        seconds += time.perf_counter() - start
        m = image_metrics(torch.from_numpy(pred)[None], batch["target"], batch["wb"], batch["cam_to_srgb"])
        rec = _records(batch, m, edges)[0]
        rec["noise"] = {
            "K_dn": round(params.gain, 6),
            "read_var_dn2": round(params.read_variance, 6),
            "row_sigma_dn": round(params.row_sigma, 6),
            "dn_range": dn_range,
        }
        out.append(rec)
    return out, seconds / max(len(out), 1)


class StepTimer(L.Callback):
    """Lightning callback: wall time of each optimisation step (forward, backward, update), no data.

    It also keeps a fingerprint of the data stream (the sum of every training input and target),
    which shows that two runs with the same seed saw the same batches.
    """

    def __init__(self) -> None:
        self.times: list[float] = []
        self.fingerprint = 0.0
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        """Start the clock (the batch is already loaded)."""
        self.fingerprint += float(batch["image"].double().sum() + 0.5 * batch["target"].double().sum())
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """Stop the clock (after the optimiser step)."""
        self.times.append(time.perf_counter() - self._start)


@dataclass
class StudyConfig:
    """Everything that defines the study (recorded in the outputs).

    Attributes:
        out: folder for ``results.md``, ``results.json``, ``results_psnr_vs_iso.png``.
        data_root: where the clean sample frames are generated.
        cache_dir: decode cache.
        variants: names from :data:`VARIANTS`.
        seeds: training seeds (each variant runs once per seed).
        steps: optimisation steps per run (the same for every variant).
        batch_size: training batch size.
        crop_size: training crop side, packed pixels.
        lr: Adam learning rate (cosine decay to 0 over ``steps``).
        loss: :class:`isp.lit.DenoiseModule` loss; "psnr" (mean over images of the per-image log
            MSE: the reported metric itself, and the quickstart config's choice) by default.
        base_width: UNet width.
        depth: UNet depth.
        n_train: clean training frames.
        n_test: clean test frames (each at the nine ISO stops).
        size: ``(H, W)`` of the generated frames (mosaic pixels).
        test_crop: centre crop of test frames, packed pixels.
        test_isos: ISO stops of the test set (each test frame at each).
        data_seed: seed of the generated frames and of the test noise.
        profile: noise calibration.
        threads: ``torch.set_num_threads`` of the study process. 1 by default: on the shared 2-core
            machine, 2 threads made some steps 10-40x slower (OpenMP threads waiting for each
            other under contention) while 1 thread was steady.
        num_workers: DataLoader workers (spawned) synthesising the training noise beside the
            training thread.
        bm3d: run the BM3D-VST baseline.
        eval_batch_size: batch size at evaluation.
    """

    out: str = "docs"
    data_root: str = "data/ablation"
    cache_dir: str = "cache/ablation"
    variants: tuple[str, ...] = tuple(VARIANTS)
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 600
    batch_size: int = 8
    crop_size: int = 48
    lr: float = 1e-3
    loss: str = "psnr"
    base_width: int = 16
    depth: int = 3
    n_train: int = 128
    n_test: int = 6
    size: tuple[int, int] = (128, 160)
    test_crop: int | None = 60
    test_isos: tuple[float, ...] = TEST_ISOS
    data_seed: int = 0
    profile: str = "SonyA7S2"
    threads: int = 1
    num_workers: int = 0
    bm3d: bool = True
    eval_batch_size: int = 8


def _datamodule(cfg: StudyConfig, num_workers: int | None = None):
    from isp.data.datamodule import RawDataModule
    from isp.noise import SyntheticNoise

    return RawDataModule(
        root=cfg.data_root,
        source="synthetic",
        manifest="pairs.csv",
        noise=SyntheticNoise(profile=cfg.profile, iso_range=(100.0, 25600.0), jitter=True),
        crop_size=cfg.crop_size,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers if num_workers is None else num_workers,
        cache_dir=cfg.cache_dir,
        train_repeat=max(1, 4096 // max(cfg.n_train, 1)),
        seed=cfg.data_seed,
    )


def benchmark_steps(
    cfg: StudyConfig, batch: dict, *, rounds: int = 3, steps: int = 8, warmup: int = 2
) -> dict[str, float]:
    """Median seconds of one plain-PyTorch training step (forward, L1, backward, Adam) per variant.

    The variants are interleaved round by round on the same batch, so a slower moment of a shared
    machine hits them all alike; the median over every timed step is returned.

    Args:
        cfg: the study configuration (variants, widths).
        batch: one training batch of the contract.
        rounds: interleaved rounds.
        steps: timed steps per variant per round.
        warmup: untimed steps per variant before the first round.
    """
    nets, opts, times = {}, {}, {}
    for name in cfg.variants:
        torch.manual_seed(0)
        nets[name] = build_net(VARIANTS[name], base_width=cfg.base_width, depth=cfg.depth)
        opts[name] = torch.optim.Adam(nets[name].parameters(), lr=cfg.lr)
        times[name] = []
    inputs = (batch["image"], batch["row"], batch["col"], batch["scalar"])

    def step(name: str) -> None:
        loss = torch.nn.functional.l1_loss(nets[name](*inputs), batch["target"])
        opts[name].zero_grad(set_to_none=True)
        loss.backward()
        opts[name].step()

    for name in cfg.variants:
        for _ in range(warmup):
            step(name)
    for _ in range(rounds):
        for name in cfg.variants:
            for _ in range(steps):
                start = time.perf_counter()
                step(name)
                times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def train_run(cfg: StudyConfig, variant: Variant, seed: int) -> tuple[nn.Module, dict]:
    """Train one (variant, seed) for ``cfg.steps`` steps; returns the net and timing statistics.

    A fresh data module per run: its training generator is keyed to ``torch.initial_seed()``,
    so every variant trained with the same seed draws the same crops, flips and noise.
    """
    from isp.lit import DenoiseModule
    from isp.models import count_parameters

    L.seed_everything(seed, workers=True, verbose=False)
    net = build_net(variant, base_width=cfg.base_width, depth=cfg.depth)
    module = DenoiseModule(
        net,
        loss=cfg.loss,
        optimizer=functools.partial(torch.optim.Adam, lr=cfg.lr),
        scheduler=functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=cfg.steps),
        scheduler_interval="step",
        num_previews=0,
        srgb_metrics=False,
    )
    timer = StepTimer()
    trainer = L.Trainer(
        max_steps=cfg.steps,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[timer],
    )
    L.seed_everything(seed, workers=True, verbose=False)  # same data stream whatever the init consumed
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(num_workers|bottleneck|does not have many workers).*")
        trainer.fit(module, datamodule=_datamodule(cfg))
    wall = time.perf_counter() - start
    times = np.array(timer.times[5:] or timer.times)
    stats = {
        "seed": seed,
        "steps": int(trainer.global_step),
        "train_seconds": round(wall, 2),
        "step_time_s": float(np.median(times)),
        "wall_per_step_s": wall / max(trainer.global_step, 1),
        "parameters": count_parameters(net),
        "final_train_loss": float(trainer.callback_metrics.get("train/loss_step", math.nan)),
        "data_fingerprint": timer.fingerprint,
    }
    return net, stats


def _iso_series(study: dict) -> dict:
    """``{label: (isos, means, stds)}`` of PSNR raw per ISO stop (seeds every variant finished)."""
    from isp.experiments.report import complete_seeds

    study = complete_seeds(study)
    series = {}
    methods = [(k, v["label"], [v["per_image"]]) for k, v in study["baselines"].items()]
    methods += [(k, v["label"], [r["per_image"] for r in v["runs"]]) for k, v in study["variants"].items()]
    for _, label, runs in methods:
        if not runs or not runs[0]:
            continue
        isos = sorted({r["iso"] for r in runs[0]})
        means, stds = [], []
        for iso in isos:
            per_seed = [np.mean([r["psnr_raw"] for r in run if r["iso"] == iso]) for run in runs]
            means.append(float(np.mean(per_seed)))
            stds.append(float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0)
        series[label] = (isos, means, stds)
    return series


def write_outputs(study: dict, out: str | os.PathLike) -> None:
    """Write ``results.json``, ``results.md`` and ``results_psnr_vs_iso.png`` into ``out``."""
    from isp.experiments.report import plot_psnr_vs_iso, write_json, write_markdown

    out = Path(out)
    write_json(study, out / "results.json")
    write_markdown(study, out / "results.md")
    series = _iso_series(study)
    if series:
        plot_psnr_vs_iso(
            series,
            out / "results_psnr_vs_iso.png",
            title="Raw PSNR vs ISO on the held-out test set (mean ± std over seeds)",
            ylabel="PSNR raw (dB)",
        )


def _setup_lines(cfg: StudyConfig, study: dict) -> list[str]:
    n_test_items = len(next(iter(study["baselines"].values()))["per_image"]) if study["baselines"] else 0
    runs = [r for v in study["variants"].values() for r in v["runs"]]
    total_train = sum(r["train_seconds"] for r in runs)
    wall = study["config"].get("wall_seconds", 0.0)
    crop = "whole frames" if cfg.test_crop is None else f"centre {cfg.test_crop}x{cfg.test_crop} packed crop"
    lines = [
        f"Machine: {platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{cfg.threads} torch threads, shared with other jobs while it ran (timings are indicative).",
        f"Budget: {cfg.steps} optimisation steps per run, batch {cfg.batch_size} crops of "
        f"{cfg.crop_size}x{cfg.crop_size} packed pixels ({2 * cfg.crop_size}x{2 * cfg.crop_size} mosaic); "
        f"{len(cfg.seeds)} seeds ({', '.join(map(str, cfg.seeds))}) x {len(cfg.variants)} variants; "
        f"training wall time {total_train / max(len(runs), 1):.0f} s per run on average, "
        f"{total_train / 60:.1f} min in all ({len(runs)} runs). A tiny budget: the networks are "
        "far "
        "from converged, so the table compares the variants early in training. Whole study (data, "
        f"baselines, benchmark, all runs, evaluation): {wall / 60:.1f} min.",
        f"Model: UNet (isp.models.UNet) base_width {cfg.base_width}, depth {cfg.depth}, residual, "
        "zero-initialised "
        "head; the same for every variant except the conditioning and the side inputs it reads.",
        f"Optimisation: isp.lit.DenoiseModule, loss {cfg.loss!r}, Adam lr {cfg.lr:g} with cosine decay to 0 "
        "over the run, "
        "Lightning Trainer(max_steps), no validation; `seed_everything(seed)` before building the net and "
        "again before fitting, so every variant sees the same crops, flips and noise draws for a given seed.",
        f"Data: {cfg.n_train} clean training frames of {cfg.size[0]}x{cfg.size[1]} from `isp.data.synth` "
        f"(dead-leaves scenes, three virtual cameras, four CFA phases; seed {cfg.data_seed}) with noise "
        f"synthesised on the fly by `isp.noise.SyntheticNoise` ({cfg.profile} calibration, ISO log-uniform "
        "100..25600, per-shot jitter of the read and row scales, row noise on the masked columns too) "
        "through `isp.data.RawDataModule(source='synthetic')`.",
        f"Test set: {cfg.n_test} held-out clean frames x {len(cfg.test_isos)} ISO stops "
        f"({', '.join(f'{i:g}' for i in cfg.test_isos)}) = {n_test_items} images, "
        f"{crop}, noise fixed by seed 1000 + stop index; the same "
        "images for every method and seed.",
        "Step time: 'plain' is the median of one forward + L1 + backward + Adam step in plain PyTorch on "
        "one fixed training batch, the variants interleaved (3 rounds x 8 steps); 'in Lightning' is the "
        "median optimisation step inside the Trainer during the runs (callback from batch start to batch "
        "end: data loading excluded, Lightning's hooks and logging included), mean ± std over seeds. "
        "Parameters: trainable parameters of the network.",
    ]
    if "bm3d_vst" in study["baselines"]:
        sec = study["baselines"]["bm3d_vst"].get("seconds_per_image", math.nan)
        lines.append(
            "BM3D-VST: `bm3d` 4.x ('np' profile) per packed plane after the generalised Anscombe transform "
            "with each image's true K, read variance (+ quantisation) and row sigma, row noise given to "
            "BM3D as a row-constant power spectral density; closed-form exact unbiased inverse "
            f"(Makitalo & Foi, IEEE TIP 2011 / 2013). {sec:.1f} s per image."
        )
    return lines


def _row_noise_note(study: dict) -> str | None:
    recs = study["baselines"].get("bm3d_vst", {}).get("per_image", [])
    if not recs:
        return None
    parts = []
    for iso in (100.0, 1600.0, 25600.0):
        sel = [r["noise"] for r in recs if r["iso"] == iso]
        if not sel:
            continue
        ratio = []
        for n in sel:  # at 10% of white
            total = math.sqrt(n["K_dn"] * 0.1 * n["dn_range"] + n["read_var_dn2"] + n["row_sigma_dn"] ** 2)
            ratio.append(n["row_sigma_dn"] / total)
        row = float(np.mean([n["row_sigma_dn"] for n in sel]))
        parts.append(f"ISO {iso:g}: row sigma {row:.2f} DN = {100 * np.mean(ratio):.1f}% of the total")
    return (
        "Row noise in this data (SonyA7S2 calibration as implemented in `isp.noise`, mean over the test "
        "images, total noise std at 10% of white): " + "; ".join(parts) + ". It is a small part of the noise "
        "at these exposures, which bounds what the per-row vectors can add here."
    )


def _load_previous(path: Path, cfg_key: dict) -> dict | None:
    try:
        prev = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return prev if prev.get("config", {}).get("key") == cfg_key else None


def run_study(cfg: StudyConfig, *, command: str = "", resume: bool = False, log=print) -> dict:
    """Run the whole study and write its outputs after every step; returns the study dict.

    Args:
        cfg: the configuration.
        command: the command line to record.
        resume: reuse the baselines and runs of an existing ``results.json`` made with the same
            configuration (runs are then not repeated).
        log: a ``print``-like function for progress lines.
    """
    from isp.data import synth

    for name in cfg.variants:
        if name not in VARIANTS:
            raise ValueError(f"Expected `variants` from {sorted(VARIANTS)}. Got {name!r}.")
    if cfg.steps < 1 or not cfg.seeds:
        raise ValueError(f"Expected `steps` >= 1 and at least one seed. Got {cfg.steps} and {cfg.seeds!r}.")
    torch.set_num_threads(cfg.threads)
    key = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(cfg).items() if k not in ("out",)}
    study = {
        "config": {
            "key": key,
            "command": command,
            "groups": ["all", *bucket_names(DEFAULT_ISO_EDGES)],
            "iso_edges": list(DEFAULT_ISO_EDGES),
        },
        "baselines": {},
        "variants": {},
    }
    previous = _load_previous(Path(cfg.out) / "results.json", key) if resume else None
    t0 = time.perf_counter()
    synth.generate(
        cfg.data_root,
        n_train=cfg.n_train,
        n_val=1,
        n_test=cfg.n_test,
        size=tuple(cfg.size),
        seed=cfg.data_seed,
    )
    dm = _datamodule(cfg)
    dm.prepare_data()
    test = TestSet.from_items(
        make_test_set(dm.pairs(), dm.cache, isos=cfg.test_isos, crop_size=cfg.test_crop, profile=cfg.profile)
    )
    log(f"[{time.perf_counter() - t0:6.0f}s] data ready: {len(test)} test images")

    def save() -> None:
        study["config"]["wall_seconds"] = round(time.perf_counter() - t0, 1)
        study["config"]["setup_lines"] = _setup_lines(cfg, study)
        runs = [r for v in study["variants"].values() for r in v["runs"]]
        study["config"]["budget_line"] = (
            f"{cfg.steps} steps x batch {cfg.batch_size} per run, identical for every variant; "
            f"{len(cfg.seeds)} seeds planned, {len(runs)} runs done; about "
            f"{np.mean([r['train_seconds'] for r in runs]) if runs else 0:.0f} s of training per run on "
            f"{cfg.threads} CPU thread(s) of a shared 2-core machine; whole study "
            f"{study['config']['wall_seconds'] / 60:.0f} min."
        )
        note = _row_noise_note(study)
        study["config"]["notes"] = [note] if note else []
        write_outputs(study, cfg.out)

    if previous and previous.get("step_benchmark"):
        study["step_benchmark"] = previous["step_benchmark"]
    else:
        L.seed_everything(0, verbose=False)
        batch = next(iter(_datamodule(cfg, num_workers=0).train_dataloader()))
        study["step_benchmark"] = benchmark_steps(cfg, batch)
        log(
            f"[{time.perf_counter() - t0:6.0f}s] step benchmark: "
            + ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in study["step_benchmark"].items())
        )
    if previous and previous.get("baselines"):
        study["baselines"] = previous["baselines"]
    else:
        study["baselines"]["noisy"] = {"label": "noisy input", "per_image": evaluate_noisy(test)}
        if cfg.bm3d:
            recs, sec = evaluate_bm3d(test)
            study["baselines"]["bm3d_vst"] = {
                "label": "BM3D-VST (true noise)",
                "per_image": recs,
                "seconds_per_image": sec,
            }
    save()
    log(f"[{time.perf_counter() - t0:6.0f}s] baselines done")
    done = {}
    if previous:
        for name, var in previous.get("variants", {}).items():
            for run in var["runs"]:
                done[(name, run["seed"])] = (var, run)
    for seed in cfg.seeds:  # seed-major: an interrupted study still has whole seeds
        for name in cfg.variants:
            variant = VARIANTS[name]
            entry = study["variants"].setdefault(
                name,
                {
                    "label": variant.label,
                    "description": variant.description,
                    "conditioning": variant.conditioning,
                    "inputs": variant.inputs,
                    "parameters": None,
                    "runs": [],
                },
            )
            if (name, seed) in done:
                var, run = done[(name, seed)]
                entry["parameters"] = var["parameters"]
                entry["runs"].append(run)
                continue
            net, stats = train_run(cfg, variant, seed)
            stats["per_image"] = evaluate_net(net, test, batch_size=cfg.eval_batch_size)
            entry["parameters"] = stats["parameters"]
            entry["runs"].append(stats)
            save()
            psnr = np.mean([r["psnr_raw"] for r in stats["per_image"]])
            log(
                f"[{time.perf_counter() - t0:6.0f}s] {name} seed {seed}: {stats['steps']} steps in "
                f"{stats['train_seconds']:.0f} s (step {1000 * stats['step_time_s']:.0f} ms), "
                f"test PSNR raw {psnr:.2f} dB"
            )
    save()
    return study


def main(argv: list[str] | None = None) -> dict:
    """Command line: ``python -m isp.experiments.ablation [--steps N --seeds 0 1 2 ...]``."""
    d = StudyConfig()
    p = argparse.ArgumentParser(
        prog="python -m isp.experiments.ablation",
        description="Train the conditioning variants with identical data, seeds and budget; evaluate them "
        "and the classical baselines on a fixed test set; write results.md/.json and a PSNR-vs-ISO plot.",
    )
    p.add_argument("--out", default=d.out, help=f"output folder (default {d.out})")
    p.add_argument("--data-root", default=d.data_root, help=f"generated clean frames (default {d.data_root})")
    p.add_argument("--cache-dir", default=d.cache_dir, help=f"decode cache (default {d.cache_dir})")
    p.add_argument("--variants", nargs="+", default=list(d.variants), choices=list(VARIANTS))
    p.add_argument("--seeds", nargs="+", type=int, default=list(d.seeds))
    p.add_argument("--steps", type=int, default=d.steps, help=f"steps per run (default {d.steps})")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--crop-size", type=int, default=d.crop_size, help="training crop, packed pixels")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--loss", default=d.loss, choices=["l1", "l2", "charbonnier", "psnr"])
    p.add_argument("--base-width", type=int, default=d.base_width)
    p.add_argument("--depth", type=int, default=d.depth)
    p.add_argument("--n-train", type=int, default=d.n_train)
    p.add_argument("--n-test", type=int, default=d.n_test)
    p.add_argument("--size", type=parse_size, default=d.size, help="HxW of frames (default 128x160)")
    p.add_argument("--test-crop", type=int, default=d.test_crop)
    p.add_argument(
        "--test-isos", nargs="+", type=float, default=list(d.test_isos), help="ISO stops of the test set"
    )
    p.add_argument("--data-seed", type=int, default=d.data_seed)
    p.add_argument("--threads", type=int, default=d.threads, help="torch threads (default 1)")
    p.add_argument("--num-workers", type=int, default=d.num_workers, help="DataLoader workers (default 0)")
    p.add_argument("--no-bm3d", dest="bm3d", action="store_false", help="skip the BM3D-VST baseline")
    p.add_argument("--resume", action="store_true", help="reuse finished runs of OUT/results.json")
    a = p.parse_args(argv)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no per-run banner
    cfg = StudyConfig(
        out=a.out,
        data_root=a.data_root,
        cache_dir=a.cache_dir,
        variants=tuple(a.variants),
        seeds=tuple(a.seeds),
        steps=a.steps,
        batch_size=a.batch_size,
        crop_size=a.crop_size,
        lr=a.lr,
        loss=a.loss,
        base_width=a.base_width,
        depth=a.depth,
        n_train=a.n_train,
        n_test=a.n_test,
        size=tuple(a.size),
        test_crop=a.test_crop,
        test_isos=tuple(a.test_isos),
        data_seed=a.data_seed,
        threads=a.threads,
        num_workers=a.num_workers,
        bm3d=a.bm3d,
    )
    args = sys.argv[1:] if argv is None else argv
    command = "python -m isp.experiments.ablation " + " ".join(shlex.quote(x) for x in args)
    return run_study(cfg, command=command.strip(), resume=a.resume, log=lambda s: print(s, flush=True))


if __name__ == "__main__":
    main()
