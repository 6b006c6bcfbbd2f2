"""The conditioning study's report: tables of docs/results.md, results.json and the PSNR-vs-ISO plot.

Reads what ``scripts/study.py`` collects: for every method (the baselines and each variant's runs)
the test metrics :class:`isp.lit.DenoiseModule` logged (``test/raw_psnr``, ...,
``test/<ISO bucket>/raw_psnr``). Means and sample standard deviations are over seeds; a
difference between two variants is the mean of their per-seed differences (the same test images
and training batches for a seed), called within noise when it is within twice the pooled seed std.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

METRICS = {"raw_psnr": "PSNR raw", "raw_ssim": "SSIM raw", "srgb_psnr": "PSNR sRGB", "srgb_ssim": "SSIM sRGB"}
BUCKETS = (
    (0.0, 400.0, "<= 400"),
    (400.0, 1600.0, "400-1600"),
    (1600.0, 6400.0, "1600-6400"),
    (6400.0, math.inf, "> 6400"),
)


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """``(mean, sample std, n)``; the std is 0 for one value.

    Example:
        >>> mean_std([1.0, 2.0, 3.0])
        (2.0, 1.0, 3)
    """
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    if not v:
        return math.nan, math.nan, 0
    return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v)


def per_iso(metrics: Mapping[str, float], isos: Sequence[float], key: str = "raw_psnr") -> list[float]:
    """A run's ``key`` at each ISO stop, from its one-bucket-per-stop test metrics (in stop order)."""
    values = [v for k, v in metrics.items() if k.startswith("test/iso_") and k.endswith(f"/{key}")]
    names = sorted(
        {k.split("/")[1] for k in metrics if k.startswith("test/iso_") and k.endswith(f"/{key}")},
        key=_bucket_order,
    )
    if len(names) != len(isos):
        raise ValueError(
            f"Expected one ISO bucket per stop ({len(isos)}). Got {names} ({len(values)} values)."
        )
    return [float(metrics[f"test/{n}/{key}"]) for n in names]


def _bucket_order(name: str) -> float:
    if name.startswith("iso_le"):
        return float(name[len("iso_le") :])
    return math.inf if name.startswith("iso_gt") else math.inf + 1


def common_seeds(study: Mapping) -> list[int]:
    """The seeds every variant finished (an interrupted study's tables use only those)."""
    sets = [{r["seed"] for r in v["runs"]} for v in study["variants"].values()]
    return sorted(set.intersection(*sets)) if sets else []


def summary(study: Mapping) -> dict:
    """``{method: {metric or bucket label: (mean, std, n)}}`` over the common seeds."""
    isos = study["config"]["test_isos"]
    seeds = set(common_seeds(study))
    methods = {k: [v["metrics"]] for k, v in study["baselines"].items()}
    methods |= {
        k: [r["metrics"] for r in v["runs"] if r["seed"] in seeds] for k, v in study["variants"].items()
    }
    out = {}
    for name, runs in methods.items():
        row = {m: mean_std([r.get(f"test/{m}", math.nan) for r in runs]) for m in METRICS}
        curves = [per_iso(r, isos) for r in runs]
        for lo, hi, label in BUCKETS:
            idx = [i for i, iso in enumerate(isos) if lo < iso <= hi]
            row[label] = (
                mean_std([np.mean([c[i] for i in idx]) for c in curves]) if idx else (math.nan,) * 2 + (0,)
            )
        row["per_iso"] = [mean_std([c[i] for c in curves]) for i in range(len(isos))]
        out[name] = row
    return out


def paired(study: Mapping, a: str, b: str, metric: str = "raw_psnr") -> dict:
    """Variant ``a`` minus ``b`` in ``metric``, per common seed, with the two-sigma verdict."""
    seeds = common_seeds(study)
    runs = {k: {r["seed"]: r["metrics"] for r in study["variants"][k]["runs"]} for k in (a, b)}
    diffs = [runs[a][s][f"test/{metric}"] - runs[b][s][f"test/{metric}"] for s in seeds]
    pooled = math.sqrt(
        np.mean([mean_std([runs[k][s][f"test/{metric}"] for s in seeds])[1] ** 2 for k in (a, b)])
    )
    delta = float(np.mean(diffs)) if diffs else math.nan
    return {
        "delta": delta,
        "paired": diffs,
        "pooled_seed_std": pooled,
        "within_noise": abs(delta) <= 2 * pooled,
    }


def _fmt(v: tuple, digits: int = 2) -> str:
    mean, std, n = v
    return "n/a" if not n else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def markdown(study: Mapping) -> str:
    """The text of docs/results.md."""
    cfg, s = study["config"], summary(study)
    labels = {k: v["label"] for k, v in {**study["baselines"], **study["variants"]}.items()}
    lines = [
        "# Results: metadata conditioning, MSConv2d vs tile-concat, and classical BM3D-VST",
        "",
        "Generated by `scripts/study.py` (do not edit by hand; re-run the command).",
        "Raw numbers: [results.json](results.json); "
        "plot: [results_psnr_vs_iso.png](results_psnr_vs_iso.png).",
        "",
        "## Command",
        "",
        "```",
        cfg["command"],
        "```",
        "",
        "## Set-up",
        "",
    ]
    lines += [f"- {line}" for line in cfg["setup"]]
    seeds = common_seeds(study)
    lines += [
        "",
        f"Mean ± sample std over seeds {seeds} (std 0 for the deterministic baselines); PSNR is the "
        "mean over test images of each image's PSNR (data range 1), as `isp.lit.DenoiseModule` logs it.",
        "",
        "## Variants",
        "",
    ]
    lines += _table(
        ["variant", "configs/experiment", "parameters", "side inputs"],
        [
            [v["label"], f"`{k}.yaml`", f"{v['parameters']:,}", v["description"]]
            for k, v in study["variants"].items()
        ],
    )
    lines += ["", "## Test set, all ISOs", ""]
    lines += _table(
        ["method", *METRICS.values(), "train s / run"],
        [
            [labels[k], *(_fmt(row[m], 4 if "ssim" in m else 2) for m in METRICS), _train_seconds(study, k)]
            for k, row in s.items()
        ],
    )
    lines += ["", "## PSNR raw by ISO", ""]
    lines += _table(
        ["method", *(b[2] for b in BUCKETS)],
        [[labels[k], *(_fmt(row[b[2]]) for b in BUCKETS)] for k, row in s.items()],
    )
    ref = next(iter(study["variants"]), None)
    others = [k for k in study["variants"] if k != ref]
    if ref and others and seeds:
        lines += ["", f"## Differences from {labels[ref]} (PSNR raw, paired by seed)", ""]
        rows = []
        for k in others:
            d = paired(study, k, ref)
            verdict = "within noise" if d["within_noise"] else "beyond noise"
            rows.append([labels[k], f"{d['delta']:+.2f} dB", f"{d['pooled_seed_std']:.2f}", verdict])
        lines += _table(["variant", "minus " + labels[ref], "pooled seed std", "2-sigma rule"], rows)
    dropped = [
        f"{k} seed {r['seed']}"
        for k, v in study["variants"].items()
        for r in v["runs"]
        if r["seed"] not in seeds
    ]
    if dropped:
        lines += ["", "Left out (not every variant finished that seed): " + ", ".join(dropped) + "."]
    return "\n".join(lines)


def _train_seconds(study: Mapping, name: str) -> str:
    runs = study["variants"].get(name, {}).get("runs", [])
    return f"{np.mean([r['train_seconds'] for r in runs]):.0f}" if runs else "-"


def write(study: Mapping, out: str | os.PathLike) -> None:
    """Write ``results.json``, ``results.md`` and ``results_psnr_vs_iso.png`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({**study, "summary": summary(study)}, allow_nan=True) + "\n")
    (out / "results.md").write_text(markdown(study) + "\n")
    isos = study["config"]["test_isos"]
    labels = {k: v["label"] for k, v in {**study["baselines"], **study["variants"]}.items()}
    series = {
        labels[k]: (isos, [m for m, _, _ in row["per_iso"]], [sd for _, sd, _ in row["per_iso"]])
        for k, row in summary(study).items()
    }
    plot_psnr_vs_iso(
        series,
        out / "results_psnr_vs_iso.png",
        title="Raw PSNR vs ISO on the held-out test set (mean ± std over seeds)",
        ylabel="PSNR raw (dB)",
    )


_PALETTE = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]


def _font(size: int):
    from PIL import ImageFont

    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default()


def plot_psnr_vs_iso(
    series: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float]]],
    path: str | os.PathLike,
    *,
    title: str = "PSNR vs ISO",
    ylabel: str = "PSNR (dB)",
    size: tuple[int, int] = (1000, 640),
) -> Path:
    """Line plot of PSNR against ISO (log2 axis) per method, with ±std bars, drawn with PIL.

    Args:
        series: ``{label: (isos, means, stds)}``; ``stds`` may be all zeros.
        path: output PNG.
        title: plot title.
        ylabel: y axis label.
        size: ``(width, height)`` in pixels.

    Returns:
        The path written.
    """
    return plot_lines(series, path, title=title, xlabel="ISO", ylabel=ylabel, log_x=True, size=size)


def plot_lines(
    series: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float]]],
    path: str | os.PathLike,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    log_x: bool = False,
    size: tuple[int, int] = (1000, 640),
) -> Path:
    """Line plot of one series per method, with ±std bars where given, drawn with PIL.

    Args:
        series: ``{label: (xs, means, stds)}``; ``stds`` may be all zeros.
        path: output PNG.
        title: plot title.
        xlabel: x axis label.
        ylabel: y axis label.
        log_x: a log2 x axis (ticks at the given xs) instead of a linear one.
        size: ``(width, height)`` in pixels.

    Returns:
        The path written.
    """
    from PIL import Image, ImageDraw

    if not series:
        raise ValueError("Expected at least one series to plot. Got none.")
    w, h = size
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    font, small = _font(16), _font(13)
    left, right, top, bottom = 70, max(230, 70 + 8 * max(len(label) for label in series)), 40, 60
    x0, x1, y0, y1 = left, w - right, top, h - bottom
    xs_all = sorted({float(i) for s in series.values() for i in s[0]})
    lo = [m - s for v in series.values() for m, s in zip(v[1], v[2], strict=True) if math.isfinite(m)]
    hi = [m + s for v in series.values() for m, s in zip(v[1], v[2], strict=True) if math.isfinite(m)]
    ymin, ymax = math.floor(min(lo)) - 1, math.ceil(max(hi)) + 1
    fx = math.log2 if log_x else float
    lx0, lx1 = fx(xs_all[0]), fx(xs_all[-1])
    if lx1 == lx0:
        lx0, lx1 = lx0 - 1, lx1 + 1
    if log_x:
        ticks = xs_all
    else:  # about eight round ticks
        raw = (lx1 - lx0) / 8
        unit = 10 ** math.floor(math.log10(raw))
        tick = next(m * unit for m in (1, 2, 5, 10) if m * unit >= raw)
        ticks = [k * tick for k in range(math.ceil(lx0 / tick), math.floor(lx1 / tick) + 1)]

    def px(x: float) -> float:
        return x0 + (fx(x) - lx0) / (lx1 - lx0) * (x1 - x0)

    def py(v: float) -> float:
        return y1 - (v - ymin) / (ymax - ymin) * (y1 - y0)

    step = max(1, int(math.ceil((ymax - ymin) / 10)))
    for v in range(int(ymin), int(ymax) + 1, step):
        draw.line([(x0, py(v)), (x1, py(v))], fill=(225, 225, 225))
        draw.text((x0 - 8, py(v)), f"{v}", fill="black", font=small, anchor="rm")
    for x in ticks:
        draw.line([(px(x), y0), (px(x), y1)], fill=(235, 235, 235))
        draw.text((px(x), y1 + 8), f"{x:g}", fill="black", font=small, anchor="mt")
    draw.rectangle([x0, y0, x1, y1], outline="black")
    draw.text(((x0 + x1) / 2, 12), title, fill="black", font=font, anchor="mt")
    draw.text(((x0 + x1) / 2, h - 18), xlabel, fill="black", font=font, anchor="mm")
    ylab = Image.new("RGB", (200, 24), "white")
    ImageDraw.Draw(ylab).text((100, 12), ylabel, fill="black", font=font, anchor="mm")
    img.paste(ylab.rotate(90, expand=True), (8, int((y0 + y1) / 2 - 100)))
    for i, (label, (xs, ms, ss)) in enumerate(series.items()):
        colour = _PALETTE[i % len(_PALETTE)]
        pts = [(px(float(x)), py(m)) for x, m in zip(xs, ms, strict=True) if math.isfinite(m)]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=3)
        for x, m, s in zip(xs, ms, ss, strict=True):
            if not math.isfinite(m):
                continue
            cx, cy = px(float(x)), py(m)
            if s > 0:
                draw.line([(cx, py(m - s)), (cx, py(m + s))], fill=colour, width=2)
                draw.line([(cx - 4, py(m - s)), (cx + 4, py(m - s))], fill=colour, width=2)
                draw.line([(cx - 4, py(m + s)), (cx + 4, py(m + s))], fill=colour, width=2)
            draw.ellipse([cx - 4, cy - 4, cx + 4, cy + 4], fill=colour)
        ly = y0 + 10 + 24 * i
        draw.line([(x1 + 15, ly), (x1 + 45, ly)], fill=colour, width=3)
        draw.text((x1 + 52, ly), label, fill="black", font=small, anchor="lm")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    return out
