"""The report of scripts/devset_study.py: curves, dev-set tables, step times and the answers.

Reads ``runs/devset_study/<variant>/seed<k>/`` (TensorBoard events, ``train.json``,
``devset_physical.json``, ``devset_iso-overstated.json``, ``checkpoints/last.ckpt``) and writes
``devset_study.md``, ``devset_study.json`` and ``devset_study_curves.png`` to ``--out``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "benchmarks")]

from devset_table import stats  # noqa: E402
from study_report import plot_lines  # noqa: E402

CELLS = [(iso, kind) for iso in (800, 6400, 25600) for kind in ("plain", "band")]


def val_curve(run: Path, tag: str = "val/raw_psnr") -> list[tuple[int, float]]:
    """``(step, value)`` of ``tag`` from the TensorBoard event files of one run, in step order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points: dict[int, float] = {}
    for events in sorted(run.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        if tag in acc.Tags()["scalars"]:
            points.update({e.step: e.value for e in acc.Scalars(tag)})
    return sorted(points.items())


def collect(work: Path, variants: list[str], seeds: list[int]) -> dict:
    """Everything the report needs from the runs on disk; runs not trained or scored are left out."""
    from isp.models import count_parameters
    from isp.weights import load_model

    study: dict = {}
    for variant in variants:
        runs = []
        for seed in seeds:
            d = work / variant / f"seed{seed}"
            files = [d / "train.json", d / "devset_physical.json", d / "devset_iso-overstated.json"]
            if not all(f.is_file() for f in files):
                continue
            train, physical, overstated = (json.loads(f.read_text()) for f in files)
            runs.append(
                {
                    "seed": seed,
                    "train_seconds": train["train_seconds"],
                    "curve": val_curve(d),
                    "physical": stats(physical),
                    "overstated": stats(overstated),
                }
            )
        if runs:
            net = load_model(work / variant / f"seed{runs[0]['seed']}" / "checkpoints" / "last.ckpt").net
            study[variant] = {"parameters": count_parameters(net), "runs": runs}
    return study


def step_times(work: Path, study: dict, reps: int = 15, warmup: int = 3) -> dict[str, float]:
    """Median ms of one training step (forward, L1, backward, Adam; batch 8 of 64 x 64 packed
    pixels, contract-2 side inputs) per variant, the variants interleaved, one thread."""
    from train_step import _interleaved, make_step

    from isp.weights import load_model

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(8, 4, 64, 64, generator=g) * 0.5
    batch = {
        "image": clean + 0.05 * torch.randn(clean.shape, generator=g),
        "target": clean,
        "row": torch.randn(8, 7, 64, generator=g),
        "col": torch.randn(8, 5, 64, generator=g),
        "scalar": torch.randn(8, 8, generator=g),
    }
    calls = {}
    for variant, entry in study.items():
        net = load_model(work / variant / f"seed{entry['runs'][0]['seed']}" / "checkpoints" / "last.ckpt").net
        calls[variant] = make_step(net.train(), batch)
    times, _ = _interleaved(calls, reps, warmup)
    return {v: 1000 * statistics.median(t) for v, t in times.items()}


def _ms(values: list[float]) -> tuple[float, float]:
    """Mean and sample std (0 for one value)."""
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _f(values: list[float], digits: int = 2) -> str:
    if not values:
        return "-"
    m, s = _ms(values)
    return f"{m:+.{digits}f} ± {s:.{digits}f}"


def paired(study: dict, a: str, b: str, key) -> list[float]:
    """``key(a) - key(b)`` seed by seed, for the seeds both variants have (same data and noise draws)."""
    ra = {r["seed"]: key(r) for r in study[a]["runs"]}
    rb = {r["seed"]: key(r) for r in study[b]["runs"]}
    return [ra[s] - rb[s] for s in sorted(ra.keys() & rb.keys())]


def _verdict(diffs: list[float], tol: float = 0.05) -> str:
    if not diffs:
        return "not measured"
    if all(d > tol for d in diffs):
        return "better on every seed"
    if all(d < -tol for d in diffs):
        return "worse on every seed"
    return f"no difference beyond {tol} dB that holds on every seed"


def answers(study: dict) -> list[str]:
    """The seed's questions, one sentence each, from the paired per-seed differences."""

    def phys(r):
        return r["physical"]["gain"]

    def band25600(r):
        return r["physical"]["cells"][(25600, "band")]

    def band_gap(r):
        return float(np.mean(r["physical"]["band_minus_plain"]))

    def over(r):
        return r["overstated"]["gain"]

    def seeds(d):
        return ", ".join(f"{x:+.2f}" for x in d)

    out = []
    q = [
        ("msconv", "tile_concat", "Is MSConv2d as good as tile-concat-conv?"),
        ("msconv", "none", "Does the metadata help at all (msconv against the blind UNet)?"),
        ("msconv", "msconv_scalars", "Do the per-row and per-column vectors help?"),
        ("msconv", "msconv_flat", "Does flattening the vectors to scalars hurt?"),
        ("msconv", "film", "Is MSConv2d better than FiLM?"),
        ("msconv_film", "film", "MSConv2d with a FiLM gain against FiLM?"),
        ("msconv_film", "msconv", "What does the FiLM gain add to MSConv2d?"),
        ("film_msconv", "film", "Does FiLM keep its lead with MSConv2d as its convolution?"),
        ("film_msconv", "msconv", "What does FiLM add to MSConv2d?"),
        ("msconv_replicate", "msconv", "Do MSConv2d's partial side sums at zero-padded borders cost?"),
        ("msconv_replicate", "film", "With replicate padding, is msconv as good as FiLM?"),
        ("msconv_noisemap", "msconv", "Does the per-pixel noise map add to MSConv2d's inputs?"),
        (
            "msconv_noisemap",
            "film_noisemap",
            "With the noise map too (the shipped inputs), is msconv as good as FiLM?",
        ),
    ]
    for a, b, question in q:
        if a not in study or b not in study:
            continue
        d, db, dg, do = (paired(study, a, b, k) for k in (phys, band25600, band_gap, over))
        out.append(
            f"- **{question}** {a} - {b}, per seed: physical mean gain {seeds(d)} dB ({_verdict(d)}); "
            f"ISO 25600 band cell {seeds(db)} dB; band-minus-plain-twin gap {seeds(dg)} dB; "
            f"iso-overstated mean gain {seeds(do)} dB."
        )
    return out


def markdown(
    study: dict, times: dict[str, float], labels: dict[str, str], command: str, load: float | None = None
) -> str:
    seeds = sorted({r["seed"] for e in study.values() for r in e["runs"]})
    curve = study[next(iter(study))]["runs"][0]["curve"]  # one validation per epoch
    epochs, steps = len(curve), (curve[-1][0] + 1 if curve else 0)
    lines = [
        "# The conditioning study on the production data, scored on the development set",
        "",
        "Generated by `python scripts/devset_study.py` (configs/experiment/devset; command below).",
        "Every variant: a UNet of base width 16, depth 3 (no noise map, no line view), trained from",
        "scratch on the production data (configs/production.yaml: unprocessed photographs, clean real",
        "raws, dead leaves; CameraNoise with banding on 60% of shots, EXIF ISO overstated on 25%),",
        f"crops of 64 x 64 packed pixels, batch 8, Adam 1e-3 cosine to 2e-5 over {epochs} epochs "
        f"({steps} steps), seed-matched: for one seed every variant sees the same crops and noise.",
        "Scored with `python ../shared/devset/score.py --ckpt <run>/checkpoints/last.ckpt` on both",
        f"sets. Seeds: {', '.join(map(str, seeds))}. Values are mean ± sample std over seeds.",
        "",
        f"Command: `{command}`",
        "",
        "## Validation curves",
        "",
        "![validation PSNR per epoch](devset_study_curves.png)",
        "",
        "Validation raw PSNR (48 held-out crops of the training distribution) at each epoch end;",
        "the last column of the table below is what the last quarter of the run added.",
        "",
        "| variant | "
        + " | ".join(f"step {s}" for s, _ in study[next(iter(study))]["runs"][0]["curve"][2::3])
        + " | last 3 epochs |",
        "|---|" + "---|" * (len(study[next(iter(study))]["runs"][0]["curve"][2::3]) + 1),
    ]
    for v, e in study.items():
        curves = [np.array([p for _, p in r["curve"]]) for r in e["runs"]]
        n = min(len(c) for c in curves)
        mean = np.mean([c[:n] for c in curves], axis=0)
        gains = [c[n - 1] - c[n - 4] for c in curves if n >= 4]
        lines.append(
            f"| {labels[v]} | " + " | ".join(f"{x:.2f}" for x in mean[2::3]) + f" | {_f(gains)} dB |"
        )
    lines += [
        "",
        "## Development set",
        "",
        "Physical set (48 cases): mean gain over the noisy input, over BM3D* (BM3D after a generalised",
        "Anscombe transform given the true noise: an oracle), cases worse than the input, band cases",
        "within 0.3 dB of their plain twin (of 24) and the mean band-minus-plain gap; iso-overstated",
        "(24 cases): mean gain and cases worse. Step: one training step, median ms (see below).",
        "",
        "| variant | params | step (ms) | train (min) | physical gain (dB) | vs BM3D* (dB) | worse "
        "| band within 0.3 | band - plain (dB) | overstated gain (dB) | overstated worse |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v, e in study.items():
        rs = e["runs"]
        lines.append(
            f"| {labels[v]} | {e['parameters']:,} | {times.get(v, float('nan')):.0f} "
            f"| {np.mean([r['train_seconds'] for r in rs]) / 60:.1f} "
            f"| {_f([r['physical']['gain'] for r in rs])} | {_f([r['physical']['vs_bm3d'] for r in rs])} "
            f"| {np.mean([r['physical']['worse'] for r in rs]):.1f} "
            f"| {np.mean([r['physical']['band_within'] for r in rs]):.1f} "
            f"| {_f([float(np.mean(r['physical']['band_minus_plain'])) for r in rs])} "
            f"| {_f([r['overstated']['gain'] for r in rs])} "
            f"| {np.mean([r['overstated']['worse'] for r in rs]):.1f} |"
        )
    lines += [
        "",
        "Physical set, isp - BM3D* per ISO x banding cell (dB):",
        "",
        "| variant | " + " | ".join(f"{iso} {kind}" for iso, kind in CELLS) + " |",
        "|---|" + "---|" * len(CELLS),
    ]
    for v, e in study.items():
        cells = [_f([r["physical"]["cells"][c] for r in e["runs"]]) for c in CELLS]
        lines.append(f"| {labels[v]} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Answers",
        "",
        "Differences are paired by seed (the two variants saw the same data); a verdict needs the",
        "same sign beyond 0.05 dB on every seed.",
        "",
        *answers(study),
        "",
        "## Set-up",
        "",
        f"- Machine: {platform.machine()} CPU, {os.cpu_count()} cores; each run trained with one torch "
        "thread and one data worker, two runs at a time or one beside another training run "
        "(the train column's minutes depend on it).",
        f"- torch {torch.__version__}. Step time: `scripts/devset_study_report.py` (interleaved, 15 "
        "repetitions after 3 warm-up, one thread, on the trained networks"
        + ("" if load is None else f"; 1-minute load average {load:.1f} when timed")
        + ").",
    ]
    return "\n".join(lines) + "\n"


def _json_ready(value):
    """``value`` with tuple dict keys (the ISO x banding cells) joined into strings, for JSON."""
    if isinstance(value, dict):
        return {
            (" ".join(map(str, k)) if isinstance(k, tuple) else k): _json_ready(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value


def write(args) -> None:
    """Collect, time, tabulate, plot; ``args`` as parsed by scripts/devset_study.py."""
    from devset_study import LABELS

    study = collect(args.work, args.variants, args.seeds)
    if not study:
        raise SystemExit(f"{args.work}: no trained and scored run to report")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    times = step_times(args.work, study)
    command = "python scripts/devset_study.py --seeds " + " ".join(map(str, args.seeds))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "devset_study.md").write_text(markdown(study, times, LABELS, command, load))
    (args.out / "devset_study.json").write_text(
        json.dumps({"step_ms": times, "variants": _json_ready(study)}, indent=1) + "\n"
    )
    series = {}
    for v, e in study.items():
        curves = [r["curve"] for r in e["runs"]]
        n = min(len(c) for c in curves)
        vals = np.array([[p for _, p in c[:n]] for c in curves])
        std = vals.std(axis=0, ddof=1) if len(vals) > 1 else np.zeros(n)
        series[LABELS[v]] = ([s for s, _ in curves[0][:n]], vals.mean(axis=0).tolist(), std.tolist())
    plot_lines(
        series,
        args.out / "devset_study_curves.png",
        title="Validation raw PSNR during training (mean ± std over seeds)",
        xlabel="step",
        ylabel="PSNR raw (dB)",
    )
    print(f"wrote {args.out / 'devset_study.md'}")
