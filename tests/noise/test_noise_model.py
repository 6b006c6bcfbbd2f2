import math
from datetime import datetime

import numpy as np
import pytest

from isp.noise import NoiseParams, SyntheticNoise, black_map, get_profile, synthesize, synthesize_frame
from isp.raw.frame import OpticalBlack, RawFrame, RawMetadata

BLACK = 1024.0
WHITE = 16383
LEVELS = (0.0, 10.0, 100.0, 1000.0, 8000.0)


def _bands(rows: int, cols: int, black: float = BLACK) -> np.ndarray:
    """A flat sensor with one vertical band of width `cols` per signal level."""
    return np.concatenate([np.full((rows, cols), black + s) for s in LEVELS], axis=1)


def _run(clean, params=None, seed=0, **kw):
    kw.setdefault("black_level", BLACK)
    kw.setdefault("white_level", WHITE)
    return synthesize(clean, iso=kw.pop("iso", 100), rng=np.random.default_rng(seed), params=params, **kw)


def test_mean_and_variance_follow_the_formula_explicit_params():
    rows, cols = 400, 200
    p = NoiseParams(gain=1.5, read_scale=1.0, read_lambda=None, row_sigma=0.0)
    out = _run(_bands(rows, cols), p).astype(np.float64) - BLACK
    n = rows * cols
    for i, s in enumerate(LEVELS):
        band = out[:, i * cols : (i + 1) * cols]
        var = 1.5 * s + 1.0 + 1.0 / 12.0  # K S + read^2 + q^2/12, q = 1 DN
        assert band.mean() == pytest.approx(s, abs=5 * math.sqrt(var / n))
        assert band.var() == pytest.approx(var, rel=5 * math.sqrt(2 / n))


@pytest.mark.parametrize("read_noise", ["profile", "gaussian"])
def test_variance_follows_the_profile_at_iso(read_noise):
    rows, cols = 1000, 100
    black, iso = 512.0, 3200
    out = _run(_bands(rows, cols, black), iso=iso, black_level=black, read_noise=read_noise)
    p = get_profile("SonyA7S2").params(iso, dn_range=WHITE - black)
    assert p.row_sigma > 0.5 and p.read_lambda == 0.1  # Tukey-lambda read noise and visible banding
    out = out.astype(np.float64) - black
    for i, s in enumerate(LEVELS):
        band = out[:, i * cols : (i + 1) * cols]
        var = float(p.variance(s))
        assert band.mean() == pytest.approx(s, abs=6 * math.sqrt(var / band.size) + 0.05)
        assert band.var() == pytest.approx(var, rel=0.04)


def test_shot_noise_is_poisson_in_electrons():
    k, electrons = 4.0, 2.0
    p = NoiseParams(gain=k, read_scale=1e-3, read_lambda=None, row_sigma=0.0)
    out = _run(np.full((200, 500), BLACK + k * electrons), p).astype(np.float64) - BLACK
    assert np.all(out % k == 0)
    counts = out / k
    n = counts.size
    for j in range(7):
        pmf = math.exp(-electrons) * electrons**j / math.factorial(j)
        assert np.mean(counts == j) == pytest.approx(pmf, abs=5 * math.sqrt(pmf * (1 - pmf) / n))


def test_tukey_read_noise_has_the_tukey_lambda_distribution():
    stats = pytest.importorskip("scipy.stats")
    scale, lam = 200.0, 0.1
    p = NoiseParams(gain=1e-6, read_scale=scale, read_lambda=lam, row_sigma=0.0)
    out = _run(np.full((400, 1000), 30000.0), p, black_level=30000.0, white_level=65535)
    z = ((out.astype(np.float64) - 30000.0) / scale).ravel()
    assert stats.kstest(z[:40000], stats.tukeylambda(lam).cdf).pvalue > 1e-3  # its cdf is slow
    # heavier tails than the Gaussian of the same variance: excess kurtosis 0.21, not 0
    assert stats.kurtosis(z) == pytest.approx(float(stats.tukeylambda.stats(lam, moments="k")), abs=0.05)
    sigma = math.sqrt(stats.tukeylambda.var(lam))
    assert stats.kstest(z, stats.norm(scale=sigma).cdf).pvalue < 1e-6


def test_row_noise_is_shared_along_the_row_including_masked_pixels():
    rows, masked, visible = 300, 16, 400
    clean = np.full((rows, masked + visible), BLACK)
    clean[:, masked:] += 200.0
    p = NoiseParams(gain=1.0, read_scale=2.0, read_lambda=None, row_sigma=6.0)
    out = _run(clean, p, active_area=(0, masked, rows, masked + visible)).astype(np.float64) - BLACK
    ob_rows = out[:, :masked].mean(axis=1)
    vis_rows = out[:, masked:].mean(axis=1)
    assert np.corrcoef(ob_rows, vis_rows)[0, 1] > 0.98
    assert ob_rows.var() == pytest.approx(36.0 + (4.0 + 1 / 12) / masked, rel=5 * math.sqrt(2 / rows))
    within = out[:, :masked] - ob_rows[:, None]
    assert within.var() * masked / (masked - 1) == pytest.approx(4.0 + 1 / 12, rel=0.05)


def test_row_noise_absent_when_sigma_zero():
    p = NoiseParams(gain=1.0, read_scale=2.0, read_lambda=None, row_sigma=0.0)
    out = _run(np.full((400, 64), BLACK), p).astype(np.float64)
    row_means = out.mean(axis=1)
    assert row_means.var() == pytest.approx((4.0 + 1 / 12) / 64, rel=0.3)


def test_same_seed_same_noise_other_seed_other_noise():
    clean = _bands(32, 16)
    a = _run(clean, iso=1600, seed=7)
    b = _run(clean, iso=1600, seed=7)
    c = _run(clean, iso=1600, seed=8)
    np.testing.assert_array_equal(a, b)
    assert np.mean(a != c) > 0.5
    j1 = _run(clean, iso=1600, seed=7, jitter=True)
    np.testing.assert_array_equal(j1, _run(clean, iso=1600, seed=7, jitter=True))


def test_quantisation_and_clipping():
    p = NoiseParams(gain=1.0, read_scale=3.0, read_lambda=None, row_sigma=0.0)
    bright = _run(np.full((8, 8), 30000.0), p)
    assert bright.dtype == np.uint16 and np.all(bright == 2**14 - 1)
    dark = _run(np.zeros((100, 100)), p, black_level=0.0)
    assert dark.min() == 0 and 0.4 < np.mean(dark == 0) < 0.65  # half the read noise is below 0
    twelve = _run(np.full((8, 8), 5000.0), p, bits=12)
    assert np.all(twelve == 4095)
    # rounding, not truncation: an unbiased mean at a fractional level
    frac = _run(np.full((300, 300), BLACK + 0.3), NoiseParams(0.01, 1.0, None, 0.0)).astype(np.float64)
    assert frac.mean() - BLACK == pytest.approx(0.3, abs=0.02)


@pytest.mark.parametrize("profile", ["SonyA7S2", "NikonD850", "CanonEOS70D", "OPPOReno10x"])
def test_noise_increases_with_iso(profile):
    clean = np.full((200, 200), 512.0)
    clean[:, 100:] += 2000.0
    stds = []
    for iso in (100, 400, 1600, 6400, 25600):
        out = _run(clean, iso=iso, black_level=512.0, profile=profile).astype(np.float64)
        stds.append((out[:, :100].std(), out[:, 100:].std()))
    stds = np.array(stds)
    assert np.all(np.diff(stds, axis=0) > 0)


def test_black_pattern_follows_the_active_area_phase():
    bl = np.array([[500.0, 510.0], [520.0, 530.0]])
    area = (1, 3, 241, 303)
    p = NoiseParams(gain=0.01, read_scale=0.5, read_lambda=None, row_sigma=0.0)
    out = _run(np.zeros((241, 303)), p, black_level=bl, active_area=area).astype(np.float64)
    # sensor pixel (y, x) has the black of visible position ((y - 1) % 2, (x - 3) % 2)
    assert out[1::2, 1::2].mean() == pytest.approx(500.0, abs=0.05)
    assert out[1::2, 0::2].mean() == pytest.approx(510.0, abs=0.05)
    assert out[0::2, 1::2].mean() == pytest.approx(520.0, abs=0.05)
    assert out[0::2, 0::2].mean() == pytest.approx(530.0, abs=0.05)
    np.testing.assert_array_equal(black_map((4, 4), bl, (0, 0, 4, 4))[:2, :2], bl)


def test_bad_inputs_raise_with_a_sentence():
    clean = np.full((8, 8), BLACK)
    with pytest.raises(ValueError, match="`sensor_clean`"):
        _run(np.zeros(8))
    with pytest.raises(TypeError, match="`rng`"):
        synthesize(clean, iso=100, black_level=BLACK, white_level=WHITE, rng=0)
    with pytest.raises(ValueError, match="`black_level`"):
        _run(clean, black_level=np.zeros(3))
    with pytest.raises(ValueError, match="`white_level`"):
        _run(clean, black_level=20000.0)
    with pytest.raises(ValueError, match="`active_area`"):
        _run(clean, active_area=(0, 0, 9, 8))
    with pytest.raises(ValueError, match="`iso`"):
        _run(clean, iso=-100)
    with pytest.raises(ValueError, match="`read_noise`"):
        _run(clean, read_noise="laplace")
    with pytest.raises(ValueError, match="`profile`"):
        _run(clean, profile="nope")
    with pytest.raises(ValueError, match="`bits`"):
        _run(clean, bits=17)


def _frame(sensor, area, bl=((512, 512), (512, 512)), white=16383.0, iso=100.0, exposure=0.5):
    bl = np.array(bl, dtype=np.float64)
    top, left, bottom, right = area
    black = black_map(sensor.shape, bl, area)
    norm = (sensor.astype(np.float32) - black) / (np.float32(white) - black)
    return RawFrame(
        path="clean.dng",
        mosaic=norm[top:bottom, left:right],
        cfa="GRBG",
        black_level=bl,
        white_level=white,
        sensor=sensor,
        active_area=area,
        metadata=RawMetadata(iso=iso, exposure_time=exposure, timestamp=datetime(2024, 1, 1)),
        optical_black=OpticalBlack(left=norm[top:bottom, :left] if left else None),
    )


def test_synthesize_frame_puts_the_same_noise_in_mosaic_and_margins():
    rows, masked, w = 200, 16, 300
    sensor = np.full((rows + 8, masked + w), 512, dtype=np.uint16)
    sensor[8:, masked:] += 40
    clean = _frame(sensor, (8, masked, rows + 8, masked + w))
    noisy = synthesize_frame(clean, iso=25600, rng=np.random.default_rng(0))
    assert noisy.path is None and noisy.cfa == "GRBG"
    assert noisy.sensor.dtype == np.uint16 and noisy.sensor.shape == sensor.shape
    assert noisy.active_area == clean.active_area
    assert noisy.metadata.iso == 25600 and noisy.metadata.exposure_time == pytest.approx(0.5 * 100 / 25600)
    np.testing.assert_allclose(noisy.mosaic, (noisy.sensor[8:, masked:] - 512.0) / (16383 - 512), atol=1e-6)
    assert noisy.mosaic.mean() * (16383 - 512) == pytest.approx(40, abs=1.5)
    assert noisy.optical_black.left.shape == (rows, masked)
    assert noisy.optical_black.top.shape == (8, w)
    # ISO 25600 on the SonyA7S2 profile: ~3 DN row noise, which the masked columns see too
    # (expected correlation of the row means ~0.77 given the read and shot noise of each mean)
    ob = noisy.optical_black.left.mean(axis=1)
    vis = noisy.mosaic.mean(axis=1)
    assert np.corrcoef(ob, vis)[0, 1] > 0.5
    no_row = synthesize_frame(clean, iso=25600, rng=np.random.default_rng(0), profile="OPPOReno10x")
    assert abs(np.corrcoef(no_row.optical_black.left.mean(axis=1), no_row.mosaic.mean(axis=1))[0, 1]) < 0.3
    assert clean.metadata.iso == 100  # the input is untouched


def test_synthesize_frame_adds_virtual_masked_columns_when_the_file_has_none():
    sensor = np.full((64, 96), 600, dtype=np.uint16)
    clean = _frame(sensor, (0, 0, 64, 96), bl=((500, 510), (520, 530)), iso=None, exposure=0.1)
    noisy = synthesize_frame(clean, iso=25600, rng=np.random.default_rng(1), profile="CanonEOS70D")
    assert noisy.sensor.shape == (64, 96 + 16)
    assert noisy.active_area == (0, 16, 64, 112)
    assert noisy.mosaic.shape == (64, 96)
    assert noisy.optical_black.left.shape == (64, 16)
    assert noisy.optical_black.top is None and noisy.optical_black.right is None
    # the virtual columns hold the per-position black (phase kept) plus noise: mean 0 after normalising
    assert abs(float(noisy.optical_black.left.mean())) < 2e-3
    assert noisy.metadata.iso == 25600 and noisy.metadata.exposure_time == 0.1  # ISO unknown: kept
    none = synthesize_frame(clean, iso=800, rng=np.random.default_rng(1), virtual_columns=0)
    assert none.sensor.shape == (64, 96) and none.optical_black.left is None
    with pytest.raises(ValueError, match="`virtual_columns`"):
        synthesize_frame(clean, iso=800, rng=np.random.default_rng(1), virtual_columns=3)
    with pytest.raises(TypeError, match="`frame`"):
        synthesize_frame(sensor, iso=800, rng=np.random.default_rng(1))


def test_synthetic_noise_callable_samples_iso_in_range_and_is_seedable():
    sensor = np.full((40, 80), 700, dtype=np.uint16)
    clean = _frame(sensor, (0, 16, 40, 80))
    noise = SyntheticNoise(profile="NikonD850", iso_range=(200, 3200))
    isos = [noise.sample_iso(np.random.default_rng(i)) for i in range(200)]
    assert 200 <= min(isos) and max(isos) <= 3200
    assert np.median(np.log2(isos)) == pytest.approx(math.log2(800), abs=0.4)  # log-uniform
    a = noise(clean, np.random.default_rng(5))
    b = noise(clean, np.random.default_rng(5))
    np.testing.assert_array_equal(a.sensor, b.sensor)
    assert 200 <= a.metadata.iso <= 3200
    assert noise(clean, np.random.default_rng(5), iso=1600).metadata.iso == 1600
    with pytest.raises(ValueError, match="`iso_range`"):
        SyntheticNoise(iso_range=(800, 100))
    with pytest.raises(ValueError, match="`profile`"):
        SyntheticNoise(profile="nope")


def test_synthesize_frame_on_a_real_dng_matches_what_read_returns_for_its_sensor(sample_root, tmp_path):
    from isp.raw import read, write_dng

    clean = read(sample_root / "train" / "clean" / "train0001.dng")
    noisy = synthesize_frame(clean, iso=12800, rng=np.random.default_rng(0))
    path = write_dng(
        tmp_path / "n.dng",
        noisy.sensor,
        cfa=noisy.cfa,
        black_level=noisy.black_level,
        white_level=noisy.white_level,
        active_area=noisy.active_area,
        metadata=noisy.metadata,
    )
    back = read(path)
    assert back.cfa == clean.cfa and back.metadata.iso == 12800
    assert back.metadata.exposure_time == pytest.approx(clean.metadata.exposure_time / 128, rel=1e-4)
    np.testing.assert_array_equal(back.mosaic, noisy.mosaic)
    np.testing.assert_array_equal(back.optical_black.left, noisy.optical_black.left)
    np.testing.assert_array_equal(back.optical_black.top, noisy.optical_black.top)
    assert np.abs(noisy.mosaic - clean.mosaic).mean() > 1e-3


def _dark_frame(rows, masked, w):
    from isp.raw import frame_from_sensor

    return frame_from_sensor(
        np.full((rows, masked + w), 512, dtype=np.uint16),
        cfa="RGGB",
        black_level=512,
        white_level=16383,
        active_area=(0, masked, rows, masked + w),
        metadata=RawMetadata(iso=100.0, exposure_time=1.0),
    )


def _vectors_follow_visible_rows(frame, min_corr):
    from isp.raw import noise_vectors, pack

    row, _ = noise_vectors(frame)
    planes, _ = pack(frame)
    h = frame.mosaic.shape[0] // 2
    assert row.shape == (5, h) and planes.shape[1] == h and np.all(row[4] == 1)
    # the dark visible rows' means are the row noise (+ read noise / sqrt(W)); the vectors agree
    vis = frame.mosaic.mean(axis=1)
    assert np.corrcoef(row[0], vis[0::2])[0, 1] > min_corr
    assert np.corrcoef(row[2], vis[1::2])[0, 1] > min_corr


def test_noise_vectors_of_a_synthesized_sensor_see_the_row_noise():
    from isp.raw import frame_from_sensor

    clean = _dark_frame(400, 64, 400)
    p = NoiseParams(gain=1.0, read_scale=2.0, read_lambda=None, row_sigma=8.0)
    kw = {"black_level": 512, "white_level": 16383, "active_area": clean.active_area}
    sensor = synthesize(clean.sensor.astype(np.float32), iso=1, rng=np.random.default_rng(0), params=p, **kw)
    _vectors_follow_visible_rows(frame_from_sensor(sensor, cfa="RGGB", **kw), 0.9)


def test_noise_vectors_of_a_synthesized_frame_without_margins_use_virtual_columns():
    # ISO 25600 SonyA7S2: row sigma ~3 DN, read std ~12 DN over 16 virtual columns: corr ~0.7
    noisy = synthesize_frame(_dark_frame(400, 0, 400), iso=25600, rng=np.random.default_rng(0))
    _vectors_follow_visible_rows(noisy, 0.5)
