"""How well isp measures each development-set file's noise: (a, b) and the row banding.

    python scripts/devset_measurements.py [--devset ../shared/devset] [--set physical]

For every case, the estimate of ``isp.data.inputs.model_inputs`` (what the network receives)
against the truth in ``cases.json`` (the green channel's where it is given per channel: the
estimator measures the greens): the shot slope ``a`` and the read-noise std ``sqrt(b)``,
their relative errors, and, for the row banding (``NAME.rows.npy``), the RMS error of the masked
pixels' offsets alone and of the whole-row MAP estimate, as a fraction of the true banding std.
Prints a Markdown table and a summary line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from isp.data.inputs import model_inputs  # noqa: E402
from isp.raw import read  # noqa: E402
from isp.raw.pack import phase_crop  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--devset", type=Path, default=ROOT.parent / "shared" / "devset")
    p.add_argument("--set", default="physical", choices=["physical", "iso-overstated"])
    args = p.parse_args(argv)
    here = args.devset / args.set
    cases = json.loads((here / "cases.json").read_text())
    print("| case | a true | a est | err | read std true | est | err | band: OB only | whole-row MAP |")
    print("|---|---|---|---|---|---|---|---|---|")
    errs_a, errs_b, band_ob, band_map = [], [], [], []
    for c in cases:
        frame = read(here / f"{c['name']}.dng")
        x = model_inputs(frame, vector_scale=1.0)  # vectors in mosaic units
        # per-channel truths (R, G, B): the estimator measures the greens
        a_true = float(c["a"][1]) if isinstance(c["a"], list) else float(c["a"])
        b_true = float(c["b"][1]) if isinstance(c["b"], list) else float(c["b"])
        ea = x.noise.a / a_true - 1
        eb = np.sqrt(x.noise.b / b_true) - 1 if b_true > 0 else float("nan")
        errs_a.append(ea)
        errs_b.append(eb)
        cells = ["", ""]
        rows_file = here / f"{c['name']}.rows.npy"
        if c.get("banding") and rows_file.is_file():
            true = np.load(rows_file)
            top, _ = phase_crop(frame.cfa)
            h = x.banding.shape[1]
            t = np.stack([true[top : top + 2 * h : 2], true[top + 1 : top + 2 * h : 2]])
            t = t - t.mean(axis=1, keepdims=True)
            ob = x.row[[0, 2]].astype(np.float64)
            ob = ob - np.median(ob, axis=1, keepdims=True)
            r_ob = float(np.sqrt(np.mean((ob - t) ** 2)) / t.std())
            r_map = float(np.sqrt(np.mean((x.banding - t) ** 2)) / t.std())
            band_ob.append(r_ob)
            band_map.append(r_map)
            cells = [f"{r_ob:.2f}", f"{r_map:.2f}"]
        print(
            f"| {c['name']} | {a_true:.2e} | {x.noise.a:.2e} | {ea:+.0%} | {np.sqrt(max(b_true, 0)):.2e} | "
            f"{np.sqrt(x.noise.b):.2e} | {eb:+.0%} | {cells[0]} | {cells[1]} |"
        )
    ea, eb = np.abs(errs_a), np.abs(np.array(errs_b))
    print(
        f"\n{args.set}: {len(cases)} cases; |a error| median {np.median(ea):.0%}, max {ea.max():.0%}, "
        f"within 15%: {np.mean(ea <= 0.15):.0%}; |read std error| median {np.nanmedian(eb):.0%}, "
        f"max {np.nanmax(eb):.0%}, within 25%: {np.nanmean(eb <= 0.25):.0%}"
        + (
            f"; banding RMS error / banding std: OB only {np.mean(band_ob):.2f}, whole-row MAP "
            f"{np.mean(band_map):.2f}"
            if band_map
            else ""
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
