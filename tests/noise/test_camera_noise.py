import math

import numpy as np
import pytest

from isp.noise.camera import CameraNoise, SensorModel, synthesize_sensor


def _model(**kw):
    base = dict(
        bits=14,
        black=512,
        white=16383,
        gain=2.0,
        read_e=3.0,
        post_dn=4.0,
        tukey_lambda=None,
        row_dn=0.0,
        iso=1600.0,
        exif_iso=1600.0,
        exposure_time=0.01,
        masked_columns=16,
    )
    base.update(kw)
    return SensorModel(**base)


@pytest.mark.parametrize("lam", [None, 0.1, -0.08])
def test_variance_vs_mean_has_the_models_slope_and_intercept(lam):
    m = _model(tukey_lambda=lam)
    levels = np.array([0.02, 0.05, 0.1, 0.2, 0.4])
    clean = np.repeat(levels, 200)[None, :].repeat(400, axis=0)  # bands of constant level
    out = synthesize_sensor(clean, m, np.random.default_rng(0)).astype(np.float64)
    vis = (out[:, 16:] - m.black) / m.dn_range
    means = np.array([vis[:, i * 200 : (i + 1) * 200].mean() for i in range(5)])
    variances = np.array([vis[:, i * 200 : (i + 1) * 200].var() for i in range(5)])
    slope, intercept = np.polyfit(means, variances, 1)
    quant = 1 / 12 / m.dn_range**2
    assert slope == pytest.approx(m.a, rel=0.03)
    assert intercept == pytest.approx(m.b + quant, rel=0.15)
    assert means == pytest.approx(levels, abs=3e-4)


def test_row_banding_has_its_std_and_lands_on_the_masked_columns():
    m = _model(row_dn=20.0, masked_columns=32)
    out = synthesize_sensor(np.full((3000, 400), 0.1), m, np.random.default_rng(1)).astype(np.float64)
    masked_rows = out[:, :32].mean(axis=1)
    visible_rows = out[:, 32:].mean(axis=1)
    assert np.std(visible_rows) == pytest.approx(20.0, rel=0.06)
    assert np.corrcoef(masked_rows, visible_rows)[0, 1] > 0.9
    assert out[:, :32].mean() == pytest.approx(m.black, abs=1.0)


def test_quantised_and_clipped_to_the_bit_depth():
    m = _model(bits=12, black=0, white=4095, gain=50.0, read_e=4.0)
    out = synthesize_sensor(np.array([[0.0, 2.0] * 50] * 50), m, np.random.default_rng(2))
    assert out.dtype == np.uint16 and out.min() == 0 and out.max() == 4095


def test_sampler_spans_the_documented_ranges():
    rng = np.random.default_rng(3)
    draws = [CameraNoise().sample(rng) for _ in range(2000)]
    wells = np.array([d.dn_range / d.gain * d.iso / 100 for d in draws])
    assert wells.min() >= 1e4 * 0.999 and wells.max() <= 2e5 * 1.001
    assert wells.min() < 1.3e4 and wells.max() > 1.5e5
    assert {d.bits for d in draws} == {10, 12, 14}
    assert max(d.black for d in draws) == 2048
    ratio = np.array([d.row_dn / d.read_dn for d in draws])
    assert 0.3 < np.mean(ratio == 0) < 0.5 and ratio.max() > 1.4
    over = np.array([d.exif_iso / d.iso for d in draws if d.exif_iso])
    assert 0.2 < np.mean(over > 1.5) < 0.3 and over.max() > 20
    assert any(d.tukey_lambda is not None for d in draws) and any(d.masked_columns == 0 for d in draws)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="full_well"):
        CameraNoise(full_well=(0, 10))
    with pytest.raises(ValueError, match="bits"):
        CameraNoise(bits=(16,))
    with pytest.raises(ValueError, match="clean"):
        synthesize_sensor(np.zeros(5), _model(), np.random.default_rng(0))
    assert math.isfinite(_model().b)
