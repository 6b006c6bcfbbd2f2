"""The conditioning study: every variant of configs/experiment trained and tested alike, plus baselines.

    python scripts/study.py --out docs --seeds 0 1 2             # docs/results.{md,json}, the plot
    python scripts/study.py --out /tmp/study --variants msconv tile_concat --seeds 0 --steps 50

Each (seed, variant) is one Lightning CLI run of ``train.py``'s ``DenoiseCLI``:
``fit --config configs/experiment/study.yaml --config configs/experiment/<variant>.yaml
--seed_everything <seed>``, then ``trainer.test`` of the trained module on the study's fixed test
set (every clean test frame at each of nine ISO stops, :func:`fixed_iso_test_set`): the DenoiseModule's own
loop and metrics. For one seed every variant sees the same crops, flips and noise draws (the
dataset's generator is keyed to the seed, not to what building the network consumed).

Baselines on the same test images, through the same test loop: the noisy input (the module's
``input_*`` metrics), and BM3D after the generalised Anscombe transform given each image's TRUE
noise parameters (:func:`isp.baselines.bm3d_vst`), recovered by replaying the dataset's random
draws (:func:`true_noise_params`).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import ConcatDataset

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import study_report  # noqa: E402

from isp.cli.train import main as cli_main  # noqa: E402
from isp.lit import DenoiseModule  # noqa: E402
from isp.models import count_parameters  # noqa: E402

EXPERIMENTS = ROOT / "configs" / "experiment"
TEST_ISOS = [100.0 * 2**k for k in range(9)]  # 100 .. 25600: one ISO bucket each in study.yaml
VARIANTS = ["msconv", "tile_concat", "film", "none", "msconv_scalars", "msconv_flat"]
LABELS = {
    "msconv": "msconv (default)",
    "none": "none (blind)",
    "msconv_scalars": "msconv, scalars only",
    "msconv_flat": "msconv, vectors flattened",
}


def true_noise_params(dataset, index: int):
    """The noise parameters (DN) that ``dataset[index]`` was synthesised with, for an evaluation item.

    An evaluation item of :class:`isp.data.dataset.RawPairDataset` with synthetic noise draws from
    ``numpy.random.default_rng([dataset.seed, index])``: first the ISO (``noise.sample_iso``), then,
    with ``jitter``, the calibration's per-shot spread of the read and row scales, then the pixels.
    Replaying the first two draws gives the exact parameters.

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


class Replay(nn.Module):
    """A "network" that returns precomputed outputs in order: a baseline through the test loop."""

    def __init__(self, outputs: list[torch.Tensor]) -> None:
        super().__init__()
        self.outputs, self.cursor = outputs, 0

    def forward(self, image, row=None, col=None, scalar=None):
        """The next ``image.shape[0]`` outputs (the test loader is not shuffled)."""
        n = image.shape[0]
        out = torch.stack(self.outputs[self.cursor : self.cursor + n]).to(image)
        if out.shape != image.shape:
            raise RuntimeError(f"Replay out of step: {tuple(out.shape)} for a batch {tuple(image.shape)}.")
        self.cursor += n
        return out


def bm3d_outputs(test_set) -> tuple[list[torch.Tensor], float]:
    """BM3D-VST of every test image with its true noise, in the loader's order; seconds per image."""
    from isp.baselines import bm3d_vst, noise_in_normalised_units

    outputs, start = [], time.perf_counter()
    for ds in test_set.datasets:
        for i in range(len(ds)):
            params, _, dn_range = true_noise_params(ds, i)
            image = ds[i]["image"].numpy()
            outputs.append(torch.from_numpy(bm3d_vst(image, noise_in_normalised_units(params, dn_range))))
    return outputs, (time.perf_counter() - start) / max(len(outputs), 1)


def _description(name: str) -> str:
    """The leading comment of ``configs/experiment/<name>.yaml``."""
    lines = (EXPERIMENTS / f"{name}.yaml").read_text().splitlines()
    return " ".join(line.lstrip("# ") for line in lines if line.startswith("#")).rstrip(".")


def _settings(cli) -> dict:
    """What the runs were given (after any override): recorded in the report's set-up lines."""
    net, dm = cli.model.net, cli.datamodule
    inner = getattr(net, "net", net)
    return {
        "base_width": inner.base_width,
        "depth": inner.depth,
        "loss": cli.model.loss,
        "batch_size": dm.batch_size,
        "crop_size": dm.crop_size,
        "eval_crop_size": dm.eval_crop_size,
    }


def fixed_iso_test_set(dm, isos: list[float]) -> ConcatDataset:
    """Every test frame of ``dm`` at every ISO of ``isos``, noise fixed by ``dm.seed + 1000 + stop``.

    The same images for every variant, seed and baseline; it replaces ``dm``'s test split.
    """
    from isp.data.dataset import RawPairDataset
    from isp.noise import SyntheticNoise

    dm.setup()
    n, pairs, parts = dm.noise, [p for p in dm.pairs() if p.split == "test"], []
    for k, iso in enumerate(isos):
        noise = SyntheticNoise(
            profile=n.profile,
            iso_range=(iso, iso),
            read_noise=n.read_noise,
            jitter=n.jitter,
            virtual_columns=n.virtual_columns,
        )
        ds = RawPairDataset(
            pairs,
            dm.cache,
            crop_size=dm.datasets["test"].crop_size,
            train=False,
            vector_scale=dm.vector_scale,
            noise=noise,
            seed=dm.seed + 1000 + k,
        )
        parts.append(ds)
    return ConcatDataset(parts)


def _test(cli, module) -> dict[str, float]:
    (metrics,) = cli.trainer.test(module, datamodule=cli.datamodule, verbose=False)
    return {k: float(v) for k, v in metrics.items()}


def run_study(args: argparse.Namespace, command: str) -> dict:
    """Generate the data, train and test every (seed, variant), evaluate the baselines, write the report."""
    from isp.data import synth

    torch.set_num_threads(args.threads)
    data_root, cache = Path(args.work) / "data", Path(args.work) / "cache"
    synth.generate(data_root, n_train=args.n_train, n_val=1, n_test=args.n_test, size=args.size, seed=0)
    common = [
        "--data.root",
        str(data_root),
        "--data.cache_dir",
        str(cache),
        "--checkpoint.dirpath",
        str(Path(args.work) / "checkpoints"),
        "--trainer.default_root_dir",  # where the CLI saves each run's config.yaml
        str(args.work),
        "--trainer.max_steps",
        str(args.steps),
        "--model.scheduler.init_args.T_max",
        str(args.steps),
        *args.extra,
    ]
    study = {"config": {"command": command, "test_isos": None, "setup": []}, "baselines": {}, "variants": {}}
    t0 = time.perf_counter()
    for seed in args.seeds:  # seed-major: an interrupted study still has whole seeds
        for name in args.variants:
            configs = [
                "--config",
                str(EXPERIMENTS / "study.yaml"),
                "--config",
                str(EXPERIMENTS / f"{name}.yaml"),
            ]
            start = time.perf_counter()
            cli = cli_main(["fit", *configs, "--seed_everything", str(seed), *common])
            train_seconds = time.perf_counter() - start
            cli.datamodule.datasets["test"] = fixed_iso_test_set(cli.datamodule, args.test_isos)
            metrics = _test(cli, cli.model)
            entry = study["variants"].setdefault(
                name,
                {
                    "label": LABELS.get(name, name),
                    "parameters": count_parameters(cli.model.net),
                    "description": _description(name),
                    "runs": [],
                },
            )
            entry["runs"].append(
                {
                    "seed": seed,
                    "steps": cli.trainer.global_step,
                    "train_seconds": round(train_seconds, 1),
                    "metrics": metrics,
                }
            )
            print(
                f"[{time.perf_counter() - t0:6.0f}s] {name} seed {seed}: test PSNR raw "
                f"{metrics['test/raw_psnr']:.2f} dB",
                flush=True,
            )
            if not study["baselines"]:
                study["config"]["test_isos"] = list(args.test_isos)
                study["config"]["settings"] = _settings(cli)
                noisy = {k.replace("input_", ""): v for k, v in metrics.items() if "input_" in k}
                study["baselines"]["noisy"] = {"label": "noisy input", "metrics": noisy}
                if args.bm3d:
                    outputs, seconds = bm3d_outputs(cli.datamodule.datasets["test"])
                    replay = DenoiseModule(Replay(outputs), num_previews=0, iso_buckets=cli.model.iso_buckets)
                    study["baselines"]["bm3d_vst"] = {
                        "label": "BM3D-VST (true noise)",
                        "metrics": _test(cli, replay),
                        "seconds_per_image": seconds,
                    }
            study["config"]["setup"] = _setup(args, study, time.perf_counter() - t0)
            study_report.write(study, args.out)
    return study


def _setup(args, study: dict, wall: float) -> list[str]:
    runs = [r for v in study["variants"].values() for r in v["runs"]]
    st = study["config"]["settings"]
    lines = [
        f"Machine: {platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.threads} torch thread(s); whole study {wall / 60:.1f} min, "
        f"{np.mean([r['train_seconds'] for r in runs]):.0f} s of training per run ({len(runs)} runs).",
        f"Budget: {args.steps} optimisation steps per run; UNet width {st['base_width']}, "
        f"depth {st['depth']}, "
        f"loss {st['loss']!r}, batch {st['batch_size']} crops of {st['crop_size']} packed pixels; the rest "
        "as `configs/experiment/study.yaml` (Adam 1e-3, cosine over the run).",
        f"Data: {args.n_train} generated clean training frames of {args.size[0]}x{args.size[1]} "
        "(`isp.data.synth`) with noise drawn on the fly (`isp.noise.SyntheticNoise`, SonyA7S2, ISO "
        "100..25600, per-shot jitter); test: "
        f"{args.n_test} held-out frames x ISO {', '.join(f'{i:g}' for i in study['config']['test_isos'])}, "
        f"centre crop {st['eval_crop_size'] or 'none (whole frames)'} (packed pixels), noise fixed per stop.",
    ]
    if "bm3d_vst" in study["baselines"]:
        lines.append(
            "BM3D-VST: `bm3d` per packed plane after the generalised Anscombe transform with each image's "
            "true noise, row noise as a row-constant PSD, exact unbiased inverse (Makitalo & Foi, IEEE TIP "
            f"2011 / 2013); {study['baselines']['bm3d_vst']['seconds_per_image']:.1f} s per image."
        )
    return lines


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="docs", help="results.md/.json and the plot go here (default docs)")
    p.add_argument("--work", default="runs/study", help="generated data, cache, checkpoints")
    p.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=600, help="optimisation steps per run (default 600)")
    p.add_argument("--test-isos", type=float, nargs="+", default=TEST_ISOS, help="ISO stops of the test set")
    p.add_argument("--n-train", type=int, default=128)
    p.add_argument("--n-test", type=int, default=6)
    p.add_argument("--size", type=int, nargs=2, default=(128, 160), metavar=("H", "W"))
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1: steady on a busy machine)"
    )
    p.add_argument("--no-bm3d", dest="bm3d", action="store_false", help="skip the BM3D-VST baseline")
    p.add_argument("extra", nargs="*", help="more Lightning CLI options for every run, after --")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    args.size = tuple(args.size)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no per-run banner
    warnings.filterwarnings("ignore", message=".*(num_workers|does not have many workers).*")
    command = "python scripts/study.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    return run_study(args, command.strip())


if __name__ == "__main__":
    main()
