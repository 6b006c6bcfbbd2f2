import numpy as np
import pytest

from isp.noise.banding import row_banding


def _frame(band_std, seed=0, h=256, w=384, sigma=0.01):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    scene = 0.2 + 0.1 * np.sin(x / 9.0) * np.cos(y / 13.0)  # texture, not constant along rows
    band = rng.normal(0, band_std, (2, h)) if band_std else np.zeros((2, h))
    planes = scene[None] + rng.normal(0, sigma, (4, h, w))
    planes[:2] += band[0][None, :, None]
    planes[2:] += band[1][None, :, None]
    ob = band + rng.normal(0, sigma / 4, (2, h))  # 16 masked pixels per row
    return planes.astype(np.float32), band - band.mean(axis=1, keepdims=True), ob


@pytest.mark.parametrize("with_ob", [True, False])
def test_recovers_injected_banding(with_ob):
    planes, band, ob = _frame(0.01)
    est = row_banding(planes, ob if with_ob else None, (0.01 / 4) ** 2 if with_ob else None)
    rmse = np.sqrt(np.mean((est - band) ** 2))
    assert rmse < 0.35 * 0.01
    if with_ob:  # the visible pixels improve on the masked pixels alone
        assert rmse < 0.8 * np.sqrt(np.mean((ob - ob.mean(axis=1, keepdims=True) - band) ** 2))


def test_no_banding_gives_almost_nothing():
    planes, _, ob = _frame(0.0)
    est = row_banding(planes, ob, (0.01 / 4) ** 2)
    assert np.sqrt(np.mean(est**2)) < 0.05 * 0.01


def test_refuses_bad_shapes():
    planes, _, ob = _frame(0.0, h=32, w=32)
    with pytest.raises(ValueError, match="ob_offsets"):
        row_banding(planes, ob[:, :10], 1e-6)
    with pytest.raises(ValueError, match="ob_variance"):
        row_banding(planes, ob, None)
