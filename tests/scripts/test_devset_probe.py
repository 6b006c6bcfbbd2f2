"""scripts/devset_probe.py: the per-row bookkeeping, and both probes on real dev-set cases."""

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
