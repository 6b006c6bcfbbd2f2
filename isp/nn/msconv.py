"""MSConv2d: a tile-concat convolution computed without broadcasting the side inputs.

The maths (and why zero padding needs a border correction) is in :mod:`isp.nn.functional`'s
docstring.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from isp.nn._validate import conv_config, extra_repr
from isp.nn.functional import ms_conv2d, ms_conv2d_leaky_relu
from isp.nn.tile_concat import TileConcatConv2d

__all__ = ["MSConv2d"]

SIDE_KERNELS = ("compact", "full")


class MSConv2d(nn.Module):
    """Multi-source 2-d convolution: an image plus row, column and scalar side inputs.

    ``image (N, C1, H, W), row (N, C2, H), col (N, C3, W), scalar (N, C4) -> (N, C_out, H_out, W_out)``.

    Equal to a tile-concat convolution (:class:`isp.nn.TileConcatConv2d`) but its cost is that of
    the image convolution plus ``O((H + W) k)``: the scalar source is a linear layer, the row source a
    Conv1d over H, the column source a Conv1d over W, added into the conv output in place.

    Parameters (``side_kernels="compact"``, a fresh module): ``weight (C_out, C1 / groups, kh, kw)``,
    ``row_weight (C_out, C2, kh)``, ``col_weight (C_out, C3, kw)``, ``scalar_weight (C_out, C4)``,
    ``bias (C_out,)`` (one bias in all); an absent source's weight is ``None``. The compact module
    computes the interior formula everywhere: it equals a tile-concat conv whose side kernels sit on one
    tap that is inside the image for every output pixel. Such a tap exists for ``padding_mode``
    reflect/replicate/circular, for ``padding="valid"`` and when padding <= dilation * (k - 1) / 2 per
    side (e.g. ``"same"`` with odd kernels); then :meth:`to_tile_concat` returns it, otherwise it raises.

    With ``side_kernels="full"`` (what :meth:`from_tile_concat` builds under zero padding) the side
    weights are ``(C_out, C_i, kh, kw)`` and the output equals the tile-concat conv at every pixel,
    border included: the border strips get their own partial-sum kernels.

    ``groups`` splits the image path only (``weight`` is grouped as in ``nn.Conv2d``); the side
    sources stay dense, every output channel sees every side channel.

    Without an image (``C1 = 0``) H comes from ``row``, W from ``col``, else from ``size=(H, W)``.

    Works with autograd, ``torch.compile``, channels_last inputs, CPU float16/bfloat16 autocast and
    ``torch.export`` (tested); ``torch.jit.script`` is not supported (the forward does its class
    bookkeeping in Python), export is the supported graph capture.

    Args:
        in_channels: ``(C1, C2, C3, C4)``; any may be 0 (absent source).
        out_channels: ``C_out``.
        kernel_size, stride, padding, dilation, groups, bias, padding_mode, device, dtype: as
            ``nn.Conv2d``; ``padding`` also takes ``"same"`` and ``"valid"``.
        side_kernels: ``"compact"`` or ``"full"`` (see above).

    Example:
        >>> conv = MSConv2d((4, 2, 2, 1), 8, 3, padding=1)
        >>> conv(torch.randn(1, 4, 6, 7), torch.randn(1, 2, 6), torch.randn(1, 2, 7), torch.randn(1, 1)).shape
        torch.Size([1, 8, 6, 7])
        >>> conv.row_weight.shape, conv.scalar_weight.shape
        (torch.Size([8, 2, 3]), torch.Size([8, 1]))
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
        padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros",
        device=None,
        dtype=None,
        side_kernels: Literal["compact", "full"] = "compact",
    ) -> None:
        super().__init__()
        cfg = conv_config(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, padding_mode
        )
        if side_kernels not in SIDE_KERNELS:
            raise ValueError(f"Expected `side_kernels` to be one of {SIDE_KERNELS}. Got {side_kernels!r}.")
        self.in_channels: tuple[int, int, int, int] = cfg["in_channels"]
        self.out_channels = out_channels
        self.kernel_size: tuple[int, int] = cfg["kernel_size"]
        self.stride: tuple[int, int] = cfg["stride"]
        self.padding = cfg["padding"]
        self.dilation: tuple[int, int] = cfg["dilation"]
        self.groups = groups
        self.padding_mode = padding_mode
        self.side_kernels = side_kernels
        self._pad4 = cfg["pad4"]
        c1, c2, c3, c4 = self.in_channels
        kh, kw = self.kernel_size
        full = side_kernels == "full"
        factory = {"device": device, "dtype": dtype}
        shapes = {
            "weight": (out_channels, c1 // groups, kh, kw) if c1 else None,
            "row_weight": ((out_channels, c2, kh, kw) if full else (out_channels, c2, kh)) if c2 else None,
            "col_weight": ((out_channels, c3, kh, kw) if full else (out_channels, c3, kw)) if c3 else None,
            "scalar_weight": ((out_channels, c4, kh, kw) if full else (out_channels, c4)) if c4 else None,
            "bias": (out_channels,) if bias else None,
        }
        for name, shape in shapes.items():
            if shape is None:
                self.register_parameter(name, None)
            else:
                setattr(self, name, nn.Parameter(torch.empty(shape, **factory)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise as ``nn.Conv2d`` would the equivalent tile-concat weight.

        Every tap is ``U(-b, b)`` with ``b = 1 / sqrt(fan_in)``,
        ``fan_in = (C1 / groups + C2 + C3 + C4) kh kw``; a compact side weight stands for a sum of ``m``
        such taps, so it gets the same variance: ``U(-b sqrt(m), b sqrt(m))``.
        """
        c1, c2, c3, c4 = self.in_channels
        kh, kw = self.kernel_size
        bound = 1 / math.sqrt((c1 // self.groups + c2 + c3 + c4) * kh * kw)
        taps = {"weight": 1, "row_weight": kw, "col_weight": kh, "scalar_weight": kh * kw, "bias": 1}
        for name, m in taps.items():
            p = getattr(self, name)
            if p is not None:
                b = bound * math.sqrt(m if p.dim() < 4 else 1)
                nn.init.uniform_(p, -b, b)

    def forward(
        self,
        image: Tensor | None = None,
        row: Tensor | None = None,
        col: Tensor | None = None,
        scalar: Tensor | None = None,
        size: tuple[int, int] | None = None,
    ) -> Tensor:
        """Convolve; shapes in the class docstring. ``size=(H, W)`` only when no source gives it."""
        geometry = {**self._geometry(), "kernel_size": self.kernel_size, "size": size}
        return ms_conv2d(image, row, col, scalar, *self._weights(), **geometry)

    def forward_leaky_relu(
        self,
        image: Tensor,
        row: Tensor | None = None,
        col: Tensor | None = None,
        scalar: Tensor | None = None,
        negative_slope: float = 0.01,
    ) -> Tensor:
        """``F.leaky_relu(self(image, row, col, scalar), negative_slope)``.

        Without autograd the side terms are added in the activation's pass
        (:func:`isp.nn.ms_conv2d_leaky_relu`).
        """
        return ms_conv2d_leaky_relu(
            image, row, col, scalar, *self._weights(), negative_slope=negative_slope, **self._geometry()
        )

    def _weights(self) -> tuple[Tensor | None, ...]:
        """``(weight, row_weight, col_weight, scalar_weight, bias)``, as the functional forms take them."""
        return self.weight, self.row_weight, self.col_weight, self.scalar_weight, self.bias

    def _geometry(self) -> dict:
        """The convolution's keyword arguments shared by the functional forms."""
        return {
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "groups": self.groups,
            "padding_mode": self.padding_mode,
        }

    def extra_repr(self) -> str:
        """``nn.Conv2d``'s, with the channel tuple (and ``side_kernels=full`` when full)."""
        s = extra_repr(self)
        return s + (", side_kernels=full" if self.side_kernels == "full" else "")

    @classmethod
    def from_tile_concat(
        cls, conv: nn.Conv2d | TileConcatConv2d, in_channels: tuple[int, int, int, int] | None = None
    ) -> MSConv2d:
        """The MSConv2d equal to ``conv`` (run over tile-concat input) at every output pixel.

        Args:
            conv: an ``nn.Conv2d`` over ``C1 + C2 + C3 + C4`` channels in the order image, row, col,
                scalar (``groups=1``: a grouped ``nn.Conv2d`` mixes side and image channels in its
                groups, which MSConv2d cannot express), or a :class:`TileConcatConv2d` (any groups).
            in_channels: ``(C1, C2, C3, C4)``; optional for a ``TileConcatConv2d``.

        Returns:
            An MSConv2d with compact side weights where those are exact (padding modes reflect,
            replicate, circular, or no padding), else full side weights (zero padding).
        """
        if not isinstance(conv, nn.Conv2d | TileConcatConv2d):
            raise TypeError(
                f"Expected `conv` to be an nn.Conv2d or TileConcatConv2d. Got {type(conv).__name__}."
            )
        if isinstance(conv, TileConcatConv2d):
            if in_channels is not None and tuple(in_channels) != conv.in_channels:
                raise ValueError(
                    f"Expected `in_channels` to be None or {conv.in_channels} for this TileConcatConv2d. "
                    f"Got {tuple(in_channels)}."
                )
            in_channels = conv.in_channels
        else:
            if in_channels is None:
                raise ValueError("Expected `in_channels=(C1, C2, C3, C4)` for an nn.Conv2d. Got None.")
            if conv.groups != 1:
                raise ValueError(
                    "Expected an nn.Conv2d with groups=1: its groups would mix side and image channels, "
                    f"while MSConv2d groups split the image path only. Got groups={conv.groups}."
                )
            if sum(in_channels) != conv.in_channels:
                raise ValueError(
                    f"Expected `in_channels` to sum to conv.in_channels={conv.in_channels}. "
                    f"Got {tuple(in_channels)}."
                )
        if conv.padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(f"Expected a supported `padding_mode`. Got {conv.padding_mode!r}.")
        weight = conv.weight.detach()
        pad4 = conv_config(
            tuple(in_channels),
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            conv.dilation,
            conv.groups,
            conv.padding_mode,
        )["pad4"]
        compact = conv.padding_mode != "zeros" or pad4 == (0, 0, 0, 0)
        out = cls(
            tuple(in_channels),
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            conv.dilation,
            conv.groups,
            conv.bias is not None,
            conv.padding_mode,
            weight.device,
            weight.dtype,
            side_kernels="compact" if compact else "full",
        )
        c1, c2, c3, c4 = out.in_channels
        cg = c1 // conv.groups
        parts = torch.split(weight, [cg, c2, c3, c4], dim=1)
        sums = {"row_weight": (3,), "col_weight": (2,), "scalar_weight": (2, 3)}
        with torch.no_grad():
            for name, part in zip(
                ("weight", "row_weight", "col_weight", "scalar_weight"), parts, strict=True
            ):
                p = getattr(out, name)
                if p is not None:
                    p.copy_(part if p.dim() == 4 else part.sum(dim=sums[name]))
            if conv.bias is not None:
                out.bias.copy_(conv.bias)
        return out

    def to_tile_concat(self) -> TileConcatConv2d:
        """The equivalent :class:`TileConcatConv2d`, for every input size.

        Full side kernels convert as they are. Compact side kernels are placed on one tap (row ``i0``,
        column ``j0``) that is inside the image for every output pixel; under zero padding such a tap
        exists only when ``dilation * i0 >= pad_top`` and ``dilation * (kh - 1 - i0) >= pad_bottom`` (and
        likewise for columns). Where it does not, the compact module's interior formula at the border
        matches no tile-concat conv, and this raises ``ValueError``.
        """
        c1, c2, c3, c4 = self.in_channels
        kh, kw = self.kernel_size
        pt, pb, pl, pr = self._pad4
        dh, dw = self.dilation
        zeros = self.padding_mode == "zeros"

        def safe_tap(k: int, d: int, p0: int, p1: int) -> int | None:
            if not zeros:
                return 0
            i = -(-p0 // d)
            return i if i < k and d * (k - 1 - i) >= p1 else None

        i0 = safe_tap(kh, dh, pt, pb)
        j0 = safe_tap(kw, dw, pl, pr)
        compact = self.side_kernels == "compact"
        if compact and ((c2 or c4) and j0 is None or (c3 or c4) and i0 is None):
            raise ValueError(
                "This compact MSConv2d has no equivalent tile-concat conv: with padding_mode='zeros' and "
                f"padding (top, bottom, left, right)={self._pad4} wider than the dilated kernel's reach "
                f"(kernel_size={self.kernel_size}, dilation={self.dilation}), no kernel tap is inside the "
                "image for every output pixel, so the interior formula it uses at the border differs from "
                "any tile-concat conv there. Build it with side_kernels='full' (or via from_tile_concat) "
                "instead."
            )
        ref = next(
            p for p in (self.weight, self.row_weight, self.col_weight, self.scalar_weight) if p is not None
        )
        out = TileConcatConv2d(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            self.bias is not None,
            self.padding_mode,
            ref.device,
            ref.dtype,
        )
        cg = c1 // self.groups
        with torch.no_grad():
            out.weight.zero_()
            if self.weight is not None:
                out.weight[:, :cg] = self.weight
            lo = cg
            for p, c in ((self.row_weight, c2), (self.col_weight, c3), (self.scalar_weight, c4)):
                if p is None:
                    continue
                target = out.weight[:, lo : lo + c]
                if p.dim() == 4:
                    target.copy_(p)
                elif p is self.row_weight:
                    target[:, :, :, j0] = p
                elif p is self.col_weight:
                    target[:, :, i0, :] = p
                else:
                    target[:, :, i0, j0] = p
                lo += c
            if self.bias is not None:
                out.bias.copy_(self.bias)
        return out
