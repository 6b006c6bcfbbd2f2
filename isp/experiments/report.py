"""Writers of the results study: aggregation over seeds, the JSON file, the markdown tables, the plot.

The study's raw material is a dict (see :func:`isp.experiments.ablation.run_study`)::

    {"config": {...},
     "baselines": {name: {"label", "per_image": [{"name", "iso", "bucket", metrics...}], ...}},
     "variants": {name: {"label", "parameters", "runs": [{"seed", "step_time_s", "per_image", ...}]}}}

:func:`aggregate` turns it into means over images per group (``all`` and each ISO bucket) and
then mean and sample standard deviation over seeds; :func:`answers` reads the three questions
of the study off those numbers; :func:`write_markdown`, :func:`write_json` and
:func:`plot_psnr_vs_iso` write them. The plot is drawn with PIL (matplotlib is not a
dependency of the project).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from isp.experiments.evaluate import METRICS, mean_std

__all__ = [
    "aggregate",
    "complete_seeds",
    "bucket_label",
    "answers",
    "group_means",
    "markdown_report",
    "plot_psnr_vs_iso",
    "write_json",
    "write_markdown",
]

METRIC_LABELS = {
    "psnr_raw": "PSNR raw (dB)",
    "ssim_raw": "SSIM raw",
    "psnr_srgb": "PSNR sRGB (dB)",
    "ssim_srgb": "SSIM sRGB",
}


def group_means(per_image: Sequence[Mapping], groups: Sequence[str]) -> dict[str, dict[str, float]]:
    """Mean of each metric over the images of each group (``"all"`` or a bucket name).

    Args:
        per_image: dicts with ``"bucket"`` and the metrics of :data:`METRICS`.
        groups: group names; ``"all"`` takes every image, another name the images whose
            ``bucket`` equals it. Groups without images are left out.

    Returns:
        ``{group: {metric: mean, "images": count}}``.

    Example:
        >>> recs = [{"bucket": "a", "psnr_raw": 30.0}, {"bucket": "b", "psnr_raw": 20.0}]
        >>> group_means(recs, ["all", "b", "c"])
        {'all': {'psnr_raw': 25.0, 'images': 2}, 'b': {'psnr_raw': 20.0, 'images': 1}}
    """
    out: dict[str, dict[str, float]] = {}
    for g in groups:
        recs = list(per_image) if g == "all" else [r for r in per_image if r["bucket"] == g]
        if not recs:
            continue
        out[g] = {k: float(np.mean([r[k] for r in recs])) for k in METRICS if k in recs[0]}
        out[g]["images"] = len(recs)
    return out


def complete_seeds(study: Mapping) -> dict:
    """The study restricted to the seeds that every variant has finished (a shallow copy).

    An interrupted study (runs go seed by seed) can hold a seed that only some variants reached;
    comparing variants over different seeds would mix seed noise into the differences, so the
    tables use the common seeds only. Runs without a ``"seed"`` key are kept.

    Example:
        >>> s = {"variants": {"a": {"runs": [{"seed": 0}, {"seed": 1}]}, "b": {"runs": [{"seed": 0}]}}}
        >>> [r["seed"] for r in complete_seeds(s)["variants"]["a"]["runs"]]
        [0]
    """
    variants = study.get("variants", {})
    seed_sets = [{r.get("seed") for r in v["runs"]} for v in variants.values()]
    common = set.intersection(*seed_sets) if seed_sets else set()
    out = dict(study)
    out["variants"] = {
        k: {**v, "runs": [r for r in v["runs"] if "seed" not in r or r["seed"] in common]}
        for k, v in variants.items()
    }
    return out


def aggregate(study: Mapping) -> dict:
    """Means over images per group, then mean and std over seeds, for every method.

    Args:
        study: the study dict (see the module docstring); ``config["groups"]`` lists the groups.

    Returns:
        ``{method: {group: {metric: [mean, std, n_seeds]}}}`` for baselines (std 0, one "seed")
        and variants alike; a variant's std is the sample std (ddof 1) of its per-seed means.

    Example:
        >>> study = {"config": {"groups": ["all"]}, "baselines": {},
        ...          "variants": {"v": {"runs": [{"per_image": [{"bucket": "x", "psnr_raw": 30.0}]},
        ...                                      {"per_image": [{"bucket": "x", "psnr_raw": 32.0}]}]}}}
        >>> aggregate(study)["v"]["all"]["psnr_raw"]
        [31.0, 1.4142135623730951, 2]
    """
    study = complete_seeds(study)
    groups = list(study["config"]["groups"])
    out: dict = {}
    for name, base in study.get("baselines", {}).items():
        means = group_means(base["per_image"], groups)
        out[name] = {g: {k: [v, 0.0, 1] for k, v in m.items() if k != "images"} for g, m in means.items()}
    for name, var in study.get("variants", {}).items():
        per_seed = [group_means(run["per_image"], groups) for run in var["runs"]]
        if not per_seed:
            continue
        res: dict = {}
        for g in groups:
            seeds = [s[g] for s in per_seed if g in s]
            if not seeds:
                continue
            res[g] = {}
            for k in METRICS:
                if k in seeds[0]:
                    m, s = mean_std(x[k] for x in seeds)
                    res[g][k] = [m, s, len(seeds)]
        out[name] = res
    return out


def _paired_diff(study: Mapping, a: str, b: str, metric: str) -> tuple[float, float, int]:
    """Mean and std over seeds of ``a - b`` on the same seed (same data order and crops)."""
    va, vb = study["variants"].get(a), study["variants"].get(b)
    if va is None or vb is None:
        return math.nan, math.nan, 0
    by_seed_b = {r["seed"]: r for r in vb["runs"]}
    diffs = []
    for r in va["runs"]:
        if r["seed"] in by_seed_b:
            ma = float(np.mean([x[metric] for x in r["per_image"]]))
            mb = float(np.mean([x[metric] for x in by_seed_b[r["seed"]]["per_image"]]))
            diffs.append(ma - mb)
    m, s = mean_std(diffs)
    return m, s, len(diffs)


def answers(study: Mapping, agg: Mapping | None = None) -> dict:
    """The study's questions, answered from the numbers (PSNR raw and sRGB, all test images).

    - ``msconv_vs_tile_concat``: ``delta = msconv - tile_concat``; "within noise" when
      ``|delta| < 2 * pooled seed std`` (pooled: ``sqrt((s_a^2 + s_b^2) / 2)``). The paired
      per-seed difference (same seed: same initial data order and crops) is given beside it.
    - ``over_blind``: what the scalars add (``msconv_scalars - none``), what the row/column
      vectors add on top of the scalars (``msconv - msconv_scalars``), what the flattened vectors
      add (``msconv_flat - msconv_scalars``) and the full model over blind (``msconv - none``).
    - ``over_bm3d``: ``msconv - bm3d_vst`` overall and per group.

    Returns:
        A JSON-ready dict; entries whose methods did not run are left out.
    """
    study = complete_seeds(study)
    agg = aggregate(study) if agg is None else agg
    out: dict = {}

    def diff(a: str, b: str, metric: str, group: str = "all") -> dict | None:
        if a not in agg or b not in agg or group not in agg[a] or group not in agg[b]:
            return None
        ma, sa, na = agg[a][group][metric]
        mb, sb, nb = agg[b][group][metric]
        pooled = math.sqrt((sa**2 + sb**2) / 2)
        entry = {"delta": ma - mb, "a": [ma, sa, na], "b": [mb, sb, nb], "pooled_seed_std": pooled}
        if a in study.get("variants", {}) and b in study.get("variants", {}) and group == "all":
            pm, ps, pn = _paired_diff(study, a, b, metric)
            entry["paired"] = [pm, ps, pn]
        return entry

    for metric in ("psnr_raw", "psnr_srgb"):
        d = diff("msconv", "tile_concat", metric)
        if d is not None:
            n_seeds = min(d["a"][2], d["b"][2])
            d["within_noise"] = bool(n_seeds > 1 and abs(d["delta"]) < 2 * d["pooled_seed_std"])
            out.setdefault("msconv_vs_tile_concat", {})[metric] = d
        for key, (a, b) in {
            "scalars_over_blind": ("msconv_scalars", "none"),
            "vectors_over_scalars": ("msconv", "msconv_scalars"),
            "flat_vectors_over_scalars": ("msconv_flat", "msconv_scalars"),
            "vectors_over_flat": ("msconv", "msconv_flat"),
            "full_over_blind": ("msconv", "none"),
        }.items():
            d = diff(a, b, metric)
            if d is not None:
                d["beyond_noise"] = bool(
                    min(d["a"][2], d["b"][2]) > 1 and abs(d["delta"]) >= 2 * d["pooled_seed_std"]
                )
                out.setdefault("over_blind", {}).setdefault(key, {})[metric] = d
        if "msconv" in agg and "bm3d_vst" in agg:
            out.setdefault("over_bm3d", {})[metric] = {
                g: diff("msconv", "bm3d_vst", metric, g)["delta"]
                for g in agg["msconv"]
                if g in agg["bm3d_vst"]
            }
    return out


def bucket_label(name: str) -> str:
    """Display name of an ISO bucket of :func:`isp.lit.metrics.iso_bucket_names`.

    Example:
        >>> bucket_label("iso_le400"), bucket_label("iso_gt6400"), bucket_label("all")
        ('ISO ≤ 400', 'ISO > 6400', 'all')
    """
    if name.startswith("iso_le"):
        return f"ISO ≤ {name[6:]}"
    if name.startswith("iso_gt"):
        return f"ISO > {name[6:]}"
    return name


_MISSING = (math.nan, 0.0, 0)


def _fmt(value: Sequence[float], digits: int) -> str:
    m, s, n = value
    if math.isnan(m):
        return "n/a"
    return f"{m:.{digits}f} ± {s:.{digits}f}" if n > 1 else f"{m:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _signed(d: Mapping | None, digits: int = 2) -> str:
    if d is None:
        return "n/a"
    text = f"{d['delta']:+.{digits}f} dB (pooled seed std {d['pooled_seed_std']:.{digits}f}"
    if "paired" in d and d["paired"][2] > 1:
        text += f"; paired per seed {d['paired'][0]:+.{digits}f} ± {d['paired'][1]:.{digits}f}"
    return text + ")"


def markdown_report(study: Mapping, agg: Mapping | None = None, ans: Mapping | None = None) -> str:
    """The results page: set-up and budget, the tables, the answers, the exact command.

    Args:
        study: the study dict.
        agg: :func:`aggregate` of it (computed when None).
        ans: :func:`answers` of it (computed when None).

    Returns:
        Markdown text.
    """
    agg = aggregate(study) if agg is None else agg
    ans = answers(study, agg) if ans is None else ans
    full = study
    study = complete_seeds(study)
    excluded = [
        f"{name} seed {r['seed']}"
        for name, v in full.get("variants", {}).items()
        for r in v["runs"]
        if r not in study["variants"][name]["runs"]
    ]
    cfg = study["config"]
    groups = [g for g in cfg["groups"] if any(g in agg[m] for m in agg)]
    methods = [*study.get("baselines", {}), *study.get("variants", {})]
    labels = {
        **{k: v.get("label", k) for k, v in study.get("baselines", {}).items()},
        **{k: v.get("label", k) for k, v in study.get("variants", {}).items()},
    }
    lines = [
        "# Results: metadata conditioning, MSConv2d vs tile-concat, and classical BM3D-VST",
        "",
        "Generated by `python -m isp.experiments.ablation` (do not edit by hand; re-run the command).",
        "Raw numbers: [results.json](results.json); "
        "plot: [results_psnr_vs_iso.png](results_psnr_vs_iso.png).",
        "",
        "## Command",
        "",
        "```",
        cfg.get("command", ""),
        "```",
        "",
        "## Set-up and budget",
        "",
    ]
    lines += [f"- {line}" for line in cfg.get("setup_lines", [])]
    if excluded:
        lines.append(
            "- Left out of the tables (their seed did not finish for every variant): "
            + ", ".join(excluded)
            + "; the raw numbers are in results.json."
        )
    lines += [
        "",
        "Mean ± sample std over seeds (std 0 for the deterministic baselines). PSNR is the mean over"
        " test images of each image's PSNR (data range 1); SSIM the mean of each image's SSIM;"
        " raw = packed RGGB planes clipped to [0, 1], sRGB = `isp.models.render.raw_to_srgb` of the same,"
        " the definitions `isp.lit.DenoiseModule` logs.",
        "",
        "## Variants",
        "",
        *_table(
            ["variant", "conditioning", "side inputs"],
            [
                [v.get("label", k), f"`{v.get('conditioning', '')}`", v.get("description", "")]
                for k, v in study.get("variants", {}).items()
            ],
        ),
        "",
        "## Overall (all test images)",
        "",
    ]
    if cfg.get("budget_line"):
        lines += [f"Budget: {cfg['budget_line']}", ""]
    bench = study.get("step_benchmark", {})
    header = ["method", "params", "step, plain (ms)", "step in Lightning (ms)"]
    header += [METRIC_LABELS[m] for m in METRICS]
    rows = []
    for m in methods:
        if "all" not in agg.get(m, {}):
            continue
        var = study.get("variants", {}).get(m)
        params = f"{var['parameters']:,}" if var else "-"
        if var and var["runs"]:
            st = mean_std(r["step_time_s"] * 1000 for r in var["runs"])
            step = f"{st[0]:.0f} ± {st[1]:.0f}" if len(var["runs"]) > 1 else f"{st[0]:.0f}"
        else:
            step = "-"
        plain = f"{1000 * bench[m]:.0f}" if m in bench else "-"
        row = [labels[m], params, plain, step]
        row += [_fmt(agg[m]["all"].get(k, _MISSING), 2 if k.startswith("psnr") else 4) for k in METRICS]
        rows.append(row)
    lines += _table(header, rows)
    for metric in ("psnr_raw", "psnr_srgb", "ssim_srgb"):
        lines += ["", f"## {METRIC_LABELS[metric]} per ISO bucket", ""]
        bucket_groups = [g for g in groups if g != "all"]
        counts = {g: _group_count(study, g) for g in bucket_groups}
        header = ["method", *[f"{bucket_label(g)} ({counts[g]} img)" for g in bucket_groups]]
        rows = []
        for m in methods:
            rows.append(
                [
                    labels[m],
                    *[
                        _fmt(agg[m][g].get(metric, _MISSING), 2 if metric.startswith("psnr") else 4)
                        if g in agg.get(m, {})
                        else "n/a"
                        for g in bucket_groups
                    ],
                ]
            )
        lines += _table(header, rows)

    lines += ["", "## Answers", ""]
    mt = ans.get("msconv_vs_tile_concat", {})
    if mt:
        raw, srgb = mt.get("psnr_raw"), mt.get("psnr_srgb")
        verdict = "yes" if raw and raw["within_noise"] and srgb and srgb["within_noise"] else "no"
        if raw and min(raw["a"][2], raw["b"][2]) < 2:
            verdict = "undetermined (fewer than two seeds)"
        lines += [
            f"**Is msconv within noise of tile_concat (|ΔPSNR| < 2 × seed std)?** {verdict}. "
            f"msconv − tile_concat: raw {_signed(raw)}; sRGB {_signed(srgb)}.",
            "",
        ]
    ob = ans.get("over_blind", {})
    if ob:
        names = {
            "scalars_over_blind": "scalars over blind (msconv, scalars only − none)",
            "vectors_over_scalars": "row/col vectors on top of the scalars (msconv − msconv, scalars only)",
            "flat_vectors_over_scalars": "vectors flattened to frame means "
            "(msconv, flattened − scalars only)",
            "vectors_over_flat": "per-row vectors over flattened (msconv − msconv, flattened)",
            "full_over_blind": "everything over blind (msconv − none)",
        }
        lines += ["**What do scalars and row vectors add over blind?**", ""]
        for key, text in names.items():
            if key in ob:
                d = ob[key]
                flag = lambda e: " (beyond 2 × seed std)" if e and e.get("beyond_noise") else ""  # noqa: E731
                lines.append(
                    f"- {text}: raw {_signed(d.get('psnr_raw'))}{flag(d.get('psnr_raw'))}; "
                    f"sRGB {_signed(d.get('psnr_srgb'))}{flag(d.get('psnr_srgb'))}."
                )
        lines.append("")
    bm = ans.get("over_bm3d", {})
    if bm:
        lines += ["**How far above BM3D-VST is the default model (msconv)?** (negative: below it)", ""]
        for metric in ("psnr_raw", "psnr_srgb"):
            parts = ", ".join(f"{bucket_label(g)}: {v:+.2f} dB" for g, v in bm.get(metric, {}).items())
            lines.append(f"- {METRIC_LABELS[metric]}: {parts}.")
        lines.append("")
    if cfg.get("notes"):
        lines += ["## Notes", ""]
        lines += [f"- {n}" for n in cfg["notes"]]
        lines.append("")
    return "\n".join(lines)


def _group_count(study: Mapping, group: str) -> int:
    """Number of test images in ``group`` (every method sees the same test set)."""
    sources = [b["per_image"] for b in study.get("baselines", {}).values()]
    sources += [r["per_image"] for v in study.get("variants", {}).values() for r in v["runs"]]
    if not sources:
        return 0
    return sum(1 for r in sources[0] if group == "all" or r["bucket"] == group)


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _atomic_write(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def write_json(study: Mapping, path: str | os.PathLike) -> Path:
    """Write the study with its aggregate and answers as compact JSON (atomically); returns the path.

    Key order: ``config``, ``answers``, ``aggregate``, then the study's raw material (step benchmark,
    baselines and runs with their per-image metrics).
    """
    agg = aggregate(study)
    doc = {"config": study.get("config", {}), "answers": answers(study, agg), "aggregate": agg}
    doc.update({k: v for k, v in study.items() if k not in doc})
    text = json.dumps(doc, separators=(",", ":"), default=_json_default, allow_nan=True)
    return _atomic_write(path, (text + "\n").encode())


def write_markdown(study: Mapping, path: str | os.PathLike) -> Path:
    """Write :func:`markdown_report` of the study (atomically); returns the path."""
    return _atomic_write(path, (markdown_report(study) + "\n").encode())


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
    from PIL import Image, ImageDraw

    if not series:
        raise ValueError("Expected at least one series to plot. Got none.")
    w, h = size
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    font, small = _font(16), _font(13)
    left, right, top, bottom = 70, 230, 40, 60
    x0, x1, y0, y1 = left, w - right, top, h - bottom
    isos = sorted({float(i) for s in series.values() for i in s[0]})
    lo = [m - s for v in series.values() for m, s in zip(v[1], v[2], strict=True) if math.isfinite(m)]
    hi = [m + s for v in series.values() for m, s in zip(v[1], v[2], strict=True) if math.isfinite(m)]
    ymin, ymax = math.floor(min(lo)) - 1, math.ceil(max(hi)) + 1
    lx0, lx1 = math.log2(isos[0]), math.log2(isos[-1])
    if lx1 == lx0:
        lx0, lx1 = lx0 - 1, lx1 + 1

    def px(iso: float) -> float:
        return x0 + (math.log2(iso) - lx0) / (lx1 - lx0) * (x1 - x0)

    def py(v: float) -> float:
        return y1 - (v - ymin) / (ymax - ymin) * (y1 - y0)

    step = max(1, int(math.ceil((ymax - ymin) / 10)))
    for v in range(int(ymin), int(ymax) + 1, step):
        draw.line([(x0, py(v)), (x1, py(v))], fill=(225, 225, 225))
        draw.text((x0 - 8, py(v)), f"{v}", fill="black", font=small, anchor="rm")
    for iso in isos:
        draw.line([(px(iso), y0), (px(iso), y1)], fill=(235, 235, 235))
        draw.text((px(iso), y1 + 8), f"{iso:g}", fill="black", font=small, anchor="mt")
    draw.rectangle([x0, y0, x1, y1], outline="black")
    draw.text(((x0 + x1) / 2, 12), title, fill="black", font=font, anchor="mt")
    draw.text(((x0 + x1) / 2, h - 18), "ISO", fill="black", font=font, anchor="mm")
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
