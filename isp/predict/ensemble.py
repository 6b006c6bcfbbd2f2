"""Self-ensemble at prediction time: the frame as it is and turned by 180 degrees, averaged.

Turned by 180 degrees, an RGGB mosaic is a BGGR one: in every 2 x 2 block the blue pixel is at
the top left, then green, green, red. The turned frame's packed planes, taken by position (top
left, top right, bottom left, bottom right), are the original B, Gb, Gr and R planes with both
axes flipped; they fill the network's R, Gr, Gb, B inputs, so the second view is the scene turned,
with red and blue (and the two greens) swapped, under the same noise: another plausible scene
for a network trained on many cameras' white balances. Each packed row's top sensor row is then
an odd one of the original, so the per-row channels of the even and the odd sensor row swap, as
do the per-column ones; scalars do not change. The mean of the two predictions (the second
turned back) averages part of each one's error away (Timofte et al., "Seven ways to improve
example-based single image super resolution", CVPR 2016, sec. 3.1).

Tried on the development set and left out: the turned view with its colours kept (each plane
shifted by one packed pixel where the turn moves it off the RGGB grid): +7.08 / +2.84 dB (5
iso-overstated cases worse than the input, against 3); four views with the transposed frame
(rows given as columns, whose channels differ, and back): +6.36 / +2.75 dB.

Measured on the development set (``python ../shared/devset/score.py`` with ``--ensemble 1`` and
``2``): physical mean gain +7.01 -> +7.12 dB, iso-overstated +2.85 -> +2.91 dB, at twice the
network's time (README, "Results").
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from isp.models.unet import pad_to_multiple

__all__ = ["ENSEMBLES", "ensemble_forward", "turn_inputs", "turn_output"]

ENSEMBLES = (1, 2)
"""Views a prediction may average: 1 (the frame as it is) or 2 (and turned by 180 degrees)."""

#: Plane order after the turn: R, Gr, Gb, B <- B, Gb, Gr, R.
PLANES = [3, 2, 1, 0]
#: Per-line channels (``isp.raw.noise_vectors``: offset and spread of the even sensor line, of
#: the odd one, validity; the row input of contract 2 adds the banding of the even and odd row).
LINE_CHANNELS = {5: [2, 3, 0, 1, 4], 7: [2, 3, 0, 1, 4, 6, 5]}


def _turn_lines(x: Tensor | None, name: str) -> Tensor | None:
    if x is None:
        return None
    order = LINE_CHANNELS.get(x.shape[1])
    if order is None:
        raise ValueError(
            f"Expected `{name}` with {' or '.join(map(str, LINE_CHANNELS))} channels (even and odd sensor "
            f"line statistics) to turn it by 180 degrees. Got {x.shape[1]}."
        )
    return x.flip(2)[:, order]


def turn_inputs(
    image: Tensor, row: Tensor | None, col: Tensor | None, scalar: Tensor | None
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """The network's inputs for the same frame turned by 180 degrees.

    Shapes are kept: ``image (N, 4, h, w)`` (packed R, Gr, Gb, B), ``row (N, 5 or 7, h)``,
    ``col (N, 5, w)``, ``scalar (N, C4)`` (unchanged).

    Example:
        >>> image = torch.arange(8.0).reshape(1, 4, 1, 2)
        >>> turn_inputs(image, None, None, None)[0].flatten().tolist()
        [7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0]
    """
    if image.ndim != 4 or image.shape[1] != 4:
        raise ValueError(
            f"Expected `image` of shape (N, 4, h, w): packed R, Gr, Gb, B. Got {tuple(image.shape)}."
        )
    return image.flip(2, 3)[:, PLANES], _turn_lines(row, "row"), _turn_lines(col, "col"), scalar


def turn_output(y: Tensor) -> Tensor:
    """A prediction ``(N, 4, h, w)`` on turned inputs, turned back (the turn is its own inverse)."""
    return y[:, PLANES].flip(2, 3)


def ensemble_forward(
    net: Callable[..., Tensor],
    image: Tensor,
    row: Tensor | None = None,
    col: Tensor | None = None,
    scalar: Tensor | None = None,
    views: int = 2,
    align: int = 1,
) -> Tensor:
    """``net``'s prediction averaged over ``views`` views of the frame (:data:`ENSEMBLES`).

    Shapes: ``image (N, 4, h, w), row (N, 5 or 7, h), col (N, 5, w), scalar (N, C4) -> (N, 4, h, w)``.

    ``align``: the network's size multiple (``2**depth`` for a UNet, which pads its input at the
    bottom and right to it). The turned view is padded to it before the turn, so that its pooling
    grid falls where the first view's does: a frame and its tiles (which start at multiples of
    ``align``) then see the same turned view.
    """
    if views not in ENSEMBLES:
        raise ValueError(f"Expected `views` (the ensemble) to be one of {ENSEMBLES}. Got {views!r}.")
    y = net(image, row, col, scalar)
    if views == 1:
        return y
    h, w = image.shape[-2:]
    padded, prow, pcol = pad_to_multiple(image, row, col, align)
    turned = turn_output(net(*turn_inputs(padded, prow, pcol, scalar)))[..., :h, :w]
    return torch.lerp(y, turned.to(y.dtype), 0.5)
