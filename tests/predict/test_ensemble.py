"""The 180-degree self-ensemble: the turned view against the turned mosaic and the channels' meaning."""

import pytest
import torch
import torch.nn.functional as F

from isp.predict.ensemble import ensemble_forward, turn_inputs, turn_output


def _inputs(seed=0, n=2, h=6, w=10, row_channels=7):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(n, 4, h, w, generator=g),
        torch.randn(n, row_channels, h, generator=g),
        torch.randn(n, 5, w, generator=g),
        torch.randn(n, 8, generator=g),
    )


def test_the_turned_planes_are_the_turned_mosaic_packed_by_position():
    # independent reference: the mosaic itself turned (torch.rot90), packed TL, TR, BL, BR
    mosaic = torch.rand(1, 1, 12, 16)
    planes = F.pixel_unshuffle(mosaic, 2)  # R, Gr, Gb, B of an RGGB mosaic
    turned = F.pixel_unshuffle(torch.rot90(mosaic, 2, dims=(2, 3)), 2)
    torch.testing.assert_close(turn_inputs(planes, None, None, None)[0], turned, rtol=0, atol=0)
    torch.testing.assert_close(turn_output(turned), planes, rtol=0, atol=0)


@pytest.mark.parametrize("row_channels", [5, 7])
def test_turning_twice_is_the_identity(row_channels):
    xs = _inputs(row_channels=row_channels)
    twice = turn_inputs(*turn_inputs(*xs))
    for a, b in zip(twice, xs, strict=True):
        assert torch.equal(a, b)
    assert turn_inputs(*xs)[3] is xs[3]  # scalars do not change


def _line_corrector(image, row, col, scalar):
    """A 'network' that removes each sensor line's measured offset and banding, by parity.

    Planes R, Gr sit on even sensor rows, Gb, B on odd ones (row channels 0 / 2 offsets, 5 / 6
    banding); R, Gb on even sensor columns, Gr, B on odd ones (column channels 0 / 2).
    """
    even_row = (row[:, 0] + row[:, 5])[:, None, :, None]
    odd_row = (row[:, 2] + row[:, 6])[:, None, :, None]
    even_col, odd_col = col[:, 0][:, None, None, :], col[:, 2][:, None, None, :]
    by_row = torch.cat([even_row, even_row, odd_row, odd_row], 1)
    by_col = torch.cat([even_col, odd_col, even_col, odd_col], 1)
    return image - by_row - by_col + 0.1 * scalar[:, :1, None, None]  # a scalar is no plane's


def test_the_turned_view_keeps_what_every_channel_means():
    # a prediction that depends on the lines' parity only agrees with itself turned if the
    # even/odd row and column channels swap exactly as the planes do
    xs = _inputs()
    single = _line_corrector(*xs)
    torch.testing.assert_close(ensemble_forward(_line_corrector, *xs, views=2), single)
    turned = turn_output(_line_corrector(*turn_inputs(*xs)))
    torch.testing.assert_close(turned, single)


def test_views_average_and_bad_inputs_are_named():
    xs = _inputs()
    net = torch.nn.Conv2d(4, 4, 3, padding=1)

    def conv(image, row, col, scalar):
        return net(image)

    with torch.no_grad():
        one, two = ensemble_forward(conv, *xs, views=1), ensemble_forward(conv, *xs, views=2)
        assert torch.equal(one, conv(*xs))
        torch.testing.assert_close(two, 0.5 * (one + turn_output(conv(*turn_inputs(*xs)))))
        assert (two - one).abs().max() > 1e-3  # a conv that is not turn-symmetric: two real views
    with pytest.raises(ValueError, match="`views`"):
        ensemble_forward(conv, *xs, views=4)
    with pytest.raises(ValueError, match="`row` with 5 or 7 channels"):
        turn_inputs(xs[0], torch.zeros(2, 6, 6), None, None)
    with pytest.raises(ValueError, match="packed R, Gr, Gb, B"):
        turn_inputs(torch.zeros(2, 3, 6, 6), None, None, None)


def test_the_turned_view_is_padded_to_the_networks_multiple_first():
    # a UNet pools from its input's top left: padded to the multiple before the turn, the turned
    # view's grid falls on the first view's, for a frame and for its aligned tiles alike
    xs = _inputs(h=13, w=21)
    shapes = []

    def record(image, row, col, scalar):
        shapes.append((tuple(image.shape[-2:]), row.shape[-1], col.shape[-1]))
        return _line_corrector(image, row, col, scalar)

    out = ensemble_forward(record, *xs, views=2, align=8)
    assert shapes == [((13, 21), 13, 21), ((16, 24), 16, 24)]
    torch.testing.assert_close(out, _line_corrector(*xs))  # the padding is cropped off again
