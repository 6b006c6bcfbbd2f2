"""Multi-source convolution: an image plus row, column and scalar side inputs.

A *tile-concat* convolution broadcasts the side inputs to constant channels, concatenates them with
the image and runs one ``conv2d`` (:func:`tile_and_concatenate` + :func:`tile_concat_conv2d`).
:func:`ms_conv2d` computes the same thing without the broadcast. Split the tile-concat weight as
``W = [W_img | W_row | W_col | W_sc]``; where every tap of the kernel falls inside the image,

- a scalar ``s (N, C4)`` contributes ``s @ sum_ij W_sc`` (a linear layer),
- a row vector ``r (N, C2, H)`` a Conv1d over H with ``sum_j W_row``, broadcast along W,
- a column vector ``c (N, C3, W)`` a Conv1d over W with ``sum_i W_col``, broadcast along H,

since a constant channel times a kernel is the constant times the kernel's sum. Under
``reflect``, ``replicate`` and ``circular`` padding a constant stays constant when padded, so this
*interior formula* holds everywhere (the 1-d convs pad with the same mode along their axis).
Under ``padding_mode="zeros"`` the outermost ``padding`` rows and columns see fewer taps, and a
constant channel contributes ``s * (sum of the taps inside)``: one value per border class.

Two algorithms, one per kind of side weight:

- *compact* side kernels (``(C_out, C2, kh)``, ``(C_out, C3, kw)``, ``(C_out, C4)``, a fresh
  :class:`~isp.nn.MSConv2d`'s): the interior formula everywhere, fused into one autograd node and
  one memory pass over the conv output (:mod:`isp.nn._compact`);
- *full* side kernels (``(C_out, C_i, kh, kw)``, what :meth:`MSConv2d.from_tile_concat` keeps):
  exactly the tile-concat convolution, the border strips corrected per class at ``O((H + W) k)``
  extra cost (:mod:`isp.nn._border`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from isp.nn._border import add_full_side_terms
from isp.nn._compact import (
    _needs_grad,
    add_compact_side_terms,
    blocked_conv_with_side_terms,
    scalar_constant,
    use_blocked_conv,
)
from isp.nn._epilogue import _side_leaky_relu, conv_side_leaky_relu, fused_side_leaky_relu
from isp.nn._validate import SOURCES, check_placement, check_sources, check_weights, conv2d, geometry

__all__ = [
    "ms_conv2d",
    "ms_conv2d_leaky_relu",
    "side_leaky_relu",
    "tile_and_concatenate",
    "tile_concat_conv2d",
]


def tile_and_concatenate(
    image: Tensor | None,
    row: Tensor | None = None,
    col: Tensor | None = None,
    scalar: Tensor | None = None,
    size: tuple[int, int] | None = None,
) -> Tensor:
    """Broadcast the side inputs to constant channels and concatenate them after the image.

    Args:
        image: ``(N, C1, H, W)`` or ``None``.
        row: ``(N, C2, H)`` (constant along W) or ``None``.
        col: ``(N, C3, W)`` (constant along H) or ``None``.
        scalar: ``(N, C4)`` (constant over the image) or ``None``.
        size: ``(H, W)``; needed only when neither the image nor row and col give it.

    Returns:
        ``(N, C1 + C2 + C3 + C4, H, W)``, channels in the order image, row, col, scalar.

    Example:
        >>> x = tile_and_concatenate(torch.zeros(2, 4, 5, 6), torch.ones(2, 1, 5), None, torch.ones(2, 3))
        >>> x.shape, x[:, 4:].min().item()
        (torch.Size([2, 8, 5, 6]), 1.0)
    """
    for name, x in zip(SOURCES, (image, row, col, scalar), strict=True):
        if x is not None and not isinstance(x, Tensor):
            raise TypeError(f"Expected `{name}` to be a torch.Tensor or None. Got {type(x).__name__}.")
    channels = tuple(
        0 if x is None else int(x.shape[1]) if x.dim() > 1 else 1 for x in (image, row, col, scalar)
    )
    n, h, w = check_sources(image, row, col, scalar, channels, size)  # type: ignore[arg-type]
    parts = []
    if image is not None:
        parts.append(image)
    if row is not None:
        parts.append(row[:, :, :, None].expand(n, row.shape[1], h, w))
    if col is not None:
        parts.append(col[:, :, None, :].expand(n, col.shape[1], h, w))
    if scalar is not None:
        parts.append(scalar[:, :, None, None].expand(n, scalar.shape[1], h, w))
    return torch.cat(parts, dim=1)


def tile_concat_conv2d(
    image: Tensor | None,
    row: Tensor | None,
    col: Tensor | None,
    scalar: Tensor | None,
    weight: Tensor,
    bias: Tensor | None = None,
    *,
    stride: int | tuple[int, int] = 1,
    padding: str | int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    in_channels: tuple[int, int, int, int] | None = None,
    size: tuple[int, int] | None = None,
) -> Tensor:
    """The naive reference: ``conv2d`` over :func:`tile_and_concatenate`'s output.

    Args:
        image: ``(N, C1, H, W)`` or ``None``.
        row: ``(N, C2, H)`` or ``None``.
        col: ``(N, C3, W)`` or ``None``.
        scalar: ``(N, C4)`` or ``None``.
        weight: ``(C_out, C1 / groups + C2 + C3 + C4, kh, kw)``.
        bias: ``(C_out,)`` or ``None``.
        stride: as ``nn.Conv2d``.
        padding: as ``nn.Conv2d`` (int, pair, ``"same"`` or ``"valid"``).
        dilation: as ``nn.Conv2d``.
        padding_mode: as ``nn.Conv2d``.
        groups: splits the image channels only; the side channels are seen by every output channel
            (with ``groups=1`` this is one plain ``conv2d`` over the concatenation).
        in_channels: ``(C1, C2, C3, C4)``; inferred from the inputs when ``None``.
        size: ``(H, W)`` when no source gives it.

    Returns:
        ``(N, C_out, H_out, W_out)``.

    Example:
        >>> w = torch.randn(8, 4 + 2, 3, 3)
        >>> tile_concat_conv2d(torch.randn(1, 4, 5, 5), torch.randn(1, 2, 5), None, None, w, padding=1).shape
        torch.Size([1, 8, 5, 5])
    """
    if in_channels is not None:
        check_sources(image, row, col, scalar, tuple(in_channels), size)
    x = tile_and_concatenate(image, row, col, scalar, size)
    geo = geometry(x.shape[2:], (weight.shape[2], weight.shape[3]), stride, padding, dilation, padding_mode)
    c1 = 0 if image is None else image.shape[1]
    if groups == 1:
        if weight.shape[1] != x.shape[1]:
            raise ValueError(
                f"Expected `weight` of shape (C_out, {x.shape[1]}, kh, kw) for the given sources. "
                f"Got {tuple(weight.shape)}."
            )
        return conv2d(x, weight, bias, geo, 1)
    cg = c1 // groups
    out = conv2d(x[:, :c1], weight[:, :cg], bias, geo, groups)
    if x.shape[1] > c1:
        out = out + conv2d(x[:, c1:], weight[:, cg:], None, geo, 1)
    return out


def ms_conv2d(
    image: Tensor | None,
    row: Tensor | None,
    col: Tensor | None,
    scalar: Tensor | None,
    weight: Tensor | None,
    row_weight: Tensor | None = None,
    col_weight: Tensor | None = None,
    scalar_weight: Tensor | None = None,
    bias: Tensor | None = None,
    *,
    stride: int | tuple[int, int] = 1,
    padding: str | int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    kernel_size: int | tuple[int, int] | None = None,
    size: tuple[int, int] | None = None,
) -> Tensor:
    """Multi-source convolution without broadcasting the side inputs.

    Each side weight is either *compact* (``row_weight (C_out, C2, kh)``, ``col_weight
    (C_out, C3, kw)``, ``scalar_weight (C_out, C4)``: the interior formula everywhere) or *full*
    (``(C_out, C_i, kh, kw)``: exactly the tile-concat convolution with that weight, border included).

    Args:
        image: ``(N, C1, H, W)`` or ``None`` (then ``weight`` is ``None`` too).
        row: ``(N, C2, H)`` or ``None``.
        col: ``(N, C3, W)`` or ``None``.
        scalar: ``(N, C4)`` or ``None``.
        weight: ``(C_out, C1 / groups, kh, kw)`` or ``None``.
        row_weight: ``(C_out, C2, kh)`` (compact) or ``(C_out, C2, kh, kw)`` (full) or ``None``.
        col_weight: ``(C_out, C3, kw)`` (compact) or ``(C_out, C3, kh, kw)`` (full) or ``None``.
        scalar_weight: ``(C_out, C4)`` (compact) or ``(C_out, C4, kh, kw)`` (full) or ``None``.
        bias: ``(C_out,)`` or ``None``.
        stride: as ``nn.Conv2d``.
        padding: as ``nn.Conv2d`` (int, pair, ``"same"`` or ``"valid"``).
        dilation: as ``nn.Conv2d``.
        groups: splits the image path only; the side sources stay dense.
        padding_mode: as ``nn.Conv2d``.
        kernel_size: ``(kh, kw)``; needed only when no weight is 4-d.
        size: ``(H, W)`` when no source gives it.

    Returns:
        ``(N, C_out, H_out, W_out)``.

    Example:
        >>> image, row, scalar = torch.randn(2, 4, 8, 8), torch.randn(2, 3, 8), torch.randn(2, 1)
        >>> weights = torch.randn(16, 4, 3, 3), torch.randn(16, 3, 3), None, torch.randn(16, 1)
        >>> out = ms_conv2d(image, row, None, scalar, *weights, padding=1)
        >>> out.shape
        torch.Size([2, 16, 8, 8])
    """
    geo, n, c_out = _checked_geometry(
        image, row, col, scalar, weight, row_weight, col_weight, scalar_weight, bias,
        stride, padding, dilation, groups, padding_mode, kernel_size, size,
    )  # fmt: skip
    if image is not None and row is None and col is None and scalar is None:
        return conv2d(image, weight, bias, geo, groups)  # the bias rides in the conv itself
    side = ((row, row_weight), (col, col_weight), (scalar, scalar_weight))
    full = any(x is not None and wt.dim() == 4 for x, wt in side)
    if image is not None and row is None and col is None and not full and image.shape[0] == 1:
        # one sample, scalars only: their term is a per-channel constant, the conv's own bias
        return conv2d(image, weight, scalar_constant(scalar, scalar_weight, bias)[0], geo, groups)
    inputs = (row, col, scalar, row_weight, col_weight, scalar_weight, bias)
    if image is not None and not full and use_blocked_conv(image, weight, groups, geo, inputs):
        return blocked_conv_with_side_terms(image, weight, *inputs, geo)
    if image is not None:
        out = conv2d(image, weight, None, geo, groups)
    else:
        ref = next(x for x in (row, col, scalar) if x is not None)
        autocast = torch.is_autocast_enabled(ref.device.type)
        dtype = torch.get_autocast_dtype(ref.device.type) if autocast else ref.dtype
        out = torch.zeros(n, c_out, *geo.size_out, dtype=dtype, device=ref.device)
    add = add_full_side_terms if full else add_compact_side_terms
    return add(out, row, col, scalar, row_weight, col_weight, scalar_weight, bias, geo)


def _checked_geometry(
    image, row, col, scalar, weight, row_weight, col_weight, scalar_weight, bias,
    stride, padding, dilation, groups, padding_mode, kernel_size, size,
):  # fmt: skip
    """Every argument checked; the geometry, the batch size and ``C_out``."""
    kernel, c_out, channels = check_weights(
        weight, row_weight, col_weight, scalar_weight, bias, groups, kernel_size
    )
    n, h, w = check_sources(image, row, col, scalar, channels, size)
    check_placement(
        {"image": image, "row": row, "col": col, "scalar": scalar},
        {
            "weight": weight,
            "row_weight": row_weight,
            "col_weight": col_weight,
            "scalar_weight": scalar_weight,
            "bias": bias,
        },
    )
    return geometry((h, w), kernel, stride, padding, dilation, padding_mode), n, c_out


def ms_conv2d_leaky_relu(
    image: Tensor,
    row: Tensor | None,
    col: Tensor | None,
    scalar: Tensor | None,
    weight: Tensor,
    row_weight: Tensor | None = None,
    col_weight: Tensor | None = None,
    scalar_weight: Tensor | None = None,
    bias: Tensor | None = None,
    *,
    negative_slope: float = 0.01,
    stride: int | tuple[int, int] = 1,
    padding: str | int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> Tensor:
    """``leaky_relu(ms_conv2d(...), negative_slope)`` with the side terms added in the activation's pass.

    Without autograd and with compact side weights, the image convolution runs as usual and one
    compiled pointwise kernel adds the row, column and scalar terms and applies the activation,
    in float32, rounded once, writing into the convolution's output where that is faster
    (float32; :mod:`isp.nn._epilogue`; compiled on first use, eager where compilation fails).
    Otherwise (autograd, full side weights, scalars alone, inside ``torch.compile``, which fuses
    the same ops itself) it is :func:`ms_conv2d` followed by ``F.leaky_relu``. Arguments as
    :func:`ms_conv2d`'s, ``image`` and ``weight`` required.

    Example:
        >>> image, row, col = torch.randn(1, 4, 8, 8), torch.randn(1, 2, 8), torch.randn(1, 2, 8)
        >>> weights = torch.randn(16, 4, 3, 3), torch.randn(16, 2, 3), torch.randn(16, 2, 3)
        >>> with torch.no_grad():
        ...     fused = ms_conv2d_leaky_relu(image, row, col, None, *weights, negative_slope=0.2, padding=1)
        ...     plain = F.leaky_relu(ms_conv2d(image, row, col, None, *weights, padding=1), 0.2)
        >>> torch.allclose(fused, plain, atol=1e-5)
        True
    """
    geo, _, _ = _checked_geometry(
        image, row, col, scalar, weight, row_weight, col_weight, scalar_weight, bias,
        stride, padding, dilation, groups, padding_mode, None, None,
    )  # fmt: skip
    sides = (row, col, scalar, row_weight, col_weight, scalar_weight, bias)
    compact = all(x is None or w.dim() < 4 for x, w in zip((row, col, scalar), sides[3:6], strict=True))
    if (
        image is None
        or not compact
        or (row is None and col is None)  # scalars alone: ms_conv2d folds them into the conv's bias
        or torch.compiler.is_compiling()
        or _needs_grad((image, weight, *sides))
    ):
        conv = ms_conv2d(
            image, *sides[:3], weight, *sides[3:], stride=stride, padding=padding, dilation=dilation,
            groups=groups, padding_mode=padding_mode,
        )  # fmt: skip
        return F.leaky_relu(conv, negative_slope, inplace=not torch.is_grad_enabled())
    return conv_side_leaky_relu(image, weight, sides, geo, groups, negative_slope)


def side_leaky_relu(
    out: Tensor,
    rows: Tensor | None = None,
    cols: Tensor | None = None,
    *,
    negative_slope: float = 0.01,
    inplace: bool = False,
) -> Tensor:
    """``leaky_relu(out + rows + cols, negative_slope)`` as one compiled pointwise kernel.

    ``out (N, C, H, W)`` in any dtype and memory format; ``rows (N, C, H)`` and ``cols (N, C, W)``
    (either may be ``None``) are added in float32 and the result rounded once to ``out``'s
    dtype; ``inplace=True`` writes it into ``out``. The kernel reads the vectors fastest in
    ``out``'s layout (channels innermost for a channels-last ``out``). Under bf16 on the CPU this
    one pass costs 0.6-0.8x aten's ``leaky_relu_`` alone. Compiled on first use (seconds;
    again once for dynamic shapes); eager, with a warning, where compilation fails. Under
    autograd it runs as eager (differentiable) ops.

    Example:
        >>> x = torch.randn(1, 8, 5, 6)
        >>> torch.equal(side_leaky_relu(x, negative_slope=0.2), F.leaky_relu(x, 0.2))
        True
    """
    if _needs_grad((out, rows, cols)):
        return _side_leaky_relu(out, rows, cols, negative_slope, inplace)
    return fused_side_leaky_relu(out, rows, cols, negative_slope, inplace)
