import itertools

import numpy as np
import pytest

from isp.data.window import frame_window
from isp.raw import BAYER_PATTERNS, frame_from_sensor, noise_vectors, pack

HS, WS = 31, 41
AREA = (3, 5, 29, 38)  # 26 x 33 visible, masked margins on all four sides (3 / 2 rows, 5 / 3 columns)


def coded_frame(cfa):
    # each pixel's value encodes where it sits, so the window's pixels can be traced back
    sensor = (100 + np.arange(HS * WS).reshape(HS, WS)).astype(np.uint16)
    return frame_from_sensor(
        sensor, cfa=cfa, black_level=np.array([[60, 62], [64, 66]]), white_level=4095, active_area=AREA
    )


@pytest.mark.parametrize("cfa", BAYER_PATTERNS)
def test_window_packs_to_the_crop_and_keeps_every_pixel_colour(cfa):
    frame = coded_frame(cfa)
    planes = pack(frame)[0]
    h, w = planes.shape[1:]
    for top, left, height, width in [(0, 0, 3, 4), (2, 3, 5, 2), (h - 4, w - 5, 4, 5), (0, 0, h, w)]:
        win = frame_window(frame, top, left, height, width)
        assert win.cfa == "RGGB"
        np.testing.assert_array_equal(pack(win)[0], planes[:, top : top + height, left : left + width])
        # trace every window pixel to the sensor: row / column parities must shift by a constant
        origin = np.asarray(win.sensor, dtype=np.int64) - 100
        r, c = origin // WS, origin % WS
        i, j = np.indices(origin.shape)
        assert len(np.unique((r - i) % 2)) == 1 and len(np.unique((c - j) % 2)) == 1
        # the masked margins are still there, around the window
        t, le, b, ri = win.active_area
        assert (r[:t] < AREA[0]).all() and (r[b:] >= AREA[2]).all()
        assert (c[:, :le] < AREA[1]).all() and (c[:, ri:] >= AREA[3]).all()
        assert t >= AREA[0] - 1 and le >= AREA[1] - 1  # at most one masked line given up


def test_window_noise_vectors_match_the_whole_frame_where_no_line_is_dropped():
    rng = np.random.default_rng(0)
    sensor = (rng.normal(200, 4, (HS, WS)) + rng.normal(0, 3, (HS, 1))).astype(np.uint16)
    frame = frame_from_sensor(
        sensor, cfa="RGGB", black_level=200, white_level=4095, active_area=(2, 4, 28, 36)
    )
    row, col = noise_vectors(frame)
    for top, left in itertools.product([0, 3], [0, 5]):
        win = frame_window(frame, top, left, 6, 8)
        assert win.active_area[:2] == (2, 4)  # RGGB and even offsets: every masked line kept
        wrow, wcol = noise_vectors(win)
        np.testing.assert_allclose(wrow, row[:, top : top + 6], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(wcol, col[:, left : left + 8], rtol=1e-6, atol=1e-7)


def test_window_outside_the_frame_is_refused():
    with pytest.raises(ValueError, match="inside the packed frame"):
        frame_window(coded_frame("RGGB"), 10, 0, 4, 4)
