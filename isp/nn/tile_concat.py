"""The naive multi-source convolution: broadcast the side inputs, concatenate, one Conv2d.

Kept in the library as the reference users compare :class:`isp.nn.MSConv2d` against.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from isp.nn._validate import conv_config, extra_repr
from isp.nn.functional import tile_concat_conv2d

__all__ = ["TileConcatConv2d"]


class TileConcatConv2d(nn.Module):
    """Conv2d over ``tile_and_concatenate(image, row, col, scalar)``.

    ``image (N, C1, H, W), row (N, C2, H), col (N, C3, W), scalar (N, C4) -> (N, C_out, H_out, W_out)``.
    ``weight`` is ``(C_out, C1 / groups + C2 + C3 + C4, kh, kw)``: with ``groups=1`` it is exactly an
    ``nn.Conv2d(C1 + C2 + C3 + C4, C_out, ...)`` weight. ``groups`` splits the image channels only; the
    side channels are seen by every output channel (as in :class:`isp.nn.MSConv2d`).

    Args:
        in_channels: ``(C1, C2, C3, C4)``; any may be 0 (absent source).
        out_channels: ``C_out``.
        kernel_size, stride, padding, dilation, groups, bias, padding_mode, device, dtype: as
            ``nn.Conv2d``; ``padding`` also takes ``"same"`` and ``"valid"``.

    Example:
        >>> conv = TileConcatConv2d((4, 2, 2, 1), 8, 3, padding=1)
        >>> conv(torch.randn(1, 4, 6, 7), torch.randn(1, 2, 6), torch.randn(1, 2, 7), torch.randn(1, 1)).shape
        torch.Size([1, 8, 6, 7])
    """

    def __init__(
        self,
        in_channels: tuple[int, int, int, int],
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: str | int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        cfg = conv_config(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, padding_mode
        )
        self.in_channels: tuple[int, int, int, int] = cfg["in_channels"]
        self.out_channels = out_channels
        self.kernel_size: tuple[int, int] = cfg["kernel_size"]
        self.stride: tuple[int, int] = cfg["stride"]
        self.padding = cfg["padding"]
        self.dilation: tuple[int, int] = cfg["dilation"]
        self.groups = groups
        self.padding_mode = padding_mode
        c1, c2, c3, c4 = self.in_channels
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(
            torch.empty(out_channels, c1 // groups + c2 + c3 + c4, *self.kernel_size, **factory)
        )
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise like ``nn.Conv2d`` (fan-in over all tile-concat channels)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight[0].numel())
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(
        self,
        image: Tensor | None = None,
        row: Tensor | None = None,
        col: Tensor | None = None,
        scalar: Tensor | None = None,
        size: tuple[int, int] | None = None,
    ) -> Tensor:
        """Convolve the tile-concat input; shapes in the class docstring."""
        return tile_concat_conv2d(
            image,
            row,
            col,
            scalar,
            self.weight,
            self.bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            padding_mode=self.padding_mode,
            in_channels=self.in_channels,
            size=size,
        )

    def extra_repr(self) -> str:
        """``nn.Conv2d``'s, with the channel tuple."""
        return extra_repr(self)
