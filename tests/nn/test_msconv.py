import io
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from isp.nn import MSConv2d, TileConcatConv2d, ms_conv2d, tile_and_concatenate, tile_concat_conv2d

MODES = ("zeros", "reflect", "replicate", "circular")


def sources(ch, n, h, w, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = ((n, ch[0], h, w), (n, ch[1], h), (n, ch[2], w), (n, ch[3]))
    return [torch.randn(s, generator=g, dtype=dtype) if c else None for c, s in zip(ch, shapes, strict=True)]


def reference(conv, xs, size):
    """nn.Conv2d over explicitly broadcast channels (built here, not by tile_and_concatenate)."""
    n, (h, w) = next(x.shape[0] for x in xs if x is not None), size
    parts = []
    if xs[0] is not None:
        parts.append(xs[0])
    if xs[1] is not None:
        parts.append(xs[1].unsqueeze(-1).repeat(1, 1, 1, w))
    if xs[2] is not None:
        parts.append(xs[2].unsqueeze(-2).repeat(1, 1, h, 1))
    if xs[3] is not None:
        parts.append(xs[3].reshape(n, -1, 1, 1).repeat(1, 1, h, w))
    return conv(torch.cat(parts, 1))


# ---------------------------------------------------------------- smoke and shapes


def test_smoke_and_compact_parameters():
    m = MSConv2d((4, 2, 3, 5), 8, (3, 5), padding=1)
    assert m.weight.shape == (8, 4, 3, 5)
    assert m.row_weight.shape == (8, 2, 3)
    assert m.col_weight.shape == (8, 3, 5)
    assert m.scalar_weight.shape == (8, 5)
    assert m.bias.shape == (8,)
    out = m(*sources((4, 2, 3, 5), 2, 9, 11, torch.float32))
    assert out.shape == (2, 8, 9, 9)
    m = MSConv2d((4, 0, 0, 0), 8, 3, bias=False)
    assert m.row_weight is None and m.col_weight is None and m.scalar_weight is None and m.bias is None


@pytest.mark.parametrize("kernel", [1, 2, 3, (3, 2)])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", [0, 1, (2, 0), "valid"])
def test_output_shape_matches_conv2d(kernel, stride, padding):
    ch = (3, 1, 2, 1)
    m = MSConv2d(ch, 5, kernel, stride, padding, dtype=torch.float64)
    xs = sources(ch, 2, 8, 7)
    expected = F.conv2d(
        xs[0],
        torch.zeros(5, 3, *nn.modules.utils._pair(kernel), dtype=torch.float64),
        stride=stride,
        padding=padding,
    )
    assert m(*xs).shape == expected.shape


def test_tile_and_concatenate_values():
    img, row, col, sc = sources((2, 1, 2, 3), 2, 4, 5)
    x = tile_and_concatenate(img, row, col, sc)
    assert x.shape == (2, 8, 4, 5)
    assert torch.equal(x[:, :2], img)
    assert torch.equal(x[:, 2, :, 3], row[:, 0])
    assert torch.equal(x[:, 3:5, 1, :], col)
    assert torch.equal(x[:, 5:, 2, 4], sc)
    x = tile_and_concatenate(None, None, None, sc, size=(3, 2))
    assert x.shape == (2, 3, 3, 2) and torch.equal(x[:, :, 1, 1], sc)


# ---------------------------------------------------------------- equivalence


def _check_equivalence(ch, c_out, kernel, stride, padding, dilation, mode, h, w, bias, dtype, tol):
    torch.manual_seed(1)
    conv = nn.Conv2d(
        sum(ch), c_out, kernel, stride, padding, dilation, bias=bias, padding_mode=mode, dtype=dtype
    )
    xs = sources(ch, 2, h, w, dtype)
    ref = reference(conv, xs, (h, w))
    m = MSConv2d.from_tile_concat(conv, ch)
    out = m(*xs, size=(h, w))
    assert out.shape == ref.shape
    assert (out - ref).abs().max().item() <= tol
    back = m.to_tile_concat()
    assert (back(*xs, size=(h, w)) - ref).abs().max().item() <= tol
    with torch.no_grad():  # and without autograd recording
        assert (m(*xs, size=(h, w)) - ref).abs().max().item() <= tol
    return m


@settings(max_examples=70, deadline=None)
@given(
    ch=st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)).filter(
        lambda c: sum(c) > 0
    ),
    kh=st.integers(1, 4),
    kw=st.integers(1, 4),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    mode=st.sampled_from(MODES),
    pad_kind=st.sampled_from(["int", "tuple", "same", "valid"]),
    pad=st.tuples(st.integers(0, 3), st.integers(0, 3)),
    extra=st.tuples(st.integers(0, 5), st.integers(0, 5)),
    bias=st.booleans(),
    float32=st.booleans(),
)
def test_from_tile_concat_exact_everywhere(
    ch, kh, kw, stride, dilation, mode, pad_kind, pad, extra, bias, float32
):
    """Property: equals nn.Conv2d over tile-concat input at every pixel, H, W down to the receptive field."""
    if pad_kind == "same":
        stride = 1
    padding = {"int": pad[0], "tuple": pad, "same": "same", "valid": "valid"}[pad_kind]
    h = dilation * (kh - 1) + 1 + extra[0]
    w = dilation * (kw - 1) + 1 + extra[1]
    if mode != "zeros" and pad_kind in ("int", "tuple"):
        # reflect needs padding < size, circular padding <= size: the same limits as nn.Conv2d
        ph, pw = (pad[0], pad[0]) if pad_kind == "int" else pad
        h, w = max(h, ph + 1), max(w, pw + 1)
    dtype, tol = (torch.float32, 1e-5) if float32 else (torch.float64, 1e-10)
    _check_equivalence(ch, 3, (kh, kw), stride, padding, dilation, mode, h, w, bias, dtype, tol)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padding", [1, (2, 1), "same", "valid"])
@pytest.mark.parametrize("kernel", [(3, 3), (2, 4)])
def test_from_tile_concat_grid(mode, padding, kernel):
    m = _check_equivalence(
        (2, 2, 2, 2), 4, kernel, 1, padding, (1, 2), mode, 7, 9, True, torch.float64, 1e-10
    )
    zero_border = mode == "zeros" and padding != "valid"
    assert m.side_kernels == ("full" if zero_border else "compact")


def test_zero_padding_border_differs_from_interior_formula():
    """The border correction matters: the compact (interior) formula is wrong at the border under zeros."""
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 3, 3, padding=1, dtype=torch.float64)
    ch = (1, 1, 1, 1)
    xs = sources(ch, 1, 6, 6)
    full = MSConv2d.from_tile_concat(conv, ch)
    compact = MSConv2d(ch, 3, 3, padding=1, dtype=torch.float64)
    with torch.no_grad():
        compact.weight.copy_(full.weight)
        compact.bias.copy_(full.bias)
        compact.row_weight.copy_(full.row_weight.sum(3))
        compact.col_weight.copy_(full.col_weight.sum(2))
        compact.scalar_weight.copy_(full.scalar_weight.sum((2, 3)))
    ref = reference(conv, xs, (6, 6))
    diff = (compact(*xs) - ref).abs()
    assert diff[..., 1:-1, 1:-1].max() < 1e-12
    assert diff[..., 0, :].max() > 1e-3 and diff[..., :, -1].max() > 1e-3


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padding", [0, 1, "same", (1, 0)])
def test_fresh_module_round_trips_through_tile_concat(mode, padding):
    ch = (3, 2, 1, 2)
    m = MSConv2d(ch, 4, (3, 5), padding=padding, padding_mode=mode, dtype=torch.float64)
    xs = sources(ch, 2, 6, 8)
    t = m.to_tile_concat()
    assert isinstance(t, TileConcatConv2d)
    assert (t(*xs) - m(*xs)).abs().max() < 1e-12
    # the single tap it uses: the compact weight is the sum of the tile-concat kernel
    assert torch.allclose(t.weight[:, 3:5].sum((2, 3)), m.row_weight.sum(2))
    back = MSConv2d.from_tile_concat(t)
    assert (back(*xs) - m(*xs)).abs().max() < 1e-12


def test_to_tile_concat_raises_when_none_exists():
    m = MSConv2d((2, 1, 0, 0), 3, 3, padding=2)  # padding 2 > reach 1 of a 3-tap kernel: no tap always inside
    with pytest.raises(ValueError, match="no equivalent tile-concat conv"):
        m.to_tile_concat()
    MSConv2d((2, 0, 0, 0), 3, 3, padding=2).to_tile_concat()  # no side source: fine
    MSConv2d((2, 1, 0, 0), 3, 3, padding=2, side_kernels="full").to_tile_concat()  # full: always exists
    MSConv2d((2, 1, 0, 0), 3, 3, padding=2, padding_mode="reflect").to_tile_concat()


# ---------------------------------------------------------------- groups


def test_groups_split_the_image_path_only():
    """TileConcatConv2d(groups=2) equals a dense conv whose image block is block-diagonal."""
    torch.manual_seed(0)
    ch, c_out = (4, 1, 2, 1), 6
    t = TileConcatConv2d(ch, c_out, 3, padding=1, groups=2, dtype=torch.float64)
    dense = nn.Conv2d(sum(ch), c_out, 3, padding=1, dtype=torch.float64)
    with torch.no_grad():
        dense.weight.zero_()
        dense.weight[:3, 0:2] = t.weight[:3, :2]
        dense.weight[3:, 2:4] = t.weight[3:, :2]
        dense.weight[:, 4:] = t.weight[:, 2:]
        dense.bias.copy_(t.bias)
    xs = sources(ch, 2, 5, 6)
    ref = reference(dense, xs, (5, 6))
    assert (t(*xs) - ref).abs().max() < 1e-12
    m = MSConv2d.from_tile_concat(t)
    assert m.groups == 2 and m.weight.shape == (6, 2, 3, 3) and m.row_weight.shape == (6, 1, 3, 3)
    assert (m(*xs) - ref).abs().max() < 1e-12
    fresh = MSConv2d(ch, c_out, 3, padding=1, groups=2, dtype=torch.float64)
    assert (fresh.to_tile_concat()(*xs) - fresh(*xs)).abs().max() < 1e-12


def test_grouped_nn_conv2d_is_rejected():
    with pytest.raises(ValueError, match="groups=1"):
        MSConv2d.from_tile_concat(nn.Conv2d(8, 4, 3, groups=2), (4, 2, 0, 2))


# ---------------------------------------------------------------- missing image


def test_without_image():
    ch = (0, 2, 1, 3)
    m = MSConv2d(ch, 4, 3, padding=1, dtype=torch.float64)
    _, row, col, sc = sources(ch, 2, 5, 6)
    out = m(None, row, col, sc)
    assert out.shape == (2, 4, 5, 6)
    assert (m.to_tile_concat()(None, row, col, sc) - out).abs().max() < 1e-12
    only_scalar = MSConv2d((0, 0, 0, 3), 4, 3, padding=1, dtype=torch.float64)
    out = only_scalar(scalar=sc, size=(5, 6))
    expected = sc @ only_scalar.scalar_weight.T + only_scalar.bias
    assert torch.allclose(out, expected[:, :, None, None].expand(2, 4, 5, 6))
    with pytest.raises(ValueError, match="size=\\(H, W\\)"):
        only_scalar(scalar=sc)


# ---------------------------------------------------------------- errors


def test_bad_inputs_raise_with_a_sentence():
    ch = (3, 2, 1, 2)
    m = MSConv2d(ch, 4, 3, padding=1)
    img, row, col, sc = sources(ch, 2, 6, 7, torch.float32)
    with pytest.raises(ValueError, match=r"`row`.*H=6.*\(2, 2, 5\)"):
        m(img, row[:, :, :5], col, sc)
    with pytest.raises(ValueError, match=r"`col`.*W=7.*\(2, 1, 6\)"):
        m(img, row, col[:, :, :6], sc)
    with pytest.raises(ValueError, match=r"`scalar`.*batch size N=2.*\(1, 2\)"):
        m(img, row, col, sc[:1])
    with pytest.raises(ValueError, match=r"`image`.*C1=3.*\(2, 2, 6, 7\)"):
        m(img[:, :2], row, col, sc)
    with pytest.raises(ValueError, match=r"`col`.*in_channels\[2\] = 1. Got None"):
        m(img, row, None, sc)
    with pytest.raises(ValueError, match=r"`row` of shape \(N, C2, H\) \(3 dims\)"):
        m(img, row[0], col, sc)
    with pytest.raises(TypeError, match="`scalar` to be a torch.Tensor"):
        m(img, row, col, [1.0, 2.0])
    m0 = MSConv2d((3, 0, 1, 2), 4, 3, padding=1)
    with pytest.raises(ValueError, match=r"`row` to be None because in_channels\[1\] = 0"):
        m0(img, row, col, sc)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"in_channels": (3, 1, 1)}, ValueError, "in_channels"),
        ({"in_channels": (0, 0, 0, 0)}, ValueError, "at least one input channel"),
        ({"out_channels": 0}, ValueError, "out_channels"),
        ({"groups": 2}, ValueError, "groups"),
        ({"padding": "full"}, ValueError, "padding"),
        ({"padding": "same", "stride": 2}, ValueError, "stride"),
        ({"padding": -1}, ValueError, "padding"),
        ({"kernel_size": 2.5}, TypeError, "kernel_size"),
        ({"padding_mode": "mirror"}, ValueError, "padding_mode"),
        ({"side_kernels": "dense"}, ValueError, "side_kernels"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, match):
    args = {"in_channels": (3, 1, 1, 1), "out_channels": 4, "kernel_size": 3} | kwargs
    with pytest.raises(error, match=match):
        MSConv2d(**args)


def test_too_small_input_raises():
    m = MSConv2d((1, 1, 0, 0), 2, 5)
    with pytest.raises(ValueError, match="H=3"):
        m(torch.randn(1, 1, 3, 8), torch.randn(1, 1, 3))


def test_from_tile_concat_argument_errors():
    with pytest.raises(TypeError, match="`conv`"):
        MSConv2d.from_tile_concat(nn.Linear(3, 3), (1, 1, 1, 0))
    with pytest.raises(ValueError, match="sum to conv.in_channels=6"):
        MSConv2d.from_tile_concat(nn.Conv2d(6, 2, 3), (4, 1, 0, 0))
    with pytest.raises(ValueError, match="in_channels=\\(C1, C2, C3, C4\\)"):
        MSConv2d.from_tile_concat(nn.Conv2d(6, 2, 3))


# ---------------------------------------------------------------- autograd


@pytest.mark.parametrize("side_kernels", ["compact", "full"])
def test_gradcheck(side_kernels):
    ch = (2, 1, 1, 1)
    torch.manual_seed(0)
    m = MSConv2d(ch, 2, 3, stride=2, padding=2, side_kernels=side_kernels, dtype=torch.float64)
    xs = [x.requires_grad_() for x in sources(ch, 1, 5, 6)]
    params = (m.weight, m.row_weight, m.col_weight, m.scalar_weight, m.bias)

    def f(img, row, col, sc, *p):
        return ms_conv2d(img, row, col, sc, *p, stride=2, padding=2)

    assert torch.autograd.gradcheck(f, (*xs, *params))


@pytest.mark.parametrize(
    "ch, bias, mode, dilation",
    [
        ((2, 1, 1, 1), True, "zeros", 1),
        ((2, 2, 0, 0), False, "reflect", 2),  # row only
        ((0, 0, 2, 1), True, "circular", 1),  # no image: col and scalar
        ((2, 0, 0, 2), False, "replicate", 1),  # scalar only: it rides on neither vector
        ((2, 0, 0, 0), True, "zeros", 1),  # bias only
    ],
)
def test_gradcheck_compact_subsets(ch, bias, mode, dilation):
    # the compact path is one hand-written autograd node: check its backward (and, since it is
    # built from differentiable ops, its double backward) for every combination of sources
    torch.manual_seed(0)
    m = MSConv2d(
        ch, 3, 3, padding=dilation, dilation=dilation, bias=bias, padding_mode=mode, dtype=torch.float64
    )
    xs = [None if x is None else x.requires_grad_() for x in sources(ch, 2, 6, 7)]
    params = (m.weight, m.row_weight, m.col_weight, m.scalar_weight, m.bias)
    live = [i for i, x in enumerate((*xs, *params)) if x is not None]

    def f(*args):
        full = [None] * 9
        for i, a in zip(live, args, strict=True):
            full[i] = a
        return ms_conv2d(
            *full[:4], *full[4:], padding=dilation, dilation=dilation, padding_mode=mode, size=(6, 7)
        )

    inputs = tuple(x for x in (*xs, *params) if x is not None)
    assert torch.autograd.gradcheck(f, inputs)
    assert torch.autograd.gradgradcheck(f, inputs)


def test_compact_matches_unfused_autograd():
    # values and gradients of the fused compact node against the same sum written with plain ops
    ch = (3, 2, 2, 2)
    torch.manual_seed(0)
    m = MSConv2d(ch, 4, 3, padding=1, dtype=torch.float64)
    xs = [x.requires_grad_() for x in sources(ch, 2, 5, 6)]
    out = m(*xs)
    image, row, col, scalar = xs
    ref = F.conv2d(image, m.weight, m.bias, padding=1)
    ref = ref + F.conv1d(row, m.row_weight, padding=1)[..., None]
    ref = ref + F.conv1d(col, m.col_weight, padding=1)[..., None, :]
    ref = ref + (scalar @ m.scalar_weight.t())[..., None, None]
    assert torch.allclose(out, ref, atol=1e-12)
    g = torch.randn_like(ref)
    wrt = (*xs, *m.parameters())
    for a, b in zip(torch.autograd.grad(out, wrt, g), torch.autograd.grad(ref, wrt, g), strict=True):
        assert torch.allclose(a, b, atol=1e-12)


def test_every_parameter_gets_a_gradient():
    for m in (
        MSConv2d((2, 1, 2, 1), 3, 3, padding=1),
        MSConv2d.from_tile_concat(nn.Conv2d(6, 3, 3, padding=1), (2, 1, 2, 1)),
    ):
        out = m(*sources((2, 1, 2, 1), 2, 5, 5, torch.float32))
        out.square().sum().backward()
        for name, p in m.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_gradient_matches_tile_concat():
    ch = (2, 2, 1, 1)
    torch.manual_seed(0)
    conv = nn.Conv2d(sum(ch), 3, 3, padding=1, dtype=torch.float64)
    m = MSConv2d.from_tile_concat(conv, ch)
    xs = [x.requires_grad_() for x in sources(ch, 2, 5, 6)]
    g_ms = torch.autograd.grad(m(*xs).sin().sum(), xs)
    g_ref = torch.autograd.grad(reference(conv, xs, (5, 6)).sin().sum(), xs)
    for a, b in zip(g_ms, g_ref, strict=True):
        assert torch.allclose(a, b, atol=1e-10)


# ---------------------------------------------------------------- module / function agreement


def test_module_and_function_agree():
    ch = (2, 1, 2, 1)
    xs = sources(ch, 2, 6, 6)
    m = MSConv2d(ch, 3, 3, stride=2, padding=1, dilation=1, dtype=torch.float64)
    out = ms_conv2d(*xs, m.weight, m.row_weight, m.col_weight, m.scalar_weight, m.bias, stride=2, padding=1)
    assert torch.equal(out, m(*xs))
    t = TileConcatConv2d(ch, 3, 3, padding=1, padding_mode="reflect", dtype=torch.float64)
    out = tile_concat_conv2d(*xs, t.weight, t.bias, padding=1, padding_mode="reflect")
    assert torch.equal(out, t(*xs))


# ---------------------------------------------------------------- formats, compile, export, state


def _count_blocked_calls(monkeypatch) -> list:
    """A list that gets one entry per call of MSConv2d's row-block path (which still runs)."""
    import isp.nn._compact as compact

    calls = []
    real = compact.blocked_conv_with_side_terms
    monkeypatch.setattr(
        "isp.nn.functional.blocked_conv_with_side_terms", lambda *a: calls.append(1) or real(*a)
    )
    return calls


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ch", [(4, 2, 2, 2), (5, 3, 0, 1), (2, 0, 3, 0), (4, 0, 0, 2), (1, 1, 1, 1)])
@pytest.mark.parametrize("dilation", [1, 2])
def test_blocked_forward_without_autograd_matches_tile_concat(monkeypatch, mode, ch, dilation):
    """Few image channels and no autograd: the conv runs in row blocks (isp.nn._compact); same values."""
    import isp._memory
    import isp.nn._compact as compact

    monkeypatch.setattr(isp._memory, "_TUNED", {"keep_freed_memory": False, "huge_pages": False})
    monkeypatch.setattr(compact, "BLOCK_BYTES", 6 * 67 * 8 * 7)  # 7 rows a block: 10 blocks, the last short
    m = MSConv2d(ch, 6, 3, padding=dilation, dilation=dilation, padding_mode=mode, dtype=torch.float64)
    xs = sources(ch, 3, 70, 67)
    t = m.to_tile_concat()
    with torch.no_grad():
        out = m(*xs)
        ref = t(*xs)
    calls = _count_blocked_calls(monkeypatch)
    with torch.no_grad():
        again = m(*xs)
    assert calls == [1]  # the blocked path ran
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(again, out, rtol=0, atol=0)
    grad_path = m(*xs)  # with autograd: the whole-batch conv and the fused side terms
    torch.testing.assert_close(out, grad_path.detach(), rtol=0, atol=1e-10)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("groups", "bias"), [(1, True), (2, True), (2, False)])
def test_one_sample_with_scalars_only_is_one_conv_with_the_constant_as_bias(mode, groups, bias):
    """Batch 1, no row or column: the scalar term is the conv's own bias, no pass over the output."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.names = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.names.append(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    torch.manual_seed(2)
    ch = (4, 0, 0, 3)
    m = MSConv2d(ch, 6, 3, padding=1, groups=groups, bias=bias, padding_mode=mode, dtype=torch.float64)
    xs = [None if x is None else x.requires_grad_() for x in sources(ch, 1, 9, 8)]
    t = m.to_tile_concat()
    with Ops() as ops:
        out = m(*xs)
    assert ops.names.count("convolution") == 1
    assert not {"add", "add_", "baddbmm", "baddbmm_"} & set(ops.names)  # no pass over the output
    ref = t(*xs)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    g = torch.randn_like(ref)
    got = torch.autograd.grad(out, [xs[0], xs[3], m.weight, m.scalar_weight], g)
    want = torch.autograd.grad(ref, [xs[0], xs[3], t.weight], g)
    torch.testing.assert_close(got[:2], want[:2])
    torch.testing.assert_close(got[2], want[2][:, : 4 // groups])
    # the compact scalar weight stands for one tap inside the image everywhere (to_tile_concat's)
    torch.testing.assert_close(got[3], want[2][:, 4 // groups :, 1, 1])


@pytest.mark.parametrize("keep, huge", [(True, True), (True, False), (False, True), (False, False)])
def test_blocked_forward_only_where_the_memory_is_not_tuned(monkeypatch, keep, huge):
    """With the memory tuned (isp.tune_memory) the whole-batch conv serves; the values are the same."""
    import isp._memory

    monkeypatch.setattr(isp._memory, "_TUNED", {"keep_freed_memory": keep, "huge_pages": huge})
    ch = (4, 2, 2, 2)
    m = MSConv2d(ch, 6, 3, padding=1, dtype=torch.float64)
    xs = sources(ch, 2, 70, 67)
    calls = _count_blocked_calls(monkeypatch)
    with torch.no_grad():
        out = m(*xs)
    assert calls == ([] if keep or huge else [1])
    torch.testing.assert_close(out, m.to_tile_concat()(*xs).detach(), rtol=0, atol=1e-10)


def test_channels_last():
    ch = (4, 2, 2, 2)
    xs = sources(ch, 2, 7, 8)
    m = MSConv2d.from_tile_concat(nn.Conv2d(10, 6, 3, padding=1, dtype=torch.float64), ch)
    ref = m(*xs)
    m_cl = m.to(memory_format=torch.channels_last)
    img = xs[0].contiguous(memory_format=torch.channels_last)
    out = m_cl(img, *xs[1:])
    assert (out - ref).abs().max() < 1e-12
    with torch.no_grad():
        assert (m_cl(img, *xs[1:]) - ref).abs().max() < 1e-12


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("side_kernels", ["compact", "full"])
def test_autocast(dtype, side_kernels):
    ch = (4, 2, 2, 2)
    torch.manual_seed(0)
    m = _module(ch, 6, side_kernels)
    xs = sources(ch, 2, 8, 8, torch.float32)
    ref = m(*xs)
    with torch.autocast("cpu", dtype=dtype):
        out = m(*xs)
    assert out.dtype == dtype
    assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max()
    out.float().sum().backward()
    assert m.row_weight.grad is not None


@pytest.mark.parametrize("n", [1, 2])  # one sample broadcasts its left factor; more copy it
@pytest.mark.parametrize("ch", [(4, 2, 2, 2), (4, 3, 0, 2), (4, 0, 3, 0), (4, 0, 2, 3), (4, 2, 3, 0)])
def test_bf16_channels_last_adds_the_side_terms_as_one_product(ch, n):
    # a CPU bf16 channels-last output takes the side terms in one accumulating matrix product per
    # sample (isp.nn._compact._add_by_gemm_); checked against float32 and the contiguous bf16 path
    torch.manual_seed(1)
    m = MSConv2d(ch, 16, 3, padding=1)
    xs = sources(ch, n, 12, 10, torch.float32, seed=3)
    xs = [x if x is None or i == 0 else 4 * x for i, x in enumerate(xs)]  # side terms weigh as much
    with torch.no_grad():
        ref = m(*xs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            cl = m(xs[0].contiguous(memory_format=torch.channels_last), *xs[1:])
            plain = m(*xs)
        sides_only = ref - F.conv2d(xs[0], m.weight, None, padding=1)
    assert cl.dtype == torch.bfloat16 and cl.is_contiguous(memory_format=torch.channels_last)
    scale = ref.abs().max()
    assert sides_only.abs().max() > 0.3 * scale  # a dropped side term would show
    assert (cl.float() - ref).abs().max() < 0.02 * scale
    assert (cl.float() - plain.float()).abs().max() < 0.02 * scale


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("ch", [(4, 2, 2, 2), (4, 3, 0, 0), (4, 0, 2, 3)])
def test_bf16_gradients_follow_float32(ch, channels_last):
    # the backward's row and column sums of a CPU bf16 gradient are products with ones
    # (isp.nn._compact._sums_by_gemm); every gradient within bf16 rounding of float32's
    torch.manual_seed(2)
    m = MSConv2d(ch, 16, 3, padding=1)
    xs = sources(ch, 2, 12, 10, torch.float32, seed=4)
    xs = [x if x is None or i == 0 else (4 * x).requires_grad_() for i, x in enumerate(xs)]
    if channels_last:
        xs[0] = xs[0].contiguous(memory_format=torch.channels_last)
    wanted = [p for p in (m.row_weight, m.col_weight, m.scalar_weight, m.bias) if p is not None]
    wanted += [x for x in xs[1:] if x is not None]
    ref = torch.autograd.grad(m(*xs).square().sum(), wanted)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(*xs)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    assert out.dtype == torch.bfloat16 and out.is_contiguous(memory_format=layout)
    got = torch.autograd.grad(out.float().square().sum(), wanted)
    for a, b in zip(ref, got, strict=True):
        assert b.dtype == torch.float32
        assert (a - b).abs().max() < 0.02 * a.abs().max()


def _module(ch, out, side_kernels):
    """A float32 3x3 module: compact (a fresh one) or full (from a tile-concat conv, zero padding)."""
    if side_kernels == "compact":
        return MSConv2d(ch, out, 3, padding=1)
    return MSConv2d.from_tile_concat(nn.Conv2d(sum(ch), out, 3, padding=1), ch)


@pytest.mark.parametrize("side_kernels", ["compact", "full"])
def test_torch_compile(side_kernels):
    ch = (2, 1, 1, 1)
    torch.manual_seed(0)
    m = _module(ch, 3, side_kernels)
    xs = [x.requires_grad_() for x in sources(ch, 2, 6, 6, torch.float32)]
    # one graph: the compact path gives dynamo plain ops (it cannot trace the fused node's mark_dirty)
    assert torch._dynamo.explain(m)(*xs).graph_break_count == 0
    compiled = torch.compile(m)
    out, ref = compiled(*xs), m(*xs)
    assert torch.allclose(out, ref, atol=1e-5)
    g = torch.randn_like(ref)
    for a, b in zip(
        torch.autograd.grad(out, [*xs, *m.parameters()], g),
        torch.autograd.grad(ref, [*xs, *m.parameters()], g),
        strict=True,
    ):
        assert torch.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize(
    ("ch", "bias"),
    [((3, 2, 2, 2), True), ((3, 2, 0, 2), False), ((3, 0, 2, 2), True), ((3, 0, 0, 2), True),
     ((3, 0, 0, 0), True), ((0, 2, 2, 1), True), ((3, 2, 2, 0), False)],
)  # fmt: skip
def test_graph_captured_compact_terms_match_tile_concat(ch, bias):
    # under capture the compact terms take their functional path (the constant folded into the row,
    # else the column, product); AOT autograd checks its backward too, against the tile-concat conv
    torch.manual_seed(1)
    conv = nn.Conv2d(sum(ch), 5, 3, padding=1, padding_mode="reflect", bias=bias, dtype=torch.float64)
    m = MSConv2d.from_tile_concat(conv, ch)
    xs = sources(ch, 2, 7, 6)
    xs = [None if x is None else x.requires_grad_() for x in xs]
    size = None if ch[0] or (ch[1] and ch[2]) else (7, 6)
    captured = torch.compile(m, backend="aot_eager", fullgraph=True)
    out = captured(*xs, size=size)
    ref = reference(conv, xs, (7, 6))
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(ref)
    inputs = [x for x in xs if x is not None]
    got = torch.autograd.grad(out, [*inputs, *(p for p in (m.weight, m.bias) if p is not None)], g)
    want = torch.autograd.grad(ref, [*inputs, conv.weight, *([conv.bias] if bias else [])], g)
    if ch[0]:  # the image weight's gradient is the tile-concat weight's image slice
        want = (*want[: len(inputs)], want[len(inputs)][:, : ch[0]], *want[len(inputs) + 1 :])
    else:
        want = (*want[: len(inputs)], *want[len(inputs) + 1 :])
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("side_kernels", ["compact", "full"])
def test_torch_export(side_kernels):
    ch = (2, 1, 1, 1)
    m = _module(ch, 3, side_kernels).eval()
    xs = sources(ch, 2, 6, 6, torch.float32)
    exported = torch.export.export(m, tuple(xs))
    assert torch.allclose(exported.module()(*xs), m(*xs), atol=1e-6)


@pytest.mark.parametrize("side_kernels", ["compact", "full"])
def test_state_dict_round_trip(side_kernels):
    ch = (2, 1, 1, 1)
    m = MSConv2d(ch, 3, 3, padding=1, side_kernels=side_kernels)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    other = MSConv2d(ch, 3, 3, padding=1, side_kernels=side_kernels)
    other.load_state_dict(torch.load(buf))
    xs = sources(ch, 2, 5, 5, torch.float32)
    assert torch.equal(other(*xs), m(*xs))
    assert set(m.state_dict()) == {"weight", "row_weight", "col_weight", "scalar_weight", "bias"}


def test_extra_repr_like_conv2d():
    m = MSConv2d(
        (4, 2, 0, 2), 8, 3, stride=2, padding=1, dilation=2, groups=2, bias=False, padding_mode="reflect"
    )
    c = nn.Conv2d(4, 8, 3, stride=2, padding=1, dilation=2, groups=2, bias=False, padding_mode="reflect")
    assert m.extra_repr() == c.extra_repr().replace("4, 8,", "(4, 2, 0, 2), 8,", 1)
    assert (
        repr(TileConcatConv2d((4, 2, 0, 2), 8, 3))
        == "TileConcatConv2d((4, 2, 0, 2), 8, kernel_size=(3, 3), stride=(1, 1))"
    )
    assert "side_kernels=full" in repr(MSConv2d((4, 2, 0, 2), 8, 3, side_kernels="full"))


def test_initialisation_matches_the_tile_concat_scale():
    """Compact side weights have the variance of the sum of the taps they stand for."""
    torch.manual_seed(0)
    m = MSConv2d((16, 64, 64, 64), 64, 3)
    bound = 1 / math.sqrt((16 + 64 * 3) * 9)
    assert m.weight.abs().max() <= bound
    assert abs(m.row_weight.std().item() / (bound / math.sqrt(3) * math.sqrt(3)) - 1) < 0.05
    assert abs(m.scalar_weight.std().item() / (bound / math.sqrt(3) * 3) - 1) < 0.05


# -- sources and weights on other devices or of other dtypes: a sentence, not a wrong result (issue 14) --


@pytest.mark.parametrize("name", ["row", "col", "scalar"])
def test_a_source_on_another_device_than_the_image_is_refused(name):
    conv = MSConv2d((4, 2, 2, 1), 8, 3, padding=1)
    src = {
        "image": torch.randn(1, 4, 6, 7),
        "row": torch.randn(1, 2, 6),
        "col": torch.randn(1, 2, 7),
        "scalar": torch.randn(1, 1),
    }
    src[name] = src[name].to("meta")  # another device that every machine has
    with pytest.raises(ValueError, match=rf"Expected `{name}` on the device of `image` \(cpu\)\. Got meta\."):
        conv(**src)


def test_inputs_on_another_device_than_the_weights_are_refused():
    conv = MSConv2d((4, 2, 2, 1), 8, 3, padding=1, device="meta")
    args = (torch.randn(1, 4, 6, 7), torch.randn(1, 2, 6), torch.randn(1, 2, 7), torch.randn(1, 1))
    with pytest.raises(ValueError, match=r"Expected `image` on the device of the module's `weight` \(meta\)"):
        conv(*args)


@pytest.mark.parametrize("name", ["row", "col", "scalar"])
def test_a_source_of_another_dtype_is_a_type_error_naming_it(name):
    conv = MSConv2d((4, 2, 2, 1), 8, 3, padding=1)
    src = {
        "image": torch.randn(1, 4, 6, 7),
        "row": torch.randn(1, 2, 6),
        "col": torch.randn(1, 2, 7),
        "scalar": torch.randn(1, 1),
    }
    src[name] = src[name].double()
    with pytest.raises(TypeError, match=rf"Expected `{name}` of dtype torch.float32, the dtype of `image`"):
        conv(**src)
    src = {k: v.double() for k, v in src.items()}
    with pytest.raises(TypeError, match=r"Expected `image` of the module's dtype torch.float32"):
        conv(**src)


def test_autocast_still_mixes_dtypes():
    conv = MSConv2d((4, 2, 2, 1), 8, 3, padding=1)
    args = (torch.randn(1, 4, 6, 7).bfloat16(), torch.randn(1, 2, 6), torch.randn(1, 2, 7), torch.randn(1, 1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert conv(*args).shape == (1, 8, 6, 7)


# ---------------------------------------------------------------- the fast paths and the weight checks


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("ch", [(3, 2, 2, 2), (3, 2, 2, 0), (3, 0, 2, 1), (3, 2, 0, 1), (3, 0, 0, 2)])
def test_fused_side_pass_matches_tile_concat(ch, channels_last):
    # rows and cols together go through one rank-2 baddbmm_ into the (contiguous) conv output;
    # channels_last outputs take the two broadcast adds: both against the independent reference
    torch.manual_seed(0)
    m = MSConv2d(ch, 5, 3, padding=1, dtype=torch.float64)
    xs = sources(ch, 2, 7, 9)
    if channels_last:
        xs[0] = xs[0].to(memory_format=torch.channels_last)
    t = m.to_tile_concat()
    conv = nn.Conv2d(sum(ch), 5, 3, padding=1, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(t.weight)
        conv.bias.copy_(t.bias)
    ref = reference(conv, xs, (7, 9))
    out = m(*xs)
    assert (out - ref).abs().max() < 1e-12
    wrt = [x.requires_grad_() for x in xs if x is not None]
    g = torch.randn_like(ref)
    g_ms = torch.autograd.grad(m(*xs), [*wrt, *m.parameters()], g)
    g_ref = torch.autograd.grad(reference(conv, xs, (7, 9)), wrt, g)
    for a, b in zip(g_ms[: len(wrt)], g_ref, strict=True):
        assert torch.allclose(a, b, atol=1e-10)
    assert all(p is not None and p.abs().sum() > 0 for p in g_ms[len(wrt) :])


def test_no_side_source_puts_the_bias_in_the_conv():
    m = MSConv2d((3, 0, 0, 0), 4, 3, padding=1, dtype=torch.float64)
    x = sources((3, 0, 0, 0), 2, 5, 6)[0]
    assert torch.equal(m(x), F.conv2d(x, m.weight, m.bias, padding=1))


@pytest.mark.parametrize(
    ("name", "shape", "match"),
    [
        ("row_weight", (4, 2, 5), r"`row_weight` of shape \(4, C2, 3\) or \(4, C2, 3, 3\). Got \(4, 2, 5\)"),
        ("col_weight", (4, 1, 3, 2), r"`col_weight` of shape \(4, C3, 3\) or \(4, C3, 3, 3\)"),
        ("scalar_weight", (5, 2), r"`scalar_weight` of shape \(4, C4\) or \(4, C4, 3, 3\). Got \(5, 2\)"),
        ("weight", (4, 3, 3), r"`weight` of shape \(4, C1 / groups, 3, 3\). Got \(4, 3, 3\)"),
        ("bias", (5,), r"`bias` of shape \(C_out,\) = \(4,\). Got \(5,\)"),
    ],
)
def test_wrong_weight_shapes_raise_with_a_sentence(name, shape, match):
    ch = (3, 2, 1, 2)
    m = MSConv2d(ch, 4, 3, padding=1)
    weights = {n: getattr(m, n) for n in ("weight", "row_weight", "col_weight", "scalar_weight", "bias")}
    weights[name] = torch.zeros(shape)
    with pytest.raises(ValueError, match=match):
        ms_conv2d(*sources(ch, 2, 6, 7, torch.float32), *weights.values(), padding=1)


def test_options_are_keyword_only():
    ch = (3, 2, 1, 2)
    m = MSConv2d(ch, 4, 3)
    with pytest.raises(TypeError, match="positional"):
        ms_conv2d(
            *sources(ch, 2, 6, 7, torch.float32),
            m.weight,
            m.row_weight,
            m.col_weight,
            m.scalar_weight,
            m.bias,
            1,
        )
    with pytest.raises(ValueError, match="`kernel_size` to match"):
        ms_conv2d(
            *sources(ch, 2, 6, 7, torch.float32),
            m.weight,
            m.row_weight,
            m.col_weight,
            m.scalar_weight,
            m.bias,
            kernel_size=5,
        )
