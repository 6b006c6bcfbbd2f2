"""The fused MSConv2d + LeakyReLU epilogue: the same function as the two steps, compiled or not."""

import copy

import pytest
import torch
import torch.nn.functional as F

import isp.nn._epilogue as epilogue
from isp.models import UNet
from isp.nn import MSConv2d, ms_conv2d, ms_conv2d_leaky_relu, side_leaky_relu
from isp.nn._compact import channels_like

MODES = ("zeros", "reflect", "replicate", "circular")


def _sources(ch, n=2, h=9, w=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = ((n, ch[0], h, w), (n, ch[1], h), (n, ch[2], w), (n, ch[3]))
    return [torch.randn(s, generator=g) if c else None for c, s in zip(ch, shapes, strict=True)]


def _weights(m: MSConv2d):
    return m.weight, m.row_weight, m.col_weight, m.scalar_weight, m.bias


def _tiled_reference(m: MSConv2d, xs, slope, mode):
    """LeakyReLU of ``nn.Conv2d`` over the side inputs broadcast into channels (built here)."""
    image, row, col, scalar = xs
    n, _, h, w = image.shape
    parts = [image]
    if row is not None:
        parts.append(row[..., None].expand(-1, -1, -1, w))
    if col is not None:
        parts.append(col[:, :, None, :].expand(-1, -1, h, -1))
    if scalar is not None:
        parts.append(scalar[:, :, None, None].expand(-1, -1, h, w))
    tile = m.to_tile_concat()  # the same function's weights over the concatenated channels
    conv = torch.nn.Conv2d(tile.weight.shape[1], tile.weight.shape[0], 3, padding=1, padding_mode=mode)
    with torch.no_grad():
        conv.weight.copy_(tile.weight)
        conv.bias.copy_(tile.bias)
        return F.leaky_relu(conv(torch.cat(parts, 1)), slope)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ch", [(3, 2, 3, 1), (3, 2, 0, 0), (3, 0, 2, 2), (3, 0, 0, 2)])
def test_fused_equals_conv_then_leaky_relu(mode, ch):
    torch.manual_seed(0)
    m = MSConv2d(ch, 6, 3, padding=1, padding_mode=mode)
    xs = _sources(ch)
    with torch.no_grad():
        fused = ms_conv2d_leaky_relu(*xs, *_weights(m), negative_slope=0.2, padding=1, padding_mode=mode)
        two_steps = F.leaky_relu(m(*xs), 0.2)
        tiled = _tiled_reference(m, xs, 0.2, mode)  # an nn.Conv2d over built channels
    torch.testing.assert_close(fused, two_steps, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fused, tiled, rtol=1e-4, atol=1e-4)
    assert (fused < 0).any() and (fused > 0).any()  # the activation's both sides were exercised


def test_fused_with_stride_dilation_and_channels_last():
    torch.manual_seed(1)
    ch = (4, 2, 2, 1)
    m = MSConv2d(ch, 8, 3, stride=2, padding=2, dilation=2, padding_mode="reflect")
    image, row, col, scalar = _sources(ch, h=12, w=10)
    image = image.contiguous(memory_format=torch.channels_last)
    kw = {"stride": 2, "padding": 2, "dilation": 2, "padding_mode": "reflect"}
    with torch.no_grad():
        fused = ms_conv2d_leaky_relu(image, row, col, scalar, *_weights(m), negative_slope=0.1, **kw)
        expected = F.leaky_relu(m(image, row, col, scalar), 0.1)
    torch.testing.assert_close(fused, expected, rtol=1e-5, atol=1e-5)
    assert fused.is_contiguous(memory_format=torch.channels_last)


def test_float64_stays_float64():
    # the side vectors and the kernel's sum keep float64 (a float32 detour would cost ~1e-7)
    torch.manual_seed(7)
    ch = (3, 2, 2, 1)
    m = MSConv2d(ch, 6, 3, padding=1).double()
    xs = [None if x is None else x.double() for x in _sources(ch)]
    with torch.no_grad():
        fused = ms_conv2d_leaky_relu(*xs, *_weights(m), negative_slope=0.2, padding=1)
        two_steps = F.leaky_relu(m(*xs), 0.2)
    assert fused.dtype == torch.float64
    torch.testing.assert_close(fused, two_steps, rtol=1e-12, atol=1e-12)


def test_bf16_fused_rounds_once():
    # under bf16 autocast the fused kernel adds in float32 and rounds once; the two steps round the
    # conv output, the sum and the activation each to bf16: further from the float32 result
    torch.manual_seed(2)
    ch = (16, 3, 3, 2)
    m = MSConv2d(ch, 32, 3, padding=1)
    xs = _sources(ch, n=1, h=48, w=40)
    xs[0] = xs[0].contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        truth = F.leaky_relu(m(*xs), 0.2)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fused = ms_conv2d_leaky_relu(*xs, *_weights(m), negative_slope=0.2, padding=1)
            two_steps = F.leaky_relu(m(*xs), 0.2)
    assert fused.dtype == two_steps.dtype == torch.bfloat16
    err_fused = (fused.float() - truth).abs().mean().item()
    err_steps = (two_steps.float() - truth).abs().mean().item()
    assert 0 < err_fused < err_steps < 0.05 * truth.abs().mean().item()


def test_autograd_takes_the_two_steps_and_their_gradients():
    torch.manual_seed(3)
    ch = (3, 2, 2, 2)
    m = MSConv2d(ch, 5, 3, padding=1)
    xs = [x.requires_grad_() for x in _sources(ch)]
    fused = ms_conv2d_leaky_relu(*xs, *_weights(m), negative_slope=0.2, padding=1)
    grads = torch.autograd.grad(fused.square().sum(), [*xs, m.weight, m.row_weight])
    expected = F.leaky_relu(ms_conv2d(*xs, *_weights(m), padding=1), 0.2)
    grads_expected = torch.autograd.grad(expected.square().sum(), [*xs, m.weight, m.row_weight])
    torch.testing.assert_close(fused, expected)
    for a, b in zip(grads, grads_expected, strict=True):
        torch.testing.assert_close(a, b)


def _loop_reference(out, rows, cols, slope):
    expected = out.clone()
    for n in range(out.shape[0]):
        for c in range(out.shape[1]):
            expected[n, c] += rows[n, c][:, None] + cols[n, c][None, :]
    return F.leaky_relu(expected, slope)


@pytest.mark.parametrize("channels_last", [False, True])
def test_side_leaky_relu_adds_row_and_column_vectors(channels_last):
    g = torch.Generator().manual_seed(4)
    out, rows, cols = (torch.randn(s, generator=g) for s in ((2, 5, 6, 7), (2, 5, 6), (2, 5, 7)))
    expected = _loop_reference(out, rows, cols, 0.3)
    if channels_last:
        out = out.contiguous(memory_format=torch.channels_last)
    laid_out = [channels_like(out, v) for v in (rows, cols)]
    assert all(v.stride(1) == (1 if channels_last else v.shape[2]) for v in laid_out)  # as out streams
    for r, c in ((rows, cols), laid_out):
        torch.testing.assert_close(side_leaky_relu(out, r, c, negative_slope=0.3), expected)
    before = out.clone()
    y = side_leaky_relu(out, *laid_out, negative_slope=0.3)
    torch.testing.assert_close(out, before)  # out of place by default: the input is kept
    y = side_leaky_relu(out, *laid_out, negative_slope=0.3, inplace=True)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    assert y is out and y.is_contiguous(memory_format=layout)
    torch.testing.assert_close(out, expected)


def test_side_leaky_relu_in_place_on_a_strided_view_writes_only_the_view():
    g = torch.Generator().manual_seed(8)
    big = torch.randn(2, 3, 8, 9, generator=g)
    before = big.clone()
    rows, cols = torch.randn(2, 3, 6, generator=g), torch.randn(2, 3, 5, generator=g)
    view = big[:, :, 1:-1, ::2]
    y = side_leaky_relu(view, rows, cols, negative_slope=0.2, inplace=True)
    assert y is view
    torch.testing.assert_close(view, _loop_reference(before[:, :, 1:-1, ::2], rows, cols, 0.2))
    untouched = torch.ones_like(big, dtype=torch.bool)
    untouched[:, :, 1:-1, ::2] = False
    assert torch.equal(big[untouched], before[untouched])


def test_side_leaky_relu_under_autograd_runs_differentiable_ops():
    g = torch.Generator().manual_seed(6)
    shapes = ((1, 3, 4, 5), (1, 3, 4), (1, 3, 5))
    out, rows, cols = (torch.randn(s, generator=g, requires_grad=True) for s in shapes)
    y = side_leaky_relu(out, rows, cols, negative_slope=0.1)
    grads = torch.autograd.grad(y.square().sum(), [out, rows, cols])
    ref = _loop_reference(out, rows, cols, 0.1)
    expected = torch.autograd.grad(ref.square().sum(), [out, rows, cols])
    for a, b in zip(grads, expected, strict=True):
        torch.testing.assert_close(a, b)


def test_a_compiler_failure_falls_back_to_eager_with_a_warning(monkeypatch):
    def broken(*args):
        raise RuntimeError("no C++ compiler\nsecond line")

    monkeypatch.setattr(epilogue, "_compiled", {"_rows_cols_act": broken})
    monkeypatch.setattr(epilogue, "_failed", {})
    x = torch.randn(1, 4, 5, 6)
    rows, cols = torch.randn(1, 4, 5), torch.randn(1, 4, 6)
    with pytest.warns(
        RuntimeWarning, match=r"_rows_cols_act could not be compiled \(RuntimeError: no C\+\+ compiler\)"
    ):
        y = side_leaky_relu(x, rows, cols, negative_slope=0.2)
    expected = F.leaky_relu(x + rows[..., None] + cols[:, :, None, :], 0.2)
    torch.testing.assert_close(y, expected)
    assert epilogue._failed == {"_rows_cols_act": "RuntimeError: no C++ compiler"}
    side_leaky_relu(x, rows, cols, negative_slope=0.2)  # later calls: eager, no second warning
    y = side_leaky_relu(x, rows, None, negative_slope=0.2)  # the other variants still compile
    torch.testing.assert_close(y, F.leaky_relu(x + rows[..., None], 0.2))
    assert "_rows_act" in epilogue._compiled and "_rows_act" not in epilogue._failed


@pytest.mark.parametrize(("conditioning", "line_features"), [("msconv", 4), ("none", 0)])
def test_unet_fused_epilogues_same_output_and_training_untouched(conditioning, line_features):
    torch.manual_seed(5)
    arch = {"base_width": 8, "depth": 2, "row_channels": 7, "col_channels": 5, "scalar_channels": 8}
    net = UNet(**arch, conditioning=conditioning, line_features=line_features, noise_map=True).eval()
    for p in net.parameters():  # zero-initialised head and line view: give every path a say
        if p.dim() > 1:
            torch.nn.init.normal_(p, std=0.2)
    fused = copy.deepcopy(net).fuse_epilogues()
    assert fused.fused_epilogue and all(s.fused_epilogue for s in fused.encoders)
    x = (torch.rand(2, 4, 24, 20), torch.randn(2, 7, 24), torch.randn(2, 5, 20), torch.randn(2, 8))
    with torch.no_grad():
        a, b = net(*x), fused(*x)
        exact = copy.deepcopy(net).double()(*(t.double() for t in x))
    # float rounding only (outputs reach ~100 here): as close to float64 as the two steps are
    err_steps, err_fused = ((y.double() - exact).abs().max().item() for y in (a, b))
    assert err_fused <= 2 * err_steps + 1e-6 and err_fused < 1e-6 * exact.abs().max().item()
    assert (a - x[0]).abs().mean() > 1e-2  # the network changed its input: the comparison means something
    # with autograd the fused flag changes nothing: same values, same gradients
    ga = torch.autograd.grad(net(*x).sum(), list(net.parameters()))
    gb = torch.autograd.grad(fused(*x).sum(), list(fused.parameters()))
    for u, v in zip(ga, gb, strict=True):
        torch.testing.assert_close(u, v)
    assert not copy.deepcopy(fused).fuse_epilogues(False).fused_epilogue


def test_bad_shapes_raise_and_leave_the_compiled_kernel_on():
    out, rows = torch.randn(1, 4, 5, 6), torch.randn(1, 4, 7)  # 7 rows for a 5-row output
    failed = dict(epilogue._failed)
    with pytest.raises(RuntimeError, match="size of tensor"):
        side_leaky_relu(out, rows, None, negative_slope=0.2)
    assert epilogue._failed == failed  # not counted as a compiler failure
    torch.testing.assert_close(side_leaky_relu(out, negative_slope=0.2), F.leaky_relu(out, 0.2))
