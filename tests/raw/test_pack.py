import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isp.raw import BAYER_PATTERNS, RawFrame, frame_from_sensor
from isp.raw.pack import PACKED_CHANNELS, pack, pad_to_rggb, phase_crop, unpack


def _colour_mosaic(cfa, h, w):
    """Mosaic whose value encodes the colour at each pixel: R 1, Gr 2, Gb 3, B 4 (independent reference)."""
    rows = []
    for i in range(h):
        row = []
        for j in range(w):
            c = cfa[2 * (i % 2) + (j % 2)]
            if c == "G":
                # the green sharing a row with red is Gr
                red_row = cfa[2 * (i % 2)] == "R" or cfa[2 * (i % 2) + 1] == "R"
                row.append(2.0 if red_row else 3.0)
            else:
                row.append({"R": 1.0, "B": 4.0}[c])
        rows.append(row)
    return np.array(rows, dtype=np.float32)


@pytest.mark.parametrize("cfa", BAYER_PATTERNS)
@pytest.mark.parametrize("shape", [(6, 8), (7, 9), (6, 9), (7, 8)])
def test_planes_are_r_gr_gb_b(cfa, shape):
    planes, info = pack(_colour_mosaic(cfa, *shape), cfa)
    assert PACKED_CHANNELS == ("R", "Gr", "Gb", "B")
    for k in range(4):
        assert np.all(planes[k] == k + 1), (cfa, k)
    h, w = shape
    top, left = phase_crop(cfa)
    assert planes.shape == (4, (h - top) // 2, (w - left) // 2)
    assert planes.flags.c_contiguous and planes.dtype == np.float32


def test_packed_positions_match_pixel_unshuffle_order():
    m = np.arange(6 * 8, dtype=np.float32).reshape(6, 8)
    planes, _ = pack(m, "RGGB")
    # channel k = (row parity, column parity) = divmod(k, 2), as pixel_unshuffle orders them
    for k in range(4):
        i, j = divmod(k, 2)
        np.testing.assert_array_equal(planes[k], m[i::2, j::2])


@settings(max_examples=60, deadline=None)
@given(
    cfa=st.sampled_from(BAYER_PATTERNS),
    h=st.integers(3, 13),
    w=st.integers(3, 13),
    seed=st.integers(0, 2**16),
)
def test_unpack_restores_exactly(cfa, h, w, seed):
    m = np.random.default_rng(seed).standard_normal((h, w)).astype(np.float32)
    planes, info = pack(m, cfa)
    back = unpack(planes, info)
    assert back.dtype == m.dtype
    np.testing.assert_array_equal(back, m)
    # edits to the planes land on the right pixels
    back2 = unpack(planes + 1, info)
    core = (slice(info.top, h - info.bottom), slice(info.left, w - info.right))
    np.testing.assert_array_equal(back2[core], m[core] + 1)
    outside = np.ones((h, w), bool)
    outside[core] = False
    np.testing.assert_array_equal(back2[outside], m[outside])


def test_pack_frame_uses_its_cfa():
    sensor = np.arange(7 * 9, dtype=np.uint16).reshape(7, 9) + 10
    frame = frame_from_sensor(sensor, cfa="GBRG", black_level=10, white_level=1010)
    assert isinstance(frame, RawFrame)
    planes, info = pack(frame)
    assert info.cfa == "GBRG" and (info.top, info.left) == (1, 0)
    np.testing.assert_array_equal(planes[0], frame.mosaic[1::2, 0::2][:3, :4])
    with pytest.raises(ValueError, match="frame's 'GBRG'"):
        pack(frame, "RGGB")


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((np.zeros((4, 4)),), ValueError, "`cfa`"),
        ((np.zeros((4, 4)), "RGBG"), ValueError, "`cfa`"),
        ((np.zeros((4, 4, 1)), "RGGB"), ValueError, "2-d"),
        (([[1.0]], "RGGB"), TypeError, "RawFrame or a numpy"),
        ((np.zeros((2, 4)), "BGGR"), ValueError, "at least"),
    ],
)
def test_pack_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        pack(*args)


def test_unpack_bad_input():
    planes, info = pack(np.zeros((6, 6), np.float32), "RGGB")
    with pytest.raises(ValueError, match=r"shape \(4, 3, 3\)"):
        unpack(planes[:, :2], info)
    with pytest.raises(TypeError, match="PackInfo"):
        unpack(planes, None)


@pytest.mark.parametrize("cfa", BAYER_PATTERNS)
@pytest.mark.parametrize("active_area", [(2, 4, 31, 41), (2, 4, 32, 40), (0, 0, 33, 44)])
def test_lazy_frame_packs_like_its_mosaic(cfa, active_area):
    rng = np.random.default_rng(5)
    sensor = rng.integers(0, 4096, size=(33, 44), dtype=np.uint16)
    black = np.array([[60.0, 70.0], [80.0, 90.0]])
    lazy = frame_from_sensor(
        sensor, cfa=cfa, black_level=black, white_level=4095, active_area=active_area, lazy=True
    )
    planes, info = pack(lazy)  # straight from the sensor
    assert not lazy.mosaic_ready
    eager = frame_from_sensor(sensor, cfa=cfa, black_level=black, white_level=4095, active_area=active_area)
    planes2, info2 = pack(eager.mosaic, cfa)
    np.testing.assert_array_equal(planes, planes2)  # bit-identical
    for name in ("top_rows", "bottom_rows", "left_cols", "right_cols"):
        np.testing.assert_array_equal(getattr(info, name), getattr(info2, name))
    np.testing.assert_array_equal(unpack(planes, info), eager.mosaic)
    np.testing.assert_array_equal(lazy.mosaic, eager.mosaic)
    assert lazy.mosaic_ready


@pytest.mark.parametrize("offset", [(0, 0), (1, 1), (2, 3)])
def test_normalize_packed_fast_and_generic_paths_agree(offset):
    from isp.raw.levels import normalize, normalize_packed

    rng = np.random.default_rng(6)
    sensor = rng.integers(0, 65535, size=(40, 50), dtype=np.uint16)
    r, c = offset
    raw = sensor[r : r + 34, c : c + 44]  # uint16 rows: fast path (aligned or not)
    black = np.array([[60.0, 70.0], [80.0, 90.0]])
    fast = normalize_packed(raw, black, 65535)
    generic = normalize_packed(raw.astype(np.int32), black, 65535)  # not uint16: generic path
    reference, _ = pack(normalize(raw, black, 65535), "RGGB")
    np.testing.assert_array_equal(fast, reference)
    np.testing.assert_array_equal(generic, reference)


def _mirror(mosaic, top, left, bottom, right):
    """The independent reference: numpy's reflect padding (row -1 is row 1, row H is row H - 2)."""
    return np.pad(mosaic, ((top, bottom), (left, right)), mode="reflect")


@pytest.mark.parametrize("cfa", BAYER_PATTERNS)
@pytest.mark.parametrize("active_area", [(2, 4, 31, 41), (2, 4, 32, 40), (0, 0, 33, 44), (1, 0, 32, 43)])
@pytest.mark.parametrize("lazy", [True, False])
def test_pad_to_rggb_mirrors_every_crop_away(cfa, active_area, lazy):
    rng = np.random.default_rng(7)
    sensor = rng.integers(100, 4096, size=(33, 44), dtype=np.uint16)
    black = np.array([[60.0, 70.0], [80.0, 90.0]])  # one level per position: the pad must move them
    frame = frame_from_sensor(
        sensor, cfa=cfa, black_level=black, white_level=4095, active_area=active_area, lazy=lazy
    )
    H, W = frame.visible_shape
    top, left = phase_crop(cfa)
    want = (top, left, (H + top) % 2, (W + left) % 2)
    padded, pads = pad_to_rggb(frame)
    assert pads == want
    assert padded.cfa == "RGGB" and padded.visible_shape == (H + want[0] + want[2], W + want[1] + want[3])
    kw = dict(cfa=cfa, black_level=black, white_level=4095, active_area=active_area)
    mosaic = frame_from_sensor(sensor, **kw).mosaic
    np.testing.assert_array_equal(padded.mosaic, _mirror(mosaic, *want))
    planes, info = pack(padded)
    assert (info.top, info.left, info.bottom, info.right) == (0, 0, 0, 0)  # nothing cropped
    np.testing.assert_array_equal(unpack(planes, info)[top : top + H, left : left + W], mosaic)
    # the masked columns of an added row are its mirror's, like its visible pixels
    t, lft = active_area[:2]
    if lft:
        ob = padded.optical_black.left
        np.testing.assert_array_equal(ob, _mirror(frame.optical_black.left, want[0], 0, want[2], 0))
        assert ob.shape[0] == padded.visible_shape[0]
    if t:
        ob = padded.optical_black.top
        np.testing.assert_array_equal(ob, _mirror(frame.optical_black.top, 0, want[1], 0, want[3]))
    if not any(want):
        assert padded is frame


def test_pad_to_rggb_keeps_a_frame_too_small_to_mirror():
    frame = frame_from_sensor(np.full((2, 9), 500, np.uint16), cfa="GRBG", black_level=0, white_level=1000)
    assert pad_to_rggb(frame) == (frame, (0, 0, 0, 0))
    with pytest.raises(TypeError, match="RawFrame"):
        pad_to_rggb(np.zeros((4, 4)))
