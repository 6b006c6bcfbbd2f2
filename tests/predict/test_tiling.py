"""Tiled inference: the layout, the blending windows, and tiled == untiled on real networks."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from isp.models import UNet
from isp.predict.tiling import TiledInference, size_multiple, tile_grid, tile_window, tiled_forward

HAS_MSCONV = importlib.util.find_spec("isp.nn") is not None and hasattr(
    importlib.import_module("isp.nn"), "MSConv2d"
)
CONDITIONINGS = ["none", "tile_concat", "msconv"] if HAS_MSCONV else ["none"]


@st.composite
def layouts(draw):
    align = draw(st.sampled_from([1, 2, 4, 8, 16]))
    tile = draw(st.integers(2, 12)) * align
    overlap = draw(st.integers(0, tile - 1))
    if tile - overlap < align:
        overlap = tile - align
    margin = draw(st.integers(0, max(0, (overlap - 1) // 2)))
    length = draw(st.integers(1, 6 * tile))
    return length, tile, overlap, align, margin


@settings(max_examples=150, deadline=None)
@given(layouts())
def test_grid_covers_axis_with_aligned_overlapping_tiles(layout):
    length, tile, overlap, align, margin = layout
    g = tile_grid(length, tile, overlap, align=align, margin=margin)
    assert g.starts[0] == 0 and g.stops[-1] == length
    assert all(s % align == 0 for s in g.starts)
    assert all(e - s <= tile for s, e in zip(g.starts, g.stops, strict=True))
    # all tiles but the last have a size that is a multiple of align, so the net pads none of them
    assert all((e - s) % align == 0 for s, e in zip(g.starts[:-1], g.stops[:-1], strict=True))
    for k in range(len(g) - 1):
        assert g.starts[k] < g.starts[k + 1] and g.stops[k] - g.starts[k + 1] >= overlap
    # every pixel gets positive total weight, and none comes from within `margin` of an interior edge
    total = torch.zeros(length, dtype=torch.float64)
    for i, (s, e) in enumerate(zip(g.starts, g.stops, strict=True)):
        w = tile_window(g, i, dtype=torch.float64)
        assert w.shape == (e - s,) and float(w.min()) >= 0 and float(w.max()) <= 1
        if s > 0 and margin:
            assert float(w[:margin].abs().max()) == 0
        if e < length and margin:
            assert float(w[-margin:].abs().max()) == 0
        total[s:e] += w
    assert float(total.min()) > 0


def test_windows_of_a_regular_grid_sum_to_one():
    # 4 tiles of 32 at stride 24: neighbours are exactly `overlap` apart, so ramps sum to one
    g = tile_grid(24 * 3 + 32, 32, 8, align=8, margin=2)
    assert g.starts == (0, 24, 48, 72)
    total = torch.zeros(g.length, dtype=torch.float64)
    for i, (s, e) in enumerate(zip(g.starts, g.stops, strict=True)):
        total[s:e] += tile_window(g, i, dtype=torch.float64)
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-12)
    w = tile_window(g, 1, dtype=torch.float64)
    assert w[:2].tolist() == [0.0, 0.0] and w[2:6].tolist() == [0.125, 0.375, 0.625, 0.875]


def test_last_tile_starts_aligned_and_ends_at_frame_edge():
    g = tile_grid(100, 48, 16, align=8)
    assert list(zip(g.starts, g.stops, strict=True)) == [(0, 48), (32, 80), (56, 100)]
    assert tile_grid(40, 48, 16, align=8).starts == (0,)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tile": 48, "overlap": 48}, "advance"),
        ({"tile": 4, "overlap": 0, "align": 8}, "tile"),
        ({"tile": 48, "overlap": 16, "margin": 8}, "margin"),
        ({"tile": 16, "overlap": 8, "align": 16}, "advance"),
        ({"tile": 48.0, "overlap": 8}, "tile"),
    ],
)
def test_grid_rejects_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        tile_grid(100, **kwargs)


def test_identity_net_is_reproduced_exactly():
    x = torch.rand(2, 4, 53, 77)
    y = tiled_forward(lambda image: image * 1.0, x, tile=16, overlap=6, margin=1)
    torch.testing.assert_close(y, x, rtol=0, atol=1e-6)


def test_conv_matches_untiled_and_side_inputs_are_sliced_per_tile():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 3, 3, padding=1)

    def net(image, row, col, scalar):
        # each output pixel depends on its own row value, column value and the scalars
        return conv(image) + row[:, :1, :, None] * 10 + col[:, 1:2, None, :] * 100 + scalar[:, :1, None, None]

    x, row, col, sc = torch.rand(1, 4, 45, 61), torch.rand(1, 2, 45), torch.rand(1, 2, 61), torch.rand(1, 3)
    expected = net(x, row, col, sc)
    with torch.no_grad():
        y = tiled_forward(net, x, row, col, sc, tile=16, overlap=8, margin=1)
    torch.testing.assert_close(y, expected, rtol=1e-6, atol=1e-5)
    with torch.no_grad():  # a 3x3 conv needs one pixel of margin: without it the seams show
        bad = tiled_forward(net, x, row, col, sc, tile=16, overlap=8, margin=0)
    assert (bad - expected).abs().max() > 1e-2


def _random_unet(conditioning: str, depth: int = 2, width: int = 4) -> UNet:
    torch.manual_seed(1)
    net = UNet(base_width=width, depth=depth, conditioning=conditioning).eval()
    nn.init.normal_(net.head.weight, std=0.5)  # the head starts at zero (identity): make it bite
    nn.init.normal_(net.head.bias, std=0.1)
    return net


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_unet_tiled_equals_untiled(conditioning):
    # depth 2 (align 4): receptive field radius 22 px (measured: support of the input gradient)
    net = _random_unet(conditioning)
    torch.manual_seed(2)
    h, w = 102, 141  # not multiples of 4: the last tiles are padded by the net like the frame
    x = torch.rand(1, 4, h, w)
    row, col, sc = torch.randn(1, 5, h) * 0.3, torch.randn(1, 5, w) * 0.3, torch.randn(1, 5)
    with torch.inference_mode():
        full = net(x, row, col, sc)
        tiled = TiledInference(net, tile=80, overlap=56, margin=24)  # margin >= receptive radius 22
        assert tiled.align == 4
        calls = []
        y = tiled(x, row, col, sc, progress=lambda d, t: calls.append((d, t)))
    assert len(calls) > 1 and calls[-1][0] == calls[-1][1] == len(calls)
    assert (full - x).abs().max() > 0.01  # the net does something
    assert (y - full).abs().max() <= 1e-4


def test_misaligned_tiles_differ_from_untiled():
    # the same layout with align=1 puts tiles off the pooling grid: the check above can fail
    net = _random_unet("none")
    torch.manual_seed(2)
    x = torch.rand(1, 4, 102, 141)
    with torch.inference_mode():
        full = net(x)
        y = tiled_forward(net, x, tile=79, overlap=56, align=1, margin=24)  # stride 23
    assert (y - full).abs().max() > 1e-3


def test_size_multiple_of_unet():
    assert size_multiple(UNet(base_width=2, depth=4, conditioning="none")) == 16
    assert size_multiple(nn.Identity()) == 1


def test_bad_side_input_shape_is_named():
    with pytest.raises(ValueError, match="`row`"):
        tiled_forward(lambda image, row: image, torch.rand(1, 4, 8, 8), torch.rand(1, 5, 7))


def _unet_frame(seed: int):
    """An msconv UNet, a 70 x 93 frame with its side inputs, and tiling arguments for it (> 3 tiles)."""
    net = _random_unet("msconv")
    torch.manual_seed(seed)
    h, w = 70, 93
    x = torch.rand(1, 4, h, w)
    row, col, sc = torch.randn(1, 5, h) * 0.3, torch.randn(1, 5, w) * 0.3, torch.randn(1, 5)
    return net, (x, row, col, sc), {"tile": 40, "overlap": 16, "align": 4}


def test_tile_workers_give_the_serial_result_bit_for_bit():
    # workers run each tile with one intra-op thread and blend in the serial order
    net, (x, row, col, sc), kw = _unet_frame(3)
    threads = torch.get_num_threads()
    with torch.inference_mode():
        torch.set_num_threads(1)
        try:
            serial = tiled_forward(net, x, row, col, sc, **kw)
        finally:
            torch.set_num_threads(threads)
        calls = []
        parallel = tiled_forward(net, x, row, col, sc, workers=3, progress=lambda d, t: calls.append(d), **kw)
    assert torch.get_num_threads() == threads  # restored
    assert calls == list(range(1, len(calls) + 1)) and len(calls) > 3
    assert torch.equal(parallel, serial)
    with pytest.raises(ValueError, match="`workers`"):
        tiled_forward(net, x, row, col, sc, workers=0, **kw)


def test_governor_sets_torch_threads_per_tile_and_the_result_holds():
    # each tile runs on the thread count the governor answered just before it
    net, (x, row, col, sc), kw = _unet_frame(4)
    answers = iter([2, 1, 1, 2, 1, 2, 2, 1, 2, 1, 1, 2])
    asked, seen = [], []

    def governor():
        asked.append(next(answers))
        return asked[-1]

    def run(*args):
        seen.append(torch.get_num_threads())
        return net(*args)

    threads = torch.get_num_threads()
    with torch.inference_mode():
        torch.set_num_threads(1)
        try:
            serial = tiled_forward(net, x, row, col, sc, **kw)
            governed = tiled_forward(run, x, row, col, sc, governor=governor, **kw)
            assert torch.get_num_threads() == 1  # restored
        finally:
            torch.set_num_threads(threads)
    assert len(seen) > 3 and seen == asked
    torch.testing.assert_close(governed, serial, rtol=0, atol=1e-5)
    with pytest.raises(TypeError, match="`governor`"):
        tiled_forward(net, x, row, col, sc, governor=2, **kw)
