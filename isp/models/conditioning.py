"""How the metadata side inputs enter a convolution: MSConv2d, tile-concat, FiLM, both or not at all.

Side inputs are ``row (N, C2, H)`` (one value per image row, e.g. optical-black offsets),
``col (N, C3, W)`` and ``scalar (N, C4)`` (ISO, exposure, gain). Five ways to use them:

- ``msconv``: :class:`isp.nn.MSConv2d` (the side inputs are folded into the conv through their
  summed kernels: a Linear for the scalars and 1-d convs for the vectors).
- ``tile_concat``: :class:`isp.nn.TileConcatConv2d` (broadcast to constant channels and
  concatenated to the image; the same function class as ``msconv``, the ablation's reference).
- ``film``: a plain conv followed by a per-channel scale and shift predicted from the scalars and
  the vectors' means (Perez et al., "FiLM", AAAI 2018): ``y = conv(x) * (1 + gamma) + beta``.
- ``msconv_film``: ``msconv`` followed by a FiLM gain, ``y = msconv(x, ...) * (1 + gamma)``
  with ``gamma`` linear in the scalars and the vectors' means (the shift is already in msconv's
  scalar term). The gain layer starts at zero, so the layer starts as ``msconv``: it can be added
  to a trained msconv network and trained on from its function.
- ``film_msconv``: ``film`` with :class:`isp.nn.MSConv2d` as its convolution,
  ``y = msconv(x, ...) * (1 + gamma) + beta``, the FiLM layer initialised as ``film``'s (not at
  zero): FiLM's frame-wide modulation and MSConv2d's per-row and per-column terms together.
- ``none``: a plain conv; the side inputs are ignored.

FiLM: https://arxiv.org/abs/1709.07871
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from isp.nn import MSConv2d, TileConcatConv2d
from isp.nn._epilogue import fresh_side_leaky_relu

__all__ = ["CONDITIONING", "PADDING_MODES", "Conditioning", "ConditionedConv2d", "PaddingMode", "film_vector"]

Conditioning = Literal["msconv", "tile_concat", "none", "film", "msconv_film", "film_msconv"]
CONDITIONING: tuple[str, ...] = get_args(Conditioning)
PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]
PADDING_MODES: tuple[str, ...] = get_args(PaddingMode)


def film_vector(
    row: Tensor | None,
    col: Tensor | None,
    scalar: Tensor | None,
    channels: tuple[int, int, int],
    n: int,
    like: Tensor,
) -> Tensor:
    """The FiLM conditioning vector: ``[mean_H(row), mean_W(col), scalar]`` (zeros where absent).

    Args:
        row: ``(N, C2, H)`` or ``None``.
        col: ``(N, C3, W)`` or ``None``.
        scalar: ``(N, C4)`` or ``None``.
        channels: ``(C2, C3, C4)``.
        n: the batch size.
        like: a tensor whose dtype and device the result takes.

    Returns:
        ``(N, C2 + C3 + C4)``.

    Example:
        >>> film_vector(torch.ones(2, 1, 5), None, torch.full((2, 2), 3.0), (1, 1, 2), 2, torch.zeros(1))
        tensor([[1., 0., 3., 3.],
                [1., 0., 3., 3.]])
    """
    parts = []
    sources = ((row, channels[0], True), (col, channels[1], True), (scalar, channels[2], False))
    for value, c, reduce in sources:
        if c == 0:
            continue
        if value is None:
            parts.append(like.new_zeros(n, c))
        else:
            parts.append(value.mean(-1) if reduce else value)
    return torch.cat(parts, dim=1)


class ConditionedConv2d(nn.Module):
    """A convolution that also reads the side inputs, in one of :data:`CONDITIONING`'s ways.

    Shapes: ``x (N, C1, H, W), row (N, C2, H), col (N, C3, W), scalar (N, C4) -> (N, C_out, H', W')``
    (``H' = H`` for the default odd kernel with "same" padding). Any side input may be ``None``
    (read as zeros); ``conditioning="none"`` ignores them.

    Args:
        in_channels: ``(C1, C2, C3, C4)``: image, row-vector, column-vector and scalar channels.
        out_channels: output channels.
        kernel_size: odd kernel size; padding is ``kernel_size // 2``.
        conditioning: one of ``"msconv"``, ``"tile_concat"``, ``"none"``, ``"film"``,
            ``"msconv_film"``, ``"film_msconv"``.
        padding_mode: as ``nn.Conv2d``'s (MSConv2d is exact for every mode).
        device: passed to the parameters.
        dtype: passed to the parameters.

    Example:
        >>> conv = ConditionedConv2d((8, 5, 5, 5), 16, conditioning="film")
        >>> conv(torch.rand(2, 8, 12, 10), torch.rand(2, 5, 12), None, torch.rand(2, 5)).shape
        torch.Size([2, 16, 12, 10])
    """

    def __init__(
        self,
        in_channels: tuple[int, int, int, int],
        out_channels: int,
        kernel_size: int = 3,
        conditioning: Conditioning = "msconv",
        padding_mode: PaddingMode = "zeros",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if conditioning not in CONDITIONING:
            raise ValueError(f"Expected `conditioning` to be one of {CONDITIONING}. Got {conditioning!r}.")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"Expected `padding_mode` to be one of {PADDING_MODES}. Got {padding_mode!r}.")
        if (
            not isinstance(in_channels, tuple | list)
            or len(in_channels) != 4
            or not all(isinstance(c, int) and c >= 0 for c in in_channels)
            or in_channels[0] < 1
        ):
            raise ValueError(
                "Expected `in_channels` to be four non-negative ints (C1, C2, C3, C4) with C1 >= 1. "
                f"Got {in_channels!r}."
            )
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"Expected `kernel_size` to be an odd positive int. Got {kernel_size!r}.")
        self.in_channels = tuple(in_channels)
        self.out_channels = out_channels
        self.conditioning = conditioning
        side = tuple(in_channels[1:])
        factory = {"device": device, "dtype": dtype}
        conv_args = {"kernel_size": kernel_size, "padding": kernel_size // 2, "padding_mode": padding_mode}
        self.film = None
        if conditioning in ("film", "msconv_film", "film_msconv") and sum(side) == 0:
            raise ValueError(
                f"Expected at least one side-input channel for `conditioning={conditioning!r}`. "
                f"Got in_channels={in_channels!r}."
            )
        if conditioning in ("msconv", "msconv_film", "film_msconv"):
            self.conv = MSConv2d(self.in_channels, out_channels, **conv_args, **factory)
        elif conditioning == "tile_concat":
            self.conv = TileConcatConv2d(self.in_channels, out_channels, **conv_args, **factory)
        else:
            self.conv = nn.Conv2d(in_channels[0], out_channels, **conv_args, **factory)
        if conditioning in ("film", "film_msconv"):
            self.film = nn.Linear(sum(side), 2 * out_channels, **factory)  # gain and shift
        elif conditioning == "msconv_film":
            self.film = nn.Linear(sum(side), out_channels, **factory)  # the gain only, from zero
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def forward(
        self, x: Tensor, row: Tensor | None = None, col: Tensor | None = None, scalar: Tensor | None = None
    ) -> Tensor:
        """Convolve ``x`` with the side inputs; see the class docstring for shapes."""
        n = x.shape[0]
        if self.conditioning in ("msconv", "tile_concat", "msconv_film", "film_msconv"):
            y = self.conv(x, *self._side_sources(x, row, col, scalar))
        else:
            y = self.conv(x)
        if self.film is None:
            return y
        z = self.film(film_vector(row, col, scalar, self.in_channels[1:], n, x))
        if self.conditioning == "msconv_film":
            return y * (1 + z[:, :, None, None])
        gamma, beta = z.chunk(2, dim=1)
        return torch.addcmul(beta[:, :, None, None], y, 1 + gamma[:, :, None, None])

    def forward_leaky_relu(
        self,
        x: Tensor,
        row: Tensor | None = None,
        col: Tensor | None = None,
        scalar: Tensor | None = None,
        negative_slope: float = 0.2,
        fused: bool = False,
    ) -> Tensor:
        """``leaky_relu(self(x, row, col, scalar), negative_slope)``.

        ``fused=True`` (used without autograd) runs the activation as a compiled kernel
        (:func:`isp.nn.side_leaky_relu`), with ``conditioning="msconv"`` the side terms added in
        its pass (:func:`isp.nn.ms_conv2d_leaky_relu`).
        """
        if not fused or torch.is_grad_enabled():
            return F.leaky_relu(self(x, row, col, scalar), negative_slope, inplace=True)
        if self.conditioning != "msconv":
            return fresh_side_leaky_relu(self(x, row, col, scalar), None, None, negative_slope)
        return self.conv.forward_leaky_relu(x, *self._side_sources(x, row, col, scalar), negative_slope)

    def _side_sources(
        self, x: Tensor, row, col, scalar
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        """The side inputs the wrapped layer takes.

        A missing one is read as zeros (the layers themselves insist on every input), an absent
        source (0 channels) is ``None``.
        """
        c2, c3, c4 = self.in_channels[1:]
        n, h, w = x.shape[0], *x.shape[-2:]
        return (
            (x.new_zeros(n, c2, h) if row is None else row) if c2 else None,
            (x.new_zeros(n, c3, w) if col is None else col) if c3 else None,
            (x.new_zeros(n, c4) if scalar is None else scalar) if c4 else None,
        )

    def extra_repr(self) -> str:
        """The conditioning variant (the wrapped layers print their own arguments)."""
        return f"conditioning={self.conditioning!r}"
