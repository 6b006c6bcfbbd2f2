"""Crop / flip / transpose of packed planes checked against an independently flipped mosaic."""

import itertools

import numpy as np
import pytest

from isp.data.transforms import CropParams, center_crop_params, crop_and_flip, random_crop_params


def pack_rggb(mosaic):
    return np.stack([mosaic[0::2, 0::2], mosaic[0::2, 1::2], mosaic[1::2, 0::2], mosaic[1::2, 1::2]])


def vectors(per_line_offset, per_line_spread, valid):
    """(5, n) vectors from per-mosaic-line values: even line offset/spread, odd line, validity."""
    return np.stack(
        [per_line_offset[0::2], per_line_spread[0::2], per_line_offset[1::2], per_line_spread[1::2], valid]
    )


def reference(mosaic_shape, p):
    """Mosaic coordinates (Y, X) of the output: flip the mosaic window, shift to RGGB, transpose."""
    ys, xs = np.indices(mosaic_shape)
    t, le = 2 * p.top, 2 * p.left
    hh, ww = 2 * (p.height + p.vflip), 2 * (p.width + p.hflip)
    ys, xs = ys[t : t + hh, le : le + ww], xs[t : t + hh, le : le + ww]
    if p.hflip:  # mirrored window starts with a G column: drop it to get back to RGGB
        ys, xs = ys[:, ::-1][:, 1 : 1 + 2 * p.width], xs[:, ::-1][:, 1 : 1 + 2 * p.width]
    if p.vflip:
        ys, xs = ys[::-1][1 : 1 + 2 * p.height], xs[::-1][1 : 1 + 2 * p.height]
    if p.transpose:
        ys, xs = ys.T, xs.T
    return ys, xs


@pytest.mark.parametrize("hflip,vflip,transpose", list(itertools.product([False, True], repeat=3)))
def test_crop_and_flip_matches_flipped_mosaic(hflip, vflip, transpose):
    rng = np.random.default_rng(1)
    big_h, big_w = 9, 11  # packed
    mosaic = rng.normal(size=(2 * big_h, 2 * big_w)).astype(np.float32)
    row_off, row_spr = rng.normal(size=2 * big_h), rng.normal(size=2 * big_h)
    col_off, col_spr = rng.normal(size=2 * big_w), rng.normal(size=2 * big_w)
    row = vectors(row_off, row_spr, np.ones(big_h))
    col = vectors(col_off, col_spr, np.ones(big_w))
    p = CropParams(top=2, left=3, height=5, width=5, hflip=hflip, vflip=vflip, transpose=transpose)

    out, r, c = crop_and_flip(pack_rggb(mosaic), row, col, p)

    ys, xs = reference(mosaic.shape, p)
    # every output pixel of a colour came from a mosaic pixel of that colour (R 0, G 1, B 2)
    source_colour = pack_rggb(np.array([[0, 1], [1, 2]])[ys % 2, xs % 2])
    assert (source_colour == np.array([0, 1, 1, 2])[:, None, None]).all()
    np.testing.assert_array_equal(out, pack_rggb(mosaic[ys, xs]))
    # the vectors follow the lines: output row y came from mosaic row ys[y, 0] (or column, transposed)
    if transpose:
        ref_r = vectors(col_off[xs[:, 0]], col_spr[xs[:, 0]], np.ones(p.width))
        ref_c = vectors(row_off[ys[0, :]], row_spr[ys[0, :]], np.ones(p.height))
    else:
        ref_r = vectors(row_off[ys[:, 0]], row_spr[ys[:, 0]], np.ones(p.height))
        ref_c = vectors(col_off[xs[0, :]], col_spr[xs[0, :]], np.ones(p.width))
    np.testing.assert_array_equal(r, ref_r)
    np.testing.assert_array_equal(c, ref_c)


def test_validity_is_kept_where_both_lines_were_measured():
    planes = np.zeros((4, 4, 4), np.float32)
    row = np.ones((5, 4))
    row[4, 2] = 0  # packed row 2 not measured
    col = np.zeros((5, 4))
    _, r, c = crop_and_flip(planes, row, col, CropParams(0, 0, 3, 3, vflip=True))
    # vflip: even rows 1..3, odd rows 0..2, mirrored -> output row k uses even 3-k and odd 2-k
    assert r[4].tolist() == [0.0, 0.0, 1.0]
    assert not c[4].any()


def test_crop_out_of_bounds_names_the_crop():
    planes, row, col = np.zeros((4, 4, 4)), np.zeros((5, 4)), np.zeros((5, 4))
    with pytest.raises(ValueError, match="inside planes of 4x4"):
        crop_and_flip(planes, row, col, CropParams(0, 0, 4, 4, hflip=True))
    with pytest.raises(ValueError, match=r"`row` of shape \(5, 4\)"):
        crop_and_flip(planes, np.zeros((5, 3)), col, CropParams(0, 0, 2, 2))


def test_random_crop_covers_every_offset_and_flip():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(400):
        p = random_crop_params((6, 5), 4, rng)
        out, _, _ = crop_and_flip(np.zeros((4, 6, 5)), np.zeros((5, 6)), np.zeros((5, 5)), p)
        assert out.shape == (4, 4, 4)
        seen.add((p.top, p.left, p.hflip, p.vflip, p.transpose))
    # hflip needs 5 columns: left 0 only; no hflip: left 0..1; same for rows (0..2 / 0..1)
    assert {(s[2], s[1]) for s in seen} == {(False, 0), (False, 1), (True, 0)}
    assert {(s[3], s[0]) for s in seen} == {(False, 0), (False, 1), (False, 2), (True, 0), (True, 1)}
    assert {s[4] for s in seen} == {False, True}
    assert random_crop_params((6, 5), 4, np.random.default_rng(0), augment=False).hflip is False


def test_random_crop_is_reproducible_and_rejects_large_crops():
    a = [random_crop_params((50, 60), 16, np.random.default_rng(3)) for _ in range(2)]
    assert a[0] == a[1]
    with pytest.raises(ValueError, match="crop_size"):
        random_crop_params((10, 60), 16, np.random.default_rng(0))


def test_center_crop_is_fixed_and_centred():
    assert center_crop_params((10, 8), 4) == CropParams(3, 2, 4, 4)
    assert center_crop_params((3, 8), 4) == CropParams(0, 2, 3, 4)
    assert center_crop_params((3, 8), None) == CropParams(0, 0, 3, 8)
