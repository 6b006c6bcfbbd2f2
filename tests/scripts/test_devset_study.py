"""scripts/devset_study.py and its report: the summary figures, the paired verdicts, and the
whole pipeline (train through the Lightning CLI, score on real dev-set cases, report) in small."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import devset_study  # noqa: E402
import devset_study_report  # noqa: E402
from devset_table import stats  # noqa: E402

DEVSET = ROOT.parent / "shared" / "devset"


def _row(name, iso, band, noisy, bm3d, denoised):
    return {"name": name, "iso": iso, "banding": band, "noisy": noisy, "bm3d_gat": bm3d, "denoised": denoised}


def test_stats_of_hand_made_rows():
    rows = [
        _row("a_iso800_plain", 800, False, 40.0, 42.0, 43.0),
        _row("a_iso800_band", 800, True, 39.0, 40.0, 42.5),
        _row("b_iso800_plain", 800, False, 50.0, 50.5, 49.9),
        _row("b_iso800_band", 800, True, 49.0, 49.5, 49.0),
    ]
    st = stats(rows)
    assert st["gain"] == pytest.approx((3.0 + 3.5 - 0.1 + 0.0) / 4)
    assert st["vs_bm3d"] == pytest.approx((1.0 + 2.5 - 0.6 - 0.5) / 4)
    assert st["worst"] == pytest.approx(-0.1) and st["worst_name"] == "b_iso800_plain"
    assert st["worse"] == 1
    assert st["cells"] == pytest.approx({(800, "plain"): 0.2, (800, "band"): 1.0})
    assert st["band_minus_plain"] == pytest.approx([-0.5, -0.9])
    assert st["band_gain_minus_plain"] == pytest.approx([0.5, 0.1])
    assert st["band_within"] == 0


def _run(seed, gain):
    cells = {(iso, k): gain for iso in (800, 6400, 25600) for k in ("plain", "band")}
    st = {"gain": gain, "cells": cells, "band_minus_plain": [gain / 10]}
    return {"seed": seed, "physical": st, "overstated": st}


def test_paired_differences_and_verdicts():
    study = {"msconv": {"runs": [_run(0, 7.0), _run(1, 7.2)]}, "none": {"runs": [_run(1, 6.0), _run(0, 6.5)]}}
    diffs = devset_study_report.paired(study, "msconv", "none", lambda r: r["physical"]["gain"])
    assert diffs == pytest.approx([0.5, 1.2])  # seed by seed, not in list order
    assert devset_study_report._verdict(diffs) == "better on every seed"
    assert devset_study_report._verdict([-0.2, -0.1]) == "worse on every seed"
    assert devset_study_report._verdict([0.2, -0.1]).startswith("no difference")
    (answer,) = devset_study_report.answers(study)
    assert "msconv - none" in answer and "+0.50, +1.20 dB (better on every seed)" in answer


@pytest.mark.skipif(not DEVSET.is_dir(), reason="../shared/devset is absent (a user's clone)")
def test_the_study_trains_scores_and_reports(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    short = ["--trainer.max_steps", "20", "--data.epoch_size", "80", "--data.eval_size", "4"]
    argv = ["--variants", "msconv", "msconv_scalars", "--seeds", "3", "--work", str(work), "--out", str(out)]
    devset_study.main([*argv, "--only", "d30_tree", "--", *short])
    report = json.loads((out / "devset_study.json").read_text())
    md = (out / "devset_study.md").read_text()
    assert "msconv, no row/column vectors" in md and "**Do the per-row and per-column vectors help?**" in md
    for variant in ("msconv", "msconv_scalars"):
        (run,) = report["variants"][variant]["runs"]
        assert [step for step, _ in run["curve"]] == [9, 19]  # one validation per epoch of 10 steps
        assert all(35 < psnr < 60 for _, psnr in run["curve"])
        for which, name in (("physical", "physical"), ("overstated", "iso-overstated")):
            rows = json.loads((work / variant / "seed3" / f"devset_{name}.json").read_text())
            assert rows and all("d30_tree" in r["name"] for r in rows)
            gain = np.mean([r["denoised"] - r["noisy"] for r in rows])
            assert run[which]["gain"] == pytest.approx(gain)
        assert report["step_ms"][variant] > 0
    scalars_net = report["variants"]["msconv_scalars"]["parameters"]
    assert scalars_net < report["variants"]["msconv"]["parameters"]  # no row / column weights
    assert (out / "devset_study_curves.png").stat().st_size > 1000
    # a finished run is not trained again; its scores are reused
    stamp = (work / "msconv" / "seed3" / "checkpoints" / "last.ckpt").stat().st_mtime
    devset_study.main([*argv, "--only", "d30_tree", "--phases", "train", "score", "--", *short])
    assert (work / "msconv" / "seed3" / "checkpoints" / "last.ckpt").stat().st_mtime == stamp
