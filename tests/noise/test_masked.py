"""Censored fits of masked pixels that clip at 0 DN, against the parameters that made them."""

import numpy as np
import pytest

from isp.noise.banding import row_banding
from isp.noise.masked import censored_rows


@pytest.mark.parametrize("mean_sigmas", [3.0, 0.5, 0.0, -0.5])
def test_censored_rows_recovers_read_noise_and_offsets(mean_sigmas):
    rng = np.random.default_rng(1)
    sigma, rows, m = 0.02, 2000, 16
    band = rng.normal(0, sigma, (rows, 1))
    block = np.maximum(mean_sigmas * sigma + band + rng.normal(0, sigma, (rows, m)), 0.0)
    fit = censored_rows(block, 0.0)
    assert fit.sigma == pytest.approx(sigma, rel=0.05)
    err = fit.offsets - (mean_sigmas * sigma + band[:, 0])
    err -= err.mean()
    # offsets as precise as the Fisher information says (within 25%), never worse than 0.5 sigma
    assert np.std(err) == pytest.approx(np.sqrt(np.mean(fit.variances)), rel=0.25)
    assert np.std(err) < 0.5 * sigma
    if mean_sigmas <= 0.5:  # the naive statistics are biased here: the fit must beat them
        naive = np.median(block, axis=1) - (mean_sigmas * sigma + band[:, 0])
        assert np.std(err) < 0.8 * np.std(naive - naive.mean())
        assert fit.sigma > 1.3 * block.std(axis=1, ddof=1).mean()


def test_censored_rows_rejects_a_bad_block():
    with pytest.raises(ValueError, match="block"):
        censored_rows(np.zeros(16), 0.0)


def test_row_banding_from_clipped_masked_pixels():
    """A low black level at high ISO: the censored fit's offsets and variances beat the medians."""
    rng = np.random.default_rng(2)
    h, w, m, sigma = 400, 300, 16, 0.02
    band = rng.normal(0, sigma, (2, h))
    planes = 0.3 + rng.normal(0, sigma, (4, h, w))
    planes[:2] += band[0][None, :, None]
    planes[2:] += band[1][None, :, None]
    sensor_band = np.stack([band[0], band[1]], axis=1).reshape(-1)  # even, odd sensor rows
    block = np.maximum(0.3 * sigma + sensor_band[:, None] + rng.normal(0, sigma, (2 * h, m)), 0.0)
    fit = censored_rows(block, 0.0)
    offsets = np.stack([fit.offsets[0::2], fit.offsets[1::2]])
    variances = np.stack([fit.variances[0::2], fit.variances[1::2]])
    good = row_banding(planes.astype(np.float32), offsets, variances)
    med = np.median(block, axis=1)
    naive = row_banding(planes.astype(np.float32), np.stack([med[0::2], med[1::2]]), sigma**2 * np.pi / 2 / m)
    rms = lambda e: float(np.std(e - e.mean(axis=1, keepdims=True)))  # noqa: E731
    assert rms(good - band) < 0.8 * rms(naive - band)
    assert rms(good - band) < 0.25 * sigma


@pytest.mark.parametrize(
    "block",
    [
        np.zeros((50, 16)),  # black level 0, read noise far below a DN: every pixel clips
        np.full((50, 16), 0.01),  # no noise at all
        np.where(np.random.default_rng(3).random((50, 16)) < 0.01, 0.0, 0.01),  # a few clip
        np.vstack([np.zeros((1, 16)), np.random.default_rng(4).normal(0.01, 1e-3, (49, 16))]),
    ],
    ids=["all-clipped", "constant", "few-clipped-constant", "one-row-clipped"],
)
def test_censored_rows_stays_finite_on_degenerate_pixels(block):
    """Synthetic cameras make such masked pixels; a NaN here once stopped a training run."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = censored_rows(block, 0.0)
    assert np.isfinite(fit.offsets).all() and np.isfinite(fit.variances).all()
    assert (fit.variances > 0).all() and np.isfinite(fit.sigma) and fit.sigma > 0


def test_a_frame_fits_its_clipped_masked_pixels_once(monkeypatch):
    """Read noise (estimate_noise) and row offsets (model_inputs) come from one censored fit."""
    import isp.noise.masked as masked
    from isp.data.inputs import model_inputs
    from isp.raw import frame_from_sensor

    rng = np.random.default_rng(5)
    h, w, m = 128, 160, 16
    sensor = np.clip(64 + rng.normal(0, 300, (h, w)) + rng.normal(0, 150, (h, 1)), 0, 16383)
    sensor[:, m:] += 3000
    frame = frame_from_sensor(
        np.round(sensor).astype(np.uint16),
        cfa="RGGB",
        black_level=64,
        white_level=16383,
        active_area=(0, m, h, w),
    )
    fits = []
    real = masked._fit
    monkeypatch.setattr(masked, "_fit", lambda *args: fits.append(real(*args)) or fits[-1])
    masked._LAST.clear()
    first = model_inputs(frame)
    assert len(fits) == 1
    # the kept fit is the fit: a fresh one on the same pixels gives the same inputs
    masked._LAST.clear()
    again = model_inputs(frame)
    assert len(fits) == 2
    for name in ("image", "row", "col", "scalar"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    block = np.asarray(frame.optical_black.left, dtype=np.float64)
    kept = censored_rows(block, 0.0)
    assert censored_rows(block, 0.0) is kept and not kept.offsets.flags.writeable
    assert censored_rows(block + 1e-3, 0.0) is not kept
