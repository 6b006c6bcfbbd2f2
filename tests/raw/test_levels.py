"""Back to DN: isp.raw.levels.denormalize against a per-pixel reference."""

from __future__ import annotations

import numpy as np
import pytest

from isp.raw import RawFrame, denormalize, normalize


def test_denormalize_matches_per_pixel_reference():
    rng = np.random.default_rng(0)
    hs, ws, area = 13, 20, (3, 5, 13, 19)  # odd sizes, visible 10 x 14
    sensor = rng.integers(0, 4096, size=(hs, ws)).astype(np.uint16)
    black = np.array([[60.0, 64.0], [66.0, 70.0]])
    frame = RawFrame(None, np.zeros((10, 14), np.float32), "GRBG", black, 4000.0, sensor, area)
    mosaic = rng.uniform(-0.05, 1.05, size=(10, 14)).astype(np.float32)
    mosaic[0, 0], mosaic[1, 1] = -1.0, 20.0  # clipped to 0 and 65535
    out = denormalize(frame, mosaic, chunk_rows=4)
    expected = sensor.copy()
    for y in range(10):
        for x in range(14):
            b = black[y % 2, x % 2]
            expected[3 + y, 5 + x] = min(max(round(float(mosaic[y, x]) * (4000.0 - b) + b), 0), 65535)
    np.testing.assert_array_equal(out, expected)
    assert out[3, 5] == 0 and out[4, 6] == 65535
    np.testing.assert_array_equal(out[:3], sensor[:3])  # masked margins untouched
    with pytest.raises(ValueError, match="visible shape"):
        denormalize(frame, mosaic[:-2])


def test_denormalize_inverts_normalize_up_to_rounding():
    rng = np.random.default_rng(1)
    sensor = rng.integers(500, 16000, size=(8, 12)).astype(np.uint16)
    black = np.array([[512.0, 510.0], [514.0, 511.0]])
    mosaic = normalize(sensor, black, 16383.0)
    frame = RawFrame(None, mosaic, "RGGB", black, 16383.0, sensor, (0, 0, 8, 12))
    np.testing.assert_array_equal(denormalize(frame, mosaic), sensor)


def test_a_non_finite_mosaic_is_refused():
    frame = RawFrame(
        None,
        np.zeros((2, 2), np.float32),
        "RGGB",
        np.zeros(4),
        1.0,
        np.zeros((2, 2), np.uint16),
        (0, 0, 2, 2),
    )
    with pytest.raises(ValueError, match="finite"):
        denormalize(frame, np.array([[0.0, np.nan], [0.0, 0.0]], np.float32))
