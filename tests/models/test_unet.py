"""isp.models.UNet: shapes, padding, identity init, conditioning paths, gradients, errors."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from isp.models import CONDITIONING, ConditionedConv2d, UNet, count_parameters
from isp.nn import MSConv2d

ALL = list(CONDITIONING)


def _inputs(n=2, h=12, w=9, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(n, 4, h, w, generator=g, dtype=dtype),
        torch.randn(n, 5, h, generator=g, dtype=dtype),
        torch.randn(n, 5, w, generator=g, dtype=dtype),
        torch.randn(n, 5, generator=g, dtype=dtype),
    )


def _randomise_head(net, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.head.weight.copy_(torch.randn(net.head.weight.shape, generator=g) * 0.5)
        net.head.bias.copy_(torch.randn(net.head.bias.shape, generator=g) * 0.1)
    return net


@pytest.mark.parametrize("conditioning", ALL)
@pytest.mark.parametrize("hw", [(16, 16), (12, 9), (5, 3), (1, 1)])
def test_identity_at_init_and_shape(conditioning, hw):
    torch.manual_seed(0)
    net = UNet(base_width=4, depth=2, conditioning=conditioning)
    x, row, col, sc = _inputs(h=hw[0], w=hw[1])
    out = net(x, row, col, sc)
    assert out.shape == x.shape
    torch.testing.assert_close(out, x)  # zero head + residual: identity


@pytest.mark.parametrize("conditioning", ALL)
def test_crop_matches_explicitly_padded_input(conditioning):
    torch.manual_seed(0)
    net = _randomise_head(UNet(base_width=4, depth=2, conditioning=conditioning, residual=False))
    x, row, col, sc = _inputs(h=10, w=7)
    # pad by hand to 12 x 8 (multiples of 4) the same way and crop
    xp = F.pad(x, (0, 1, 0, 2), mode="reflect")
    rp, cp = F.pad(row, (0, 2), mode="reflect"), F.pad(col, (0, 1), mode="reflect")
    ref = net(xp, rp, cp, sc)[..., :10, :7]
    torch.testing.assert_close(net(x, row, col, sc), ref)


@pytest.mark.parametrize("conditioning", ["msconv", "film"])
def test_input_and_side_scales(conditioning):
    torch.manual_seed(0)
    scaled = UNet(base_width=4, depth=2, conditioning=conditioning, input_scale=8, side_scale=0.1)
    scaled = _randomise_head(scaled)
    plain = UNet(base_width=4, depth=2, conditioning=conditioning, input_scale=1, side_scale=1)
    plain.load_state_dict(scaled.state_dict())
    x, row, col, sc = _inputs()
    ref = x + (plain(8 * x, 0.1 * row, 0.1 * col, 0.1 * sc) - 8 * x) / 8
    torch.testing.assert_close(scaled(x, row, col, sc), ref, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(plain(x, row, col, sc), ref)


def test_side_inputs_resampled_per_level():
    torch.manual_seed(0)
    net = UNet(base_width=2, depth=3, conditioning="film", side_scale=1.0)
    x, row, col, sc = _inputs(n=1, h=16, w=24)
    seen = []
    for m in net.modules():
        if isinstance(m, ConditionedConv2d):
            m.register_forward_pre_hook(lambda mod, args: seen.append((args[0].shape[-2:], args[1], args[2])))
    net(x, row, col, sc)
    assert len(seen) == 2 * 3 + 1  # encoders, bottleneck, decoders
    for (h, w), r, c in seen:
        assert r.shape[-1] == h and c.shape[-1] == w
        k = 16 // h
        ref_r = row.numpy().reshape(1, 5, h, k).mean(-1)
        ref_c = col.numpy().reshape(1, 5, w, 24 // w).mean(-1)
        np.testing.assert_allclose(r.numpy(), ref_r, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(c.numpy(), ref_c, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("conditioning", ALL)
def test_side_inputs_change_output_unless_none(conditioning):
    torch.manual_seed(0)
    net = _randomise_head(UNet(base_width=4, depth=2, conditioning=conditioning))
    x, row, col, sc = _inputs()
    base = net(x, row, col, sc)
    for i, changed in enumerate((row + 1, col + 1, sc + 1)):
        args = [row, col, sc]
        args[i] = changed
        differs = not torch.allclose(net(x, *args), base)
        assert differs == (conditioning != "none"), (conditioning, i)


@pytest.mark.parametrize("conditioning", ALL)
def test_every_parameter_gets_a_gradient(conditioning):
    torch.manual_seed(0)
    net = _randomise_head(UNet(base_width=4, depth=2, conditioning=conditioning))
    x, row, col, sc = _inputs()
    net(x, row, col, sc).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_gradcheck_film_float64():
    torch.manual_seed(0)
    net = _randomise_head(UNet(base_width=2, depth=1, conditioning="film", dtype=torch.float64))
    x, row, col, sc = _inputs(n=1, h=2, w=4, dtype=torch.float64)
    for t in (x, row, col, sc):
        t.requires_grad_(True)
    assert torch.autograd.gradcheck(net, (x, row, col, sc))


def test_film_formula():
    torch.manual_seed(0)
    conv = ConditionedConv2d((3, 2, 1, 4), 5, conditioning="film")
    x, row, col, sc = torch.rand(2, 3, 6, 7), torch.rand(2, 2, 6), torch.rand(2, 1, 7), torch.rand(2, 4)
    z = torch.cat([row.mean(-1), col.mean(-1), sc], 1)
    gamma, beta = (z @ conv.film.weight.T + conv.film.bias).split(5, 1)
    ref = (
        F.conv2d(x, conv.conv.weight, conv.conv.bias, padding=1) * (1 + gamma[..., None, None])
        + beta[..., None, None]
    )
    torch.testing.assert_close(conv(x, row, col, sc), ref)
    # a missing input reads as zeros
    torch.testing.assert_close(conv(x, row, None, sc), conv(x, row, torch.zeros_like(col), sc))


def test_msconv_film_formula_and_start():
    """msconv_film: MSConv2d's output times (1 + gamma), gamma linear in the FiLM vector; starts as msconv."""
    torch.manual_seed(0)
    conv = ConditionedConv2d((3, 2, 1, 4), 5, conditioning="msconv_film")
    plain = ConditionedConv2d((3, 2, 1, 4), 5, conditioning="msconv")
    plain.load_state_dict({k: v for k, v in conv.state_dict().items() if not k.startswith("film.")})
    x, row, col, sc = torch.rand(2, 3, 6, 7), torch.rand(2, 2, 6), torch.rand(2, 1, 7), torch.rand(2, 4)
    torch.testing.assert_close(conv(x, row, col, sc), plain(x, row, col, sc), rtol=0, atol=0)
    with torch.no_grad():
        conv.film.weight.normal_()
        conv.film.bias.normal_()
    z = torch.cat([row.mean(-1), col.mean(-1), sc], 1)
    gamma = z @ conv.film.weight.T + conv.film.bias
    torch.testing.assert_close(conv(x, row, col, sc), plain(x, row, col, sc) * (1 + gamma[..., None, None]))
    with pytest.raises(ValueError, match="msconv_film"):
        ConditionedConv2d((4, 0, 0, 0), 8, conditioning="msconv_film")


def test_film_msconv_formula_against_an_independent_msconv_and_linear():
    """film_msconv: MSConv2d's output times (1 + gamma) plus beta, (gamma, beta) one Linear of
    [row means, column means, scalars]; its FiLM layer starts as film's (not at zero)."""
    from isp.nn import MSConv2d

    torch.manual_seed(0)
    conv = ConditionedConv2d((3, 2, 1, 4), 5, conditioning="film_msconv")
    assert conv.film.weight.abs().sum() > 0  # film's default init, so the layer is not msconv at start
    ms = MSConv2d((3, 2, 1, 4), 5, 3, padding=1)
    ms.load_state_dict({k[len("conv.") :]: v for k, v in conv.state_dict().items() if k.startswith("conv.")})
    x, row, col, sc = torch.rand(2, 3, 6, 7), torch.rand(2, 2, 6), torch.rand(2, 1, 7), torch.rand(2, 4)
    z = torch.cat([row.mean(-1), col.mean(-1), sc], 1)
    gamma, beta = (z @ conv.film.weight.T + conv.film.bias).chunk(2, dim=1)
    ref = ms(x, row, col, sc) * (1 + gamma[..., None, None]) + beta[..., None, None]
    torch.testing.assert_close(conv(x, row, col, sc), ref)
    # a missing vector reads as zeros, in the MSConv2d terms and the FiLM vector alike
    torch.testing.assert_close(conv(x, None, col, sc), conv(x, torch.zeros_like(row), col, sc))
    with pytest.raises(ValueError, match="film_msconv"):
        ConditionedConv2d((4, 0, 0, 0), 8, conditioning="film_msconv")
    assert UNet(base_width=4, depth=2, conditioning="film_msconv", line_features=2).line_features == 2


def test_count_parameters_matches_formula():
    net = UNet(base_width=4, depth=2, conditioning="none")

    def conv(i, o, k):
        return i * o * k * k + o

    widths = [4, 8, 16]
    expected = conv(4, 4, 3) + conv(4, 4, 3) + conv(4, 8, 3) + conv(8, 8, 3)  # encoders
    expected += conv(8, 16, 3) + conv(16, 16, 3)  # bottleneck
    expected += conv(16, 8, 2) + conv(8, 4, 2)  # transposed convs
    expected += conv(16, 8, 3) + conv(8, 8, 3) + conv(8, 4, 3) + conv(4, 4, 3)  # decoders
    expected += conv(widths[0], 4, 1)  # head
    assert count_parameters(net) == expected
    frozen = copy.deepcopy(net).requires_grad_(False)
    assert count_parameters(frozen) == 0 and count_parameters(frozen, trainable_only=False) == expected
    film = UNet(base_width=4, depth=2, conditioning="film")
    film_extra = sum(15 * 2 * w + 2 * w for w in (4, 8, 16, 8, 4))  # one Linear(15, 2w) per stage
    assert count_parameters(film) == expected + film_extra


def test_msconv_and_tile_concat_compute_the_same_function():
    torch.manual_seed(0)
    tile = _randomise_head(UNet(base_width=4, depth=2, conditioning="tile_concat"))
    ms = UNet(base_width=4, depth=2, conditioning="msconv")
    ms.load_state_dict({k: v for k, v in tile.state_dict().items() if ".conv1." not in k}, strict=False)
    for m_tile, m_ms in zip(list(tile.modules()), list(ms.modules()), strict=True):
        if isinstance(m_tile, ConditionedConv2d):
            m_ms.conv = MSConv2d.from_tile_concat(m_tile.conv, m_tile.in_channels)
    x, row, col, sc = _inputs()
    torch.testing.assert_close(ms(x, row, col, sc), tile(x, row, col, sc), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"conditioning": "concat"}, "conditioning"),
        ({"depth": -1}, "depth"),
        ({"base_width": 0}, "base_width"),
        ({"out_channels": 3}, "out_channels"),
        ({"row_channels": -2}, "row_channels"),
        ({"padding_mode": "same"}, "padding_mode"),
        ({"input_scale": 0}, "input_scale"),
        ({"side_scale": -1.0}, "side_scale"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UNet(**kwargs)


def test_bad_forward_inputs():
    net = UNet(base_width=2, depth=1, conditioning="none")
    x, row, col, sc = _inputs()
    with pytest.raises(ValueError, match="image"):
        net(x[:, :3])
    with pytest.raises(ValueError, match="row"):
        net(x, row[..., :-1])
    with pytest.raises(ValueError, match="col"):
        net(x, row, col[:1])
    with pytest.raises(ValueError, match="scalar"):
        net(x, row, col, sc[:, :2])
    with pytest.raises(ValueError, match="film"):
        ConditionedConv2d((4, 0, 0, 0), 8, conditioning="film")
    assert isinstance(net.head, nn.Conv2d)


def test_noise_map_channels_are_the_measured_noise_std():
    net = UNet(row_channels=7, scalar_channels=8, base_width=4, depth=1, conditioning="none", noise_map=True)
    seen = {}
    net.encoders[0].conv1.register_forward_hook(lambda m, args, out: seen.update(x=args[0]))
    image = torch.rand(2, 4, 8, 8) - 0.1
    scalar = torch.zeros(2, 8)
    scalar[:, 5] = torch.tensor([1.0, -2.0])  # a = 2e-3, 2.5e-4
    scalar[:, 6] = torch.tensor([0.5, 0.0])  # b = 2e-5, 1e-5
    net(image, None, None, scalar)
    a = torch.tensor([2e-3, 2.5e-4])[:, None, None, None]
    b = torch.tensor([2e-5, 1e-5])[:, None, None, None]
    expected = torch.cat([image, torch.sqrt(a * image.clamp(min=0) + b)], dim=1) * net.input_scale
    torch.testing.assert_close(seen["x"], expected)


def test_noise_map_needs_the_noise_scalars():
    with pytest.raises(ValueError, match="scalar_channels"):
        UNet(scalar_channels=5, noise_map=True)
    net = UNet(row_channels=7, scalar_channels=8, base_width=4, depth=1, noise_map=True)
    with pytest.raises(ValueError, match="scalar"):
        net(torch.rand(1, 4, 8, 8), torch.rand(1, 7, 8), torch.rand(1, 5, 8), None)


@pytest.mark.parametrize(
    "conditioning", ["msconv", "tile_concat", "film", "msconv_film", "film_msconv", "none"]
)
def test_a_missing_side_input_is_read_as_zeros(conditioning):
    torch.manual_seed(0)
    net = UNet(base_width=4, depth=2, conditioning=conditioning).eval()
    image, scalar = torch.rand(2, 4, 12, 10), torch.rand(2, 5)
    with torch.no_grad():
        got = net(image, None, None, scalar)
        want = net(image, torch.zeros(2, 5, 12), torch.zeros(2, 5, 10), scalar)
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(
            net(image), net(image, *(torch.zeros(2, c, n) for c, n in ((5, 12), (5, 10))), torch.zeros(2, 5))
        )


def test_closed_sets_of_strings_are_literal_types():
    import inspect
    import typing

    from isp.lit import DenoiseModule
    from isp.models import ConditionedConv2d

    for cls, name in (
        (UNet, "conditioning"),
        (UNet, "padding_mode"),
        (ConditionedConv2d, "padding_mode"),
        (DenoiseModule, "loss"),
        (DenoiseModule, "scheduler_interval"),
    ):
        hint = typing.get_type_hints(cls.__init__)[name]
        assert typing.get_origin(hint) is typing.Literal, (cls, name, hint)
        assert inspect.signature(cls).parameters[name].default in typing.get_args(hint)
    with pytest.raises(ValueError, match="padding_mode"):
        ConditionedConv2d((4, 0, 0, 0), 4, conditioning="none", padding_mode="mirror")


def _with_line_view(base: UNet, line_features: int) -> UNet:
    """``base``'s architecture with a line view, holding ``base``'s weights (the line layers fresh)."""
    args = dict(row_channels=base.side_channels[0], col_channels=base.side_channels[1])
    args.update(scalar_channels=base.side_channels[2], base_width=base.base_width, depth=base.depth)
    net = UNet(**args, conditioning=base.conditioning, line_features=line_features)
    fresh = {k: v for k, v in net.state_dict().items() if k.startswith("line_")}
    net.load_state_dict({**fresh, **base.state_dict()})
    return net


def _randomised(net: nn.Module, seed: int = 0, scale: float = 0.3) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
    return net


@pytest.mark.parametrize("conditioning", ["msconv", "tile_concat"])
def test_line_view_starts_as_the_same_function(conditioning):
    torch.manual_seed(0)
    base = _randomised(UNet(base_width=4, depth=2, conditioning=conditioning))
    net = _with_line_view(base, 3)
    x, row, col, scalar = (
        torch.rand(2, 4, 20, 28),
        torch.randn(2, 5, 20),
        torch.randn(2, 5, 28),
        torch.randn(2, 5),
    )
    torch.testing.assert_close(net(x, row, col, scalar), base(x, row, col, scalar), rtol=0, atol=0)


def test_line_view_sees_the_whole_row_and_column():
    # depth 1: the net without the line view has a receptive field of about ten pixels; with it,
    # a pixel 50 columns away in the same row (or 50 rows away in the same column) reaches the output
    torch.manual_seed(0)
    base = _randomised(UNet(base_width=4, depth=1, row_channels=0, col_channels=0, scalar_channels=0))
    net = _randomised(_with_line_view(base, 2), seed=1)
    x = torch.rand(1, 4, 64, 64)
    for y, z in ((2, 60), (60, 2)):  # far along the row; far along the column
        moved = x.clone()
        moved[0, :, y, z] += 1.0
        with torch.no_grad():
            assert torch.equal(base(moved)[0, :, 2, 2], base(x)[0, :, 2, 2])
            assert (net(moved)[0, :, 2, 2] - net(x)[0, :, 2, 2]).abs().max() > 1e-4
        # and only along its own row / column: a pixel far in both directions stays out of reach
    moved = x.clone()
    moved[0, :, 60, 60] += 1.0
    with torch.no_grad():
        assert torch.equal(net(moved)[0, :, 2, 2], net(x)[0, :, 2, 2])


def test_line_view_means_leave_the_padding_out():
    # H, W not multiples of 2**depth: the net pads internally, the line means cover the image only,
    # so the result equals the same net's means computed by hand over the unpadded features
    torch.manual_seed(0)
    net = _randomised(
        UNet(base_width=4, depth=2, row_channels=0, col_channels=0, scalar_channels=0, line_features=2)
    )
    feats = {}
    net.line_proj.register_forward_hook(lambda m, i, o: feats.__setitem__("z", o))
    seen = {}

    def spy(module, args):
        seen["row"], seen["col"] = args[1], args[2]

    net.line_conv.register_forward_pre_hook(spy)
    with torch.no_grad():
        net(torch.rand(1, 4, 13, 10))
    z = feats["z"]
    assert z.shape[-2:] == (16, 12)
    torch.testing.assert_close(seen["row"], z[..., :10].mean(-1))
    torch.testing.assert_close(seen["col"], z[..., :13, :].mean(-2))


def test_line_view_needs_row_and_column_conditioning():
    for conditioning in ("none", "film"):
        with pytest.raises(ValueError, match="line_features"):
            UNet(base_width=4, depth=1, conditioning=conditioning, line_features=2)
    with pytest.raises(ValueError, match="line_features"):
        UNet(base_width=4, depth=1, line_features=-1)


def test_line_view_is_the_same_function_with_and_without_autograd():
    # inference adds the line view in place; training out of place, with a gradient to every layer
    torch.manual_seed(0)
    net = _randomised(UNet(base_width=4, depth=2, line_features=3))
    x, row, col, scalar = (
        torch.rand(2, 4, 24, 40),
        torch.randn(2, 5, 24),
        torch.randn(2, 5, 40),
        torch.randn(2, 5),
    )
    with torch.no_grad():
        expected = net(x, row, col, scalar)
    out = net(x, row, col, scalar)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    out.square().sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
