"""Markdown tables of ``../shared/devset/score.py --json`` results (the README's and docs' figures).

    python ../shared/devset/score.py --json /tmp/physical.json
    python ../shared/devset/score.py --set iso-overstated --json /tmp/overstated.json
    python scripts/devset_table.py /tmp/physical.json /tmp/overstated.json
    python scripts/devset_table.py --cases /tmp/physical.json      # one row per case (docs/)

Per set: mean raw PSNR of the noisy input, BM3D* (the oracle) and isp per ISO x banding cell,
the mean gain, the worst case, cases worse than the input (by more than 0.05 dB) and, for band
cases, the largest shortfall of a band case against its plain twin: in gain and in the PSNR it
ends at (the target: within 0.3 dB).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def table(rows: list[dict], title: str) -> str:
    cells = defaultdict(list)
    for r in rows:
        cells[(r["iso"], "band" if r["banding"] else "plain")].append(r)
    out = [
        f"**{title}** ({len(rows)} cases): mean raw PSNR (dB)",
        "",
        "| ISO | banding | noisy | BM3D* | isp | isp - BM3D* |",
        "|---|---|---|---|---|---|",
    ]
    for (iso, kind), group in sorted(cells.items()):
        noisy = np.mean([r["noisy"] for r in group])
        bm3d = (
            np.nanmean([r["bm3d_gat"] for r in group])
            if any(np.isfinite(r["bm3d_gat"]) for r in group)
            else np.nan
        )
        ours = np.mean([r["denoised"] for r in group])
        out.append(f"| {iso} | {kind} | {noisy:.2f} | {bm3d:.2f} | {ours:.2f} | {ours - bm3d:+.2f} |")
    st = stats(rows)
    short, ends = st["band_gain_minus_plain"], st["band_minus_plain"]
    out += [
        "",
        f"Mean gain over the noisy input {st['gain']:+.2f} dB; over BM3D* {st['vs_bm3d']:+.2f} dB; "
        f"worst case {st['worst']:+.2f} dB ({st['worst_name']}); {st['worse']} worse than the input"
        + (
            f"; band gain minus plain-twin gain: worst {min(short):+.2f} dB, mean {np.mean(short):+.2f} dB"
            f"; band PSNR minus plain-twin PSNR: worst {min(ends):+.2f} dB, mean {np.mean(ends):+.2f} dB, "
            f"{st['band_within']} of {len(ends)} within 0.3 dB"
            if short
            else ""
        )
        + ".",
    ]
    return "\n".join(out)


def stats(rows: list[dict]) -> dict:
    """The summary figures of one set's ``score.py --json`` rows.

    Returns:
        ``gain`` (mean over cases of isp - noisy), ``vs_bm3d`` (mean isp - BM3D*), ``worst`` and
        ``worst_name`` (the lowest gain), ``worse`` (cases more than 0.05 dB below the input),
        ``cells`` (``{(iso, "band"|"plain"): mean isp - BM3D*}``), and for each band case paired
        with its plain twin ``band_minus_plain`` (PSNR) and ``band_gain_minus_plain`` (gain), with
        ``band_within`` (how many of the former are >= -0.3 dB).
    """
    gain = np.array([r["denoised"] - r["noisy"] for r in rows])
    vs = np.array([r["denoised"] - r["bm3d_gat"] for r in rows])
    cells = defaultdict(list)
    for r, v in zip(rows, vs, strict=True):
        cells[(r["iso"], "band" if r["banding"] else "plain")].append(v)
    twins = {r["name"].replace("_band", ""): r for r in rows if r["banding"]}
    pairs = [
        (twins[r["name"].replace("_plain", "")], r)
        for r in rows
        if not r["banding"] and r["name"].replace("_plain", "") in twins
    ]
    ends = [b["denoised"] - p["denoised"] for b, p in pairs]
    return {
        "gain": float(gain.mean()),
        "vs_bm3d": float(np.nanmean(vs)),
        "worst": float(gain.min()),
        "worst_name": rows[int(np.argmin(gain))]["name"],
        "worse": int(np.sum(gain < -0.05)),
        "cells": {k: float(np.nanmean(v)) for k, v in sorted(cells.items())},
        "band_minus_plain": ends,
        "band_gain_minus_plain": [
            (b["denoised"] - b["noisy"]) - (p["denoised"] - p["noisy"]) for b, p in pairs
        ],
        "band_within": int(np.sum(np.array(ends) >= -0.3)),
    }


def cases(rows: list[dict]) -> str:
    out = ["| case | noisy | BM3D* | isp | gain | isp - BM3D* |", "|---|---|---|---|---|---|"]
    for r in rows:
        d = r["denoised"]
        out.append(
            f"| {r['name']} | {r['noisy']:.2f} | {r['bm3d_gat']:.2f} | {d:.2f} | {d - r['noisy']:+.2f} "
            f"| {d - r['bm3d_gat']:+.2f} |"
        )
    return "\n".join(out)


def main(argv: list[str]) -> int:
    per_case = "--cases" in argv
    for path in [a for a in argv if a != "--cases"]:
        rows = json.loads(Path(path).read_text())
        print(cases(rows) if per_case else table(rows, Path(path).stem))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
