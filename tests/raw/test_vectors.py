import numpy as np
import pytest

from isp.raw import (
    BAYER_PATTERNS,
    COL_CHANNELS,
    ROW_CHANNELS,
    frame_from_sensor,
    noise_vectors,
    pack,
    read,
    write_dng,
)

BLACK, WHITE = 512.0, 16383.0
DN = 1.0 / (WHITE - BLACK)


def _banded_sensor(seed, hs=88, ws=120, read_sigma=3.0, row_sigma=2.0, col_sigma=2.0):
    rng = np.random.default_rng(seed)
    rows = rng.normal(0.0, row_sigma, size=(hs, 1))
    cols = rng.normal(0.0, col_sigma, size=(1, ws))
    dn = BLACK + rows + cols + rng.normal(0.0, read_sigma, size=(hs, ws))
    return np.round(dn).astype(np.uint16), rows[:, 0], cols[0]


# 64 x 96 visible at (12, 16): 16 masked columns left, 8 right, 12 masked rows top and bottom
ACTIVE = (12, 16, 76, 112)


@pytest.mark.parametrize("cfa", BAYER_PATTERNS)
def test_vectors_recover_injected_row_and_column_noise(tmp_path, cfa):
    sensor, rows, cols = _banded_sensor(0)
    frame = read(
        write_dng(
            tmp_path / "b.dng", sensor, cfa=cfa, black_level=BLACK, white_level=WHITE, active_area=ACTIVE
        )
    )
    row, col = noise_vectors(frame)
    planes, info = pack(frame)
    assert row.shape == (ROW_CHANNELS, planes.shape[1]) and col.shape == (COL_CHANNELS, planes.shape[2])
    assert row.dtype == np.float32 and col.dtype == np.float32
    top, left = ACTIVE[0] + info.top, ACTIVE[1] + info.left  # sensor row/col of packed row/col 0
    h, w = planes.shape[1:]
    even_rows, odd_rows = rows[top : top + 2 * h : 2], rows[top + 1 : top + 2 * h : 2]
    assert np.corrcoef(row[0], even_rows)[0, 1] >= 0.9
    assert np.corrcoef(row[2], odd_rows)[0, 1] >= 0.9
    # columns from 24 masked rows: noise of the estimate sqrt(13 / 24) DN vs 2 DN signal, corr ~0.94
    even_cols, odd_cols = cols[left : left + 2 * w : 2], cols[left + 1 : left + 2 * w : 2]
    assert np.corrcoef(col[0], even_cols)[0, 1] >= 0.9
    assert np.corrcoef(col[2], odd_cols)[0, 1] >= 0.9
    np.testing.assert_array_equal(row[4], 1.0)
    np.testing.assert_array_equal(col[4], 1.0)
    # row spread: read noise + column noise across the 24 masked pixels, sqrt(3^2 + 2^2) DN
    assert np.median(row[1]) / DN == pytest.approx(np.sqrt(13.0), rel=0.2)


def test_alignment_is_exact():
    # masked pixel of sensor row r holds black + r DN; column c of the masked rows holds black + c
    hs, ws = 40, 50
    sensor = np.full((hs, ws), BLACK, dtype=np.float64)
    sensor[:, :4] += np.arange(hs)[:, None]
    sensor[:, 46:] += np.arange(hs)[:, None]
    sensor[:2, 4:46] += np.arange(ws)[None, 4:46]
    sensor[38:, 4:46] += np.arange(ws)[None, 4:46]
    sensor = sensor.astype(np.uint16)
    for cfa in BAYER_PATTERNS:
        frame = frame_from_sensor(
            sensor, cfa=cfa, black_level=BLACK, white_level=WHITE, active_area=(2, 4, 38, 46)
        )
        row, col = noise_vectors(frame)
        _, info = pack(frame)
        t, lft = 2 + info.top, 4 + info.left
        k = np.arange(row.shape[1])
        np.testing.assert_allclose(row[0], (t + 2 * k) * DN, rtol=1e-5)
        np.testing.assert_allclose(row[2], (t + 2 * k + 1) * DN, rtol=1e-5)
        np.testing.assert_allclose(row[1], 0.0, atol=1e-7)
        k = np.arange(col.shape[1])
        np.testing.assert_allclose(col[0], (lft + 2 * k) * DN, rtol=1e-5)
        np.testing.assert_allclose(col[2], (lft + 2 * k + 1) * DN, rtol=1e-5)


def test_matches_plain_mean_and_std_without_outliers():
    rng = np.random.default_rng(3)
    sensor = np.round(BLACK + rng.normal(0, 4, size=(30, 40))).astype(np.uint16)
    frame = frame_from_sensor(
        sensor, cfa="RGGB", black_level=BLACK, white_level=WHITE, active_area=(0, 6, 30, 37)
    )
    row, _ = noise_vectors(frame)
    masked = np.concatenate([frame.optical_black.left, frame.optical_black.right], axis=1).astype(np.float64)
    np.testing.assert_allclose(row[0], masked.mean(axis=1)[0::2][:15], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(row[3], masked.std(axis=1)[1::2][:15], rtol=1e-5, atol=1e-9)


def test_a_hot_masked_pixel_does_not_fake_a_band():
    rng = np.random.default_rng(4)
    sensor = np.round(BLACK + rng.normal(0, 3, size=(30, 40))).astype(np.uint16)
    frame = frame_from_sensor(
        sensor, cfa="RGGB", black_level=BLACK, white_level=WHITE, active_area=(0, 16, 30, 40)
    )
    clean, _ = noise_vectors(frame)
    sensor[10, 3] = 16000  # hot pixel in the left margin, row 10 = packed row 5, even row
    hot, _ = noise_vectors(
        frame_from_sensor(
            sensor, cfa="RGGB", black_level=BLACK, white_level=WHITE, active_area=(0, 16, 30, 40)
        )
    )
    # plain mean would move by ~15500 / 16 ~ 970 DN; winsorised by at most ~8 * 3 / 16 + noise
    assert abs(hot[0, 5] - clean[0, 5]) / DN < 3.0


def test_fallback_without_masked_pixels():
    sensor = np.full((24, 30), 600, np.uint16)
    row, col = noise_vectors(frame_from_sensor(sensor, cfa="GRBG", black_level=BLACK, white_level=WHITE))
    assert row.shape == (5, 12) and col.shape == (5, 14)
    assert not row.any() and not col.any()
    # masked columns only: rows measured, columns not
    frame = frame_from_sensor(
        sensor, cfa="GRBG", black_level=BLACK, white_level=WHITE, active_area=(0, 4, 24, 30)
    )
    row, col = noise_vectors(frame)
    np.testing.assert_array_equal(row[4], 1.0)
    assert not col.any()


def test_bad_input():
    with pytest.raises(TypeError, match="RawFrame"):
        noise_vectors(np.zeros((4, 4)))
