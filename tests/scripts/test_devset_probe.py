"""scripts/devset_probe.py: the per-row bookkeeping, and the probes on real dev-set cases."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import devset_probe  # noqa: E402

DEVSET = devset_probe.DEVSET


def test_sensor_rows_puts_each_stream_on_its_own_rows():
    banding = np.array([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]])  # even, odd sensor row of 3 packed rows
    np.testing.assert_array_equal(devset_probe.sensor_rows(banding, 1, 8), [0, 1, 10, 2, 20, 3, 30, 0])
    np.testing.assert_array_equal(devset_probe.sensor_rows(banding, 0, 6), [1, 10, 2, 20, 3, 30])


def test_row_error_and_psnr():
    clean = np.full((4, 5), 0.5)
    out = clean + np.array([0.1, -0.1, 0.0, 0.2])[:, None]
    np.testing.assert_allclose(devset_probe.row_error(out, clean), [0.1, -0.1, 0.0, 0.2])
    assert devset_probe.psnr(out, clean) == pytest.approx(10 * np.log10(1 / 0.015))


def test_slow_share_splits_a_profile_by_period():
    y = np.arange(512)
    slow, fast = np.sin(2 * np.pi * y / 64), np.sin(2 * np.pi * y / 4)
    assert devset_probe.slow_share(slow + 5.0) == pytest.approx(1.0)  # the mean does not count
    assert devset_probe.slow_share(fast) == pytest.approx(0.0, abs=1e-12)
    assert devset_probe.slow_share(slow + 2 * fast) == pytest.approx(1 / 5)  # powers 1 : 4
    white = np.random.default_rng(0).normal(size=512)
    assert 0.05 < devset_probe.slow_share(white) < 0.15  # a tenth of the frequencies
    assert devset_probe.slow_share(np.zeros(512)) == 0.0


@pytest.mark.skipif(not DEVSET.is_dir(), reason="../shared/devset is absent (a user's clone)")
def test_banding_probe_orders_the_estimators(capsys):
    devset_probe.main(["banding", "--only", "eos550d_chart_EM1_iso25600"])
    (line,) = [ln.split() for ln in capsys.readouterr().out.splitlines() if ln.startswith("eos550d_")]
    estimate, slow, masked, no_scene, ideal = (float(v) for v in line[1:6])
    # the masked pixels alone: 16 a row know the offset to about a quarter of the read noise
    assert 0.2 < masked < 0.35
    # the whole row does better, and a perfect scene model better still
    assert ideal < no_scene <= estimate + 0.02 < masked
    assert 0.0 < slow < 1.0


@pytest.mark.skipif(not DEVSET.is_dir(), reason="../shared/devset is absent (a user's clone)")
def test_both_probes_run_on_the_shipped_model(capsys):
    devset_probe.main(["rows", "--only", "s40_print_6D_iso25600", "--threads", "1"])
    lines = [ln.split() for ln in capsys.readouterr().out.splitlines() if ln.startswith("s40_")]
    assert [ln[0] for ln in lines] == ["s40_print_6D_iso25600_band"]  # the plain twin is the reference
    est_err, psnr_band, psnr_plain = float(lines[0][1]), float(lines[0][6]), float(lines[0][7])
    assert 0.05 < est_err < 0.5  # the whole-row estimate: a fraction of a read-noise std off
    assert 40 < psnr_band <= psnr_plain + 0.5 < 50
    devset_probe.main(["iso", "--only", "s40_print_CanonEOS6D_iso800_plain", "--threads", "1"])
    (line,) = [ln.split() for ln in capsys.readouterr().out.splitlines() if ln.startswith("s40_")]
    noisy, as_is, lowered, told = (float(v) for v in line[1:5])
    assert 55 < noisy < 65 and abs(as_is - noisy) < 3 and abs(lowered - noisy) < 3 and abs(told - noisy) < 3
