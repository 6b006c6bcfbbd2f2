"""The GAT, its closed-form unbiased inverse and the BM3D-VST baseline, against independent references."""

import math

import numpy as np
import pytest
from scipy.stats import poisson

from isp.baselines import (
    GaussianPoissonNoise,
    bm3d_vst,
    generalized_anscombe,
    inverse_generalized_anscombe,
    noise_in_normalised_units,
)
from isp.noise import NoiseParams, synthesize


def _expected_gat(y: float, s: float) -> float:
    """E[f(z)] for z = Poisson(y) + N(0, s^2) (gain 1), by exact Poisson sum and Gauss-Hermite."""
    t, w = np.polynomial.hermite_e.hermegauss(80)
    w = w / w.sum()
    k = np.arange(0, int(y + 12 * math.sqrt(y) + 30))
    p = poisson.pmf(k, y)
    z = k[:, None] + s * t[None, :]
    f = 2.0 * np.sqrt(np.maximum(z + 0.375 + s * s, 0.0))
    return float((p[:, None] * w[None, :] * f).sum())


@pytest.mark.parametrize("s", [0.0, 0.5, 1.0, 2.0])
def test_closed_form_inverse_matches_exact_unbiased_inverse(s):
    for y in (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 100.0):
        d = _expected_gat(y, s)
        closed = float(inverse_generalized_anscombe(d, 1.0, s))
        algebraic = float(inverse_generalized_anscombe(d, 1.0, s, method="algebraic"))
        assert abs(closed - y) < 0.05, (y, s, closed)
        if y >= 1.0:  # the plain inverse is biased by about -1/4 count: the reason for the unbiased one
            assert algebraic - y < -0.1, (y, s, algebraic)


def test_gain_and_sigma_scale_consistently():
    # z = a * Poisson(y) + N(0, sigma^2) is (Poisson(y) + N(0, (sigma/a)^2)) scaled by a
    a, sigma, y = 0.004, 0.006, 3.0
    d = _expected_gat(y, sigma / a)  # f_a(z) = 2 sqrt(z/a + 3/8 + (sigma/a)^2) = f_1(z / a)
    assert float(inverse_generalized_anscombe(d, a, sigma)) == pytest.approx(a * y, abs=0.05 * a)


def test_round_trip_of_noiseless_values_is_exact_with_the_algebraic_inverse():
    x = np.linspace(0.0, 1.0, 11)
    for a, s in ((0.01, 0.0), (0.001, 0.003)):
        back = inverse_generalized_anscombe(generalized_anscombe(x, a, s), a, s, method="algebraic")
        np.testing.assert_allclose(back, x, atol=1e-12)


def test_gat_stabilises_the_variance_to_one():
    rng = np.random.default_rng(0)
    a, s = 0.002, 0.004
    for x in (0.02, 0.1, 0.5):
        z = a * rng.poisson(x / a, 200_000) + rng.normal(0.0, s, 200_000)
        assert z.std() > 1.5 * s  # not a trivial case: shot noise dominates
        assert generalized_anscombe(z, a, s).std() == pytest.approx(1.0, abs=0.03)


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="`gain`"):
        generalized_anscombe(np.zeros(3), 0.0, 0.1)
    with pytest.raises(ValueError, match="`sigma`"):
        generalized_anscombe(np.zeros(3), 0.1, -1.0)
    with pytest.raises(ValueError, match="`method`"):
        inverse_generalized_anscombe(np.ones(3), 0.1, 0.1, method="exact")
    with pytest.raises(ValueError, match="`gain`"):
        GaussianPoissonNoise(0.0, 0.1)
    with pytest.raises(ValueError, match="planes"):
        bm3d_vst(np.zeros((16, 16)), GaussianPoissonNoise(0.01, 0.01))
    with pytest.raises(TypeError, match="GaussianPoissonNoise"):
        bm3d_vst(np.zeros((1, 16, 16)), (0.01, 0.01))


def test_normalised_units_reproduce_the_dn_variance():
    params = NoiseParams(gain=3.0, read_scale=4.0, read_lambda=0.1, row_sigma=2.0)
    dn_range, amp = 15000.0, 4.0
    n = noise_in_normalised_units(params, dn_range, amplification=amp)
    for x in (0.0, 0.01, 0.3):  # normalised level of the input image (after amplification)
        signal_dn = x / amp * dn_range
        expected = params.variance(signal_dn) * (amp / dn_range) ** 2
        got = n.gain * x + n.read_sigma**2 + n.row_sigma**2
        assert got == pytest.approx(expected, rel=1e-9)


def _scene(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return 0.03 + 0.25 * (np.sin(xx / 4.0) > 0) * (yy / h) + 0.08 * np.cos(yy / 6.0) ** 2


def test_bm3d_vst_improves_psnr_on_calibrated_noise():
    """Real isp.noise synthesis (shot, Tukey read, row, quantisation) on a sensor; true parameters."""
    rng = np.random.default_rng(3)
    h, w, white, black = 64, 64, 16383.0, 512.0
    clean = _scene(h, w)
    sensor = black + clean * (white - black)
    params = NoiseParams(gain=6.0, read_scale=5.0, read_lambda=0.1, row_sigma=3.0)  # ISO ~6400 (A7S2)
    noisy = synthesize(sensor, iso=6400, black_level=black, white_level=white, rng=rng, params=params)
    z = ((noisy.astype(np.float64) - black) / (white - black))[None]
    noise = noise_in_normalised_units(params, white - black)
    out = bm3d_vst(z, noise)

    def psnr(x):
        return -10 * math.log10(float(((x - clean[None]) ** 2).mean()))

    assert out.shape == z.shape and out.dtype == np.float32
    assert psnr(out) > psnr(z) + 8.0, (psnr(z), psnr(out))


def test_unbiased_inverse_keeps_dark_flat_field_mean():
    rng = np.random.default_rng(1)
    a, s, x = 0.01, 0.01, 0.03  # 3 photons per pixel: the low-count regime where the bias shows
    clean = np.full((1, 40, 40), x)
    z = a * rng.poisson(clean / a) + rng.normal(0.0, s, clean.shape)
    noise = GaussianPoissonNoise(a, s)
    unbiased = bm3d_vst(z, noise)
    algebraic = bm3d_vst(z, noise, inverse="algebraic")
    assert abs(unbiased.mean() - x) < 0.05 * x
    assert algebraic.mean() < x - 0.05 * x  # the plain inverse is too dark (about a/4 at high counts)
    assert abs(unbiased.mean() - x) < 0.5 * abs(algebraic.mean() - x)


def test_row_aware_psd_beats_white_assumption_on_strong_banding():
    rng = np.random.default_rng(2)
    clean = _scene(64, 64)[None]
    a, s, r = 0.002, 0.002, 0.01
    z = a * rng.poisson(clean / a) + rng.normal(0.0, s, clean.shape) + rng.normal(0.0, r, (1, 64, 1))
    noise = GaussianPoissonNoise(a, s, r)
    err_row = float(((bm3d_vst(z, noise, row_aware=True) - clean) ** 2).mean())
    err_white = float(((bm3d_vst(z, noise, row_aware=False) - clean) ** 2).mean())
    assert err_row < 0.8 * err_white
