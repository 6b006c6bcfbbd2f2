"""Multi-source convolution: an image plus row, column and scalar side inputs.

A *tile-concat* convolution broadcasts the side inputs to constant channels, concatenates them with
the image and runs one ``conv2d`` (:func:`tile_and_concatenate` + :func:`tile_concat_conv2d`).
:func:`ms_conv2d` computes the same thing without the broadcast (shared/DESIGN.md, "MSConv2d"):

- a scalar ``s (N, C4)`` contributes ``s @ sum_ij W_sc``,
- a row vector ``r (N, C2, H)`` a Conv1d over H with ``sum_j W_row``, broadcast along W,
- a column vector ``c (N, C3, W)`` a Conv1d over W with ``sum_i W_col``, broadcast along H.

Under ``padding_mode="zeros"`` the border pixels see fewer taps. With *full* side kernels
(``(C_out, C_i, kh, kw)``, what :meth:`MSConv2d.from_tile_concat` keeps) the border strips are
corrected exactly at ``O((H + W) k)`` extra cost: the taps that fall inside the image depend only on
the output row (a *row class*) or column (a *column class*), so each border class gets its own
partial-sum kernel. With *compact* side kernels (``(C_out, C2, kh)``, ``(C_out, C3, kw)``,
``(C_out, C4)``, a fresh module's) the interior formula holds everywhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ms_conv2d", "tile_and_concatenate", "tile_concat_conv2d"]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_SOURCES = ("image", "row", "col", "scalar")


def _pair(value: int | tuple[int, ...] | list[int], name: str, minimum: int) -> tuple[int, int]:
    """Normalise an int or a pair of ints to a pair, checking the bound."""
    if isinstance(value, int) and not isinstance(value, bool):
        pair = (value, value)
    elif (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        pair = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"Expected `{name}` to be an int or a pair of ints. Got {value!r}.")
    if min(pair) < minimum:
        raise ValueError(f"Expected `{name}` to be >= {minimum}. Got {value!r}.")
    return pair


def _padding4(
    padding: str | int | tuple[int, int],
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[int, int, int, int]:
    """Return ``(top, bottom, left, right)`` for an ``nn.Conv2d``-style ``padding``.

    ``"same"`` pads ``dilation * (kernel - 1)`` in total per axis, the extra one (even kernels) at
    the bottom/right, as ``torch.nn.functional.conv2d`` does.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"Expected `stride` to be 1 with padding='same'. Got stride={stride}.")
            out = []
            for k, d in zip(kernel_size, dilation, strict=True):
                total = d * (k - 1)
                out += [total // 2, total - total // 2]
            return tuple(out)  # type: ignore[return-value]
        raise ValueError(
            f"Expected `padding` to be 'same', 'valid', an int or a pair of ints. Got {padding!r}."
        )
    ph, pw = _pair(padding, "padding", 0)
    return (ph, ph, pw, pw)


def _check_placement(sources: dict[str, Tensor | None], weights: dict[str, Tensor | None]) -> None:
    """Sources and weights on one device, of one floating dtype (any dtypes under autocast).

    Without this a side input on another device than the image is not an error everywhere (a CPU
    scalar tensor is silently moved, a CUDA stream may read another device's memory) and dtype
    mismatches surface as torch's bare ``expected scalar type`` errors.
    """
    present = [(n, x) for n, x in sources.items() if x is not None]
    params = [(n, x) for n, x in weights.items() if x is not None]
    ref_name, ref = present[0]
    for name, x in present[1:]:
        if x.device != ref.device:
            raise ValueError(
                f"Expected `{name}` on the device of `{ref_name}` ({ref.device}). Got {x.device}."
            )
    for name, x in params:
        if x.device != ref.device:
            raise ValueError(
                f"Expected `{ref_name}` on the device of the module's `{name}` ({x.device}); move the "
                f"inputs or the module. Got {ref.device}."
            )
    if torch.is_autocast_enabled(ref.device.type):
        return  # autocast casts every operand itself
    for name, x in present:
        if not x.is_floating_point():
            raise TypeError(f"Expected `{name}` to be a floating-point tensor. Got {x.dtype}.")
        if x.dtype != ref.dtype:
            raise TypeError(
                f"Expected `{name}` of dtype {ref.dtype}, the dtype of `{ref_name}`. Got {x.dtype}."
            )
    for name, x in params:
        if x.dtype != ref.dtype:
            raise TypeError(
                f"Expected `{ref_name}` of the module's dtype {x.dtype} (its `{name}`); convert the inputs "
                f"or the module. Got {ref.dtype}."
            )


def _out_size(size: int, k: int, s: int, d: int, p0: int, p1: int, name: str) -> int:
    out = (size + p0 + p1 - d * (k - 1) - 1) // s + 1
    if out < 1:
        raise ValueError(
            f"Expected the padded input {name} ({size} + padding {p0 + p1}) to be at least the dilated "
            "kernel "
            f"size {d * (k - 1) + 1}. Got {name}={size}."
        )
    return out


def _check_sources(
    image: Tensor | None,
    row: Tensor | None,
    col: Tensor | None,
    scalar: Tensor | None,
    channels: tuple[int, int, int, int],
    size: tuple[int, int] | None,
) -> tuple[int, int, int]:
    """Validate the four sources against ``channels = (C1, C2, C3, C4)``; return ``(N, H, W)``."""
    c1, c2, c3, c4 = channels
    given = dict(zip(_SOURCES, (image, row, col, scalar), strict=True))
    dims = {"image": 4, "row": 3, "col": 3, "scalar": 2}
    layout = {"image": "(N, C1, H, W)", "row": "(N, C2, H)", "col": "(N, C3, W)", "scalar": "(N, C4)"}
    for i, (name, x) in enumerate(given.items()):
        if x is None:
            if channels[i]:
                raise ValueError(
                    f"Expected `{name}` of shape {layout[name]} with {channels[i]} channels because "
                    f"in_channels[{i}] = {channels[i]}. Got None."
                )
            continue
        if not isinstance(x, Tensor):
            raise TypeError(f"Expected `{name}` to be a torch.Tensor or None. Got {type(x).__name__}.")
        if not channels[i]:
            raise ValueError(
                f"Expected `{name}` to be None because in_channels[{i}] = 0. "
                f"Got a tensor of shape {tuple(x.shape)}."
            )
        if x.dim() != dims[name]:
            raise ValueError(
                f"Expected `{name}` of shape {layout[name]} ({dims[name]} dims). Got shape {tuple(x.shape)}."
            )
        if x.shape[1] != channels[i]:
            raise ValueError(
                f"Expected `{name}` of shape {layout[name]} with {layout[name][4:6]}={channels[i]}. "
                f"Got shape {tuple(x.shape)}."
            )
    present = [(n, x) for n, x in given.items() if x is not None]
    if not present:
        raise ValueError(
            "Expected at least one of `image`, `row`, `col`, `scalar`. Got none (all channels 0)."
        )
    n = present[0][1].shape[0]
    for name, x in present:
        if x.shape[0] != n:
            raise ValueError(
                f"Expected `{name}` to have batch size N={n} (from `{present[0][0]}`). "
                f"Got shape {tuple(x.shape)}."
            )
    h = w = None
    if image is not None:
        h, w = image.shape[2], image.shape[3]
    if size is not None:
        sh, sw = _pair(size, "size", 1)
        if h is not None and (sh, sw) != (h, w):
            raise ValueError(f"Expected `size` to equal the image's (H, W) = {(h, w)}. Got {tuple(size)}.")
        h, w = sh, sw
    if row is not None:
        if h is not None and row.shape[2] != h:
            raise ValueError(f"Expected `row` of shape (N, C2, H) with H={h}. Got shape {tuple(row.shape)}.")
        h = row.shape[2]
    if col is not None:
        if w is not None and col.shape[2] != w:
            raise ValueError(f"Expected `col` of shape (N, C3, W) with W={w}. Got shape {tuple(col.shape)}.")
        w = col.shape[2]
    if h is None or w is None:
        raise ValueError(
            "Expected `size=(H, W)` when there is no image and the row/col sources do not give H and W. "
            f"Got size={size!r}."
        )
    return n, h, w


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
    for name, x in zip(_SOURCES, (image, row, col, scalar), strict=True):
        if x is not None and not isinstance(x, Tensor):
            raise TypeError(f"Expected `{name}` to be a torch.Tensor or None. Got {type(x).__name__}.")
    channels = tuple(
        0 if x is None else int(x.shape[1]) if x.dim() > 1 else 1 for x in (image, row, col, scalar)
    )
    n, h, w = _check_sources(image, row, col, scalar, channels, size)  # type: ignore[arg-type]
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


def _pad_mode(padding_mode: str) -> str:
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"Expected `padding_mode` to be one of {PADDING_MODES}. Got {padding_mode!r}.")
    return "constant" if padding_mode == "zeros" else padding_mode


def _conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: tuple[int, int],
    padding: str | int | tuple[int, int],
    pad4: tuple[int, int, int, int],
    dilation: tuple[int, int],
    groups: int,
    padding_mode: str,
) -> Tensor:
    """``conv2d`` exactly as ``nn.Conv2d`` runs it for each padding mode."""
    if padding_mode in ("zeros", "constant"):
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    t, b, le, r = pad4
    return F.conv2d(F.pad(x, (le, r, t, b), mode=padding_mode), weight, bias, stride, 0, dilation, groups)


def tile_concat_conv2d(
    image: Tensor | None,
    row: Tensor | None,
    col: Tensor | None,
    scalar: Tensor | None,
    weight: Tensor,
    bias: Tensor | None = None,
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
    stride2, dilation2 = _pair(stride, "stride", 1), _pair(dilation, "dilation", 1)
    kernel = (weight.shape[2], weight.shape[3])
    pad4 = _padding4(padding, kernel, stride2, dilation2)
    mode = _pad_mode(padding_mode)
    if in_channels is not None:
        _check_sources(image, row, col, scalar, tuple(in_channels), size)
    x = tile_and_concatenate(image, row, col, scalar, size)
    c1 = 0 if image is None else image.shape[1]
    if groups == 1:
        if weight.shape[1] != x.shape[1]:
            raise ValueError(
                f"Expected `weight` of shape (C_out, {x.shape[1]}, kh, kw) for the given sources. "
                f"Got {tuple(weight.shape)}."
            )
        return _conv2d(x, weight, bias, stride2, padding, pad4, dilation2, 1, mode)
    cg = c1 // groups
    out = _conv2d(x[:, :c1], weight[:, :cg], bias, stride2, padding, pad4, dilation2, groups, mode)
    if x.shape[1] > c1:
        out = out + _conv2d(x[:, c1:], weight[:, cg:], None, stride2, padding, pad4, dilation2, 1, mode)
    return out


def _class_masks(
    size: int, size_out: int, k: int, s: int, d: int, p0: int
) -> tuple[Tensor, list[int], int, int]:
    """Which taps of one axis fall inside the input, per border class of output position.

    Returns ``(masks (n_classes, k), class_of, lo, hi)``: class 0 is "all taps inside" (the
    interior ``[lo, hi)``); ``class_of[t]`` is the class of output position ``t`` for ``t`` outside
    ``[lo, hi)`` (0 inside).
    """
    lo = min(-(-p0 // s), size_out)
    hi = min(max((size - 1 - (k - 1) * d + p0) // s + 1, lo), size_out)
    masks = [(1,) * k]
    class_of = [0] * size_out
    for t in [*range(lo), *range(hi, size_out)]:
        m = tuple(int(0 <= t * s + j * d - p0 < size) for j in range(k))
        if m not in masks:
            masks.append(m)
        class_of[t] = masks.index(m)
    return torch.tensor(masks, dtype=torch.float64), class_of, lo, hi


def _unfold_1d(x: Tensor, k: int, s: int, d: int, p0: int, p1: int, mode: str) -> Tensor:
    """The taps of a 1-d convolution, im2col style: ``x (N, C, L)`` -> ``(N, C k, L_out)``."""
    xp = F.pad(x, (p0, p1), mode=mode) if p0 or p1 else x
    u = xp.unfold(2, d * (k - 1) + 1, s)  # (N, C, L_out, d (k - 1) + 1)
    if d > 1:
        u = u[..., ::d]
    n, c, length = u.shape[0], u.shape[1], u.shape[2]
    return u.permute(0, 1, 3, 2).reshape(n, c * k, length)


def _side_1d(
    x: Tensor, kernels: Tensor, k: int, s: int, d: int, p0: int, p1: int, mode: str, n_classes: int
) -> Tensor:
    """Conv1d: ``x (N, C, L)``, ``kernels (n_classes * C_out, C, k)`` -> ``(N, n_classes, C_out, L_out)``."""
    # As an unfold + matmul rather than F.conv1d: these are tiny convs (L ~ 10-1000, C ~ 5), where
    # conv1d's per-call set-up (forward and backward) dominated; measured (one thread, N=8, C=5,
    # L=64, 16 out, k=3, forward + backward) ~190 us against ~300 us. Same sums up to float rounding.
    u = _unfold_1d(x, k, s, d, p0, p1, mode)
    # (C_out, C k) @ (N, C k, L_out): the result is contiguous (N, C_out, L_out), which the broadcast
    # add_ into the conv output needs to stay fast (a strided column vector made it ~2.5x slower).
    y = kernels.reshape(kernels.shape[0], -1) @ u
    return y.view(u.shape[0], n_classes, -1, u.shape[2])


class _CompactSideTerms(torch.autograd.Function):
    """The compact side terms added into the conv output in place, as one autograd node.

    ``out += bias + W_sc s`` (per channel) ``+ W_row u_row`` (per row) ``+ W_col u_col`` (per
    column). Written out by hand because the arithmetic is tiny but, as ~15 separate ops per layer
    (reshape, matmul, view, select, add, expand, their backward nodes), their bookkeeping was most
    of what msconv cost over a plain conv in the UNet's training step. ``u_row (N, C2 kh, H_out)`` and
    ``u_col (N, C3 kw, W_out)`` are the unfolded taps (:func:`_unfold_1d`), so a gradient to the
    row/col inputs flows back through the ordinary unfold ops. The backward is built from
    differentiable ops, so double backward works too.
    """

    @staticmethod
    def forward(ctx, out, u_row, u_col, scalar, row_weight, col_weight, scalar_weight, bias):
        # bias and scalar term (N, C_out) ride on the row vector (N, C_out, H_out), else on the
        # column vector; few, fused ops (addmm, baddbmm): at the UNet's sizes the per-op overhead
        # is comparable to the arithmetic
        if scalar is None:
            const = None if bias is None else bias[None, :]
        elif bias is None:
            const = scalar @ scalar_weight.t()
        else:
            const = torch.addmm(bias, scalar, scalar_weight.t())
        rows = cols = None
        if u_row is not None:
            rows = _matmul_add(row_weight, u_row, const)
            const = None
        if u_col is not None:
            cols = _matmul_add(col_weight, u_col, const)
            const = None
        # Each broadcast add_ is one memory-bound pass over `out` (batch 8, 32 x 256 x 256, one
        # thread: ~11 ms); out.view(N C_out, H, W).baddbmm_([rows, 1], [1; cols]) did both in ~21 ms,
        # no faster, and its backward was several times slower than the two sums below.
        if rows is not None:
            out.add_(rows[:, :, :, None].to(out.dtype))
        if cols is not None:
            out.add_(cols[:, :, None, :].to(out.dtype))
        if const is not None:
            out.add_(const[:, :, None, None].to(out.dtype))
        ctx.mark_dirty(out)
        ctx.save_for_backward(u_row, u_col, scalar, row_weight, col_weight, scalar_weight)
        ctx.dtype = next(w.dtype for w in (row_weight, col_weight, scalar_weight, bias) if w is not None)
        return out

    @staticmethod
    def backward(ctx, grad):
        u_row, u_col, scalar, row_weight, col_weight, scalar_weight = ctx.saved_tensors
        need = ctx.needs_input_grad  # out, u_row, u_col, scalar, row_w, col_w, scalar_w, bias
        dtype = ctx.dtype
        acc = None if grad.dtype == dtype else dtype  # accumulate in the parameters' dtype
        # sums over W (per row) and over H (per column)
        g_rows = None if u_row is None else grad.sum(3, dtype=acc)
        g_cols = None if u_col is None else grad.sum(2, dtype=acc)
        if g_rows is not None:
            g_const = g_rows.sum(2)
        elif g_cols is not None:
            g_const = g_cols.sum(2)
        else:
            g_const = grad.sum((2, 3), dtype=acc)
        out = [grad, None, None, None, None, None, None, None]
        for i, u, w, g in ((1, u_row, row_weight, g_rows), (2, u_col, col_weight, g_cols)):
            if u is None:
                continue
            if need[i]:
                out[i] = (w.reshape(w.shape[0], -1).t() @ g).to(u.dtype)
            if need[i + 3]:
                # sum_n g[n] @ u[n]^T
                out[i + 3] = torch.bmm(g, u.to(dtype).transpose(1, 2)).sum(0).view_as(w)
        if scalar is not None:
            if need[3]:
                out[3] = (g_const @ scalar_weight.to(dtype)).to(scalar.dtype)
            if need[6]:
                out[6] = g_const.t() @ scalar.to(dtype)
        if need[7]:
            out[7] = g_const.sum(0)
        return tuple(out)


def _matmul_add(weight: Tensor, u: Tensor, const: Tensor | None) -> Tensor:
    """``weight (C_out, C, k) . u (N, C k, L) [+ const (N or 1, C_out)]`` -> ``(N, C_out, L)``."""
    w = weight.reshape(weight.shape[0], -1)
    if const is None:
        return w @ u
    n = u.shape[0]
    return torch.baddbmm(const[:, :, None].expand(n, -1, u.shape[2]), w.expand(n, -1, -1), u)


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
        padding_mode: as ``nn.Conv2d``.
        groups: splits the image path only; the side sources stay dense.
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
    weights = (weight, row_weight, col_weight, scalar_weight)
    kernel4 = next((w.shape[2:] for w in weights if w is not None and w.dim() == 4), None)
    if kernel4 is not None:
        kh, kw = int(kernel4[0]), int(kernel4[1])
    elif kernel_size is not None:
        kh, kw = _pair(kernel_size, "kernel_size", 1)
    else:
        kh = row_weight.shape[2] if row_weight is not None else 1
        kw = col_weight.shape[2] if col_weight is not None else 1
    c_out = next(w.shape[0] for w in weights if w is not None)
    channels = (
        0 if weight is None else weight.shape[1] * groups,
        0 if row_weight is None else row_weight.shape[1],
        0 if col_weight is None else col_weight.shape[1],
        0 if scalar_weight is None else scalar_weight.shape[1],
    )
    n, h, w = _check_sources(image, row, col, scalar, channels, size)
    _check_placement(
        {"image": image, "row": row, "col": col, "scalar": scalar},
        {
            "weight": weight,
            "row_weight": row_weight,
            "col_weight": col_weight,
            "scalar_weight": scalar_weight,
            "bias": bias,
        },
    )
    (sh, sw), (dh, dw) = _pair(stride, "stride", 1), _pair(dilation, "dilation", 1)
    pt, pb, pl, pr = _padding4(padding, (kh, kw), (sh, sw), (dh, dw))
    mode = _pad_mode(padding_mode)
    h_out = _out_size(h, kh, sh, dh, pt, pb, "H")
    w_out = _out_size(w, kw, sw, dw, pl, pr, "W")

    if image is not None:
        out = _conv2d(image, weight, None, (sh, sw), padding, (pt, pb, pl, pr), (dh, dw), groups, mode)
    else:
        ref = next(x for x in (row, col, scalar) if x is not None)
        dtype = (
            torch.get_autocast_dtype(ref.device.type)
            if torch.is_autocast_enabled(ref.device.type)
            else ref.dtype
        )
        out = torch.zeros(n, c_out, h_out, w_out, dtype=dtype, device=ref.device)

    zeros_mode = mode == "constant"
    row_full = row is not None and row_weight.dim() == 4
    col_full = col is not None and col_weight.dim() == 4
    sc_full = scalar is not None and scalar_weight.dim() == 4
    # Column classes (which kernel columns are inside, per output column) matter for the row and
    # scalar terms under zero padding; row classes for the column and scalar terms.
    if zeros_mode and (row_full or sc_full):
        mc, cls_x, c0, c1 = _class_masks(w, w_out, kw, sw, dw, pl)
    else:
        mc, cls_x, c0, c1 = None, None, 0, w_out
    if zeros_mode and (col_full or sc_full):
        mr, cls_y, r0, r1 = _class_masks(h, h_out, kh, sh, dh, pt)
    else:
        mr, cls_y, r0, r1 = None, None, 0, h_out
    if (row_full or sc_full) and mc is None:
        mc = torch.ones(1, kw, dtype=torch.float64)
    if (col_full or sc_full) and mr is None:
        mr = torch.ones(1, kh, dtype=torch.float64)

    if not (row_full or col_full or sc_full):
        # compact side kernels: the interior formula everywhere, in one fused in-place node
        if row is None and col is None and scalar is None and bias is None:
            return out
        return _CompactSideTerms.apply(
            out,
            None if row is None else _unfold_1d(row, kh, sh, dh, pt, pb, mode),
            None if col is None else _unfold_1d(col, kw, sw, dw, pl, pr, mode),
            scalar,
            None if row is None else row_weight,
            None if col is None else col_weight,
            None if scalar is None else scalar_weight,
            bias,
        )

    # Full side kernels: row term a (N, ncc, C_out, H_out), col term b (N, nrc, C_out, W_out),
    # scalar term t (N, nrc, ncc, C_out), one slice per border class (class 0: the interior).
    a = b = t = None
    if row is not None:
        if row_full:
            kern = torch.einsum("oihw,cw->coih", row_weight, mc.to(row_weight))
            a = _side_1d(row, kern.reshape(-1, channels[1], kh), kh, sh, dh, pt, pb, mode, mc.shape[0])
        else:
            a = _side_1d(row, row_weight, kh, sh, dh, pt, pb, mode, 1)
    if col is not None:
        if col_full:
            kern = torch.einsum("oihw,ch->coiw", col_weight, mr.to(col_weight))
            b = _side_1d(col, kern.reshape(-1, channels[2], kw), kw, sw, dw, pl, pr, mode, mr.shape[0])
        else:
            b = _side_1d(col, col_weight, kw, sw, dw, pl, pr, mode, 1)
    if scalar is not None:
        if sc_full:
            table = torch.einsum(
                "oihw,ah,bw->aboi", scalar_weight, mr.to(scalar_weight), mc.to(scalar_weight)
            )
            t = (scalar @ table.flatten(0, 2).transpose(0, 1)).view(n, mr.shape[0], mc.shape[0], c_out)
        else:
            t = (scalar @ scalar_weight.transpose(0, 1)).view(n, 1, 1, c_out)

    # Interior terms, added into the conv output in place (no full-size temporary). In place on
    # `out` itself, not on a view of it: autograd then passes the output gradient through without a
    # copy. Bias and the scalar term ride on the row vector (N, C_out, H_out) or the column vector.
    const = None
    if bias is not None:
        const = bias.expand(n, c_out)
    if t is not None:
        const = t[:, 0, 0] if const is None else const + t[:, 0, 0]
    rows = None if a is None else a[:, 0] if const is None else a[:, 0] + const[:, :, None]
    cols = (
        None if b is None else b[:, 0] if const is None or rows is not None else b[:, 0] + const[:, :, None]
    )
    # Each broadcast add_ is one memory-bound pass (see _CompactSideTerms).
    if rows is not None:
        out.add_(rows[:, :, :, None].to(out.dtype))
    if cols is not None:
        out.add_(cols[:, :, None, :].to(out.dtype))
    if rows is None and cols is None and const is not None:
        out.add_(const[:, :, None, None].to(out.dtype))

    if cls_x is None and cls_y is None:
        return out

    # Border strips (zero padding, full side kernels): add (true - interior) there only, with
    # index_add_ on `out` itself (cheap backward: the source's gradient is an index_select).
    def delta(ys: list[int], xs: list[int]) -> Tensor:
        yi = torch.tensor(ys, dtype=torch.long, device=out.device)
        xi = torch.tensor(xs, dtype=torch.long, device=out.device)
        cx = torch.tensor([cls_x[x] for x in xs] if cls_x is not None else [0] * len(xs), device=out.device)
        cy = torch.tensor([cls_y[y] for y in ys] if cls_y is not None else [0] * len(ys), device=out.device)
        d = out.new_zeros(n, c_out, len(ys), len(xs))
        if row_full:
            ay = a.index_select(3, yi)
            d = d + ay[:, cx].permute(0, 2, 3, 1) - ay[:, 0, :, :, None]
        if col_full:
            bx = b.index_select(3, xi)
            d = d + bx[:, cy].permute(0, 2, 1, 3) - bx[:, 0, :, None, :]
        if sc_full:
            d = d + t[:, cy][:, :, cx].permute(0, 3, 1, 2) - t[:, 0, 0, :, None, None]
        return d.to(out.dtype)

    border_y = [*range(r0), *range(r1, h_out)]
    border_x = [*range(c0), *range(c1, w_out)]
    if border_y:
        out.index_add_(2, torch.tensor(border_y, device=out.device), delta(border_y, list(range(w_out))))
    if border_x and r1 > r0:
        d = F.pad(delta(list(range(r0, r1)), border_x), (0, 0, r0, h_out - r1))
        out.index_add_(3, torch.tensor(border_x, device=out.device), d)
    return out


def _conv_config(
    in_channels: tuple[int, int, int, int],
    out_channels: int,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int],
    padding: str | int | tuple[int, int],
    dilation: int | tuple[int, int],
    groups: int,
    padding_mode: str,
) -> dict:
    """Validate the shared constructor arguments of MSConv2d and TileConcatConv2d."""
    if (
        not isinstance(in_channels, tuple | list)
        or len(in_channels) != 4
        or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in in_channels)
    ):
        raise ValueError(
            f"Expected `in_channels` to be four non-negative ints (C1, C2, C3, C4). Got {in_channels!r}."
        )
    if sum(in_channels) == 0:
        raise ValueError(f"Expected at least one input channel in `in_channels`. Got {tuple(in_channels)}.")
    if not isinstance(out_channels, int) or isinstance(out_channels, bool) or out_channels < 1:
        raise ValueError(f"Expected `out_channels` to be a positive int. Got {out_channels!r}.")
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"Expected `groups` to be a positive int. Got {groups!r}.")
    if groups > 1 and (in_channels[0] == 0 or in_channels[0] % groups or out_channels % groups):
        raise ValueError(
            "Expected `groups` to divide both the image channels in_channels[0] (> 0) and `out_channels`. "
            f"Got groups={groups}, in_channels[0]={in_channels[0]}, out_channels={out_channels}."
        )
    kernel = _pair(kernel_size, "kernel_size", 1)
    stride2 = _pair(stride, "stride", 1)
    dilation2 = _pair(dilation, "dilation", 1)
    _pad_mode(padding_mode)
    pad4 = _padding4(padding, kernel, stride2, dilation2)
    if not isinstance(padding, str):
        padding = _pair(padding, "padding", 0)
    return {
        "in_channels": tuple(in_channels),
        "out_channels": out_channels,
        "kernel_size": kernel,
        "stride": stride2,
        "padding": padding,
        "dilation": dilation2,
        "groups": groups,
        "padding_mode": padding_mode,
        "pad4": pad4,
    }


def _extra_repr(module) -> str:
    """``nn.Conv2d``'s ``extra_repr`` with the channel tuple."""
    s = f"{module.in_channels}, {module.out_channels}, kernel_size={module.kernel_size}"
    s += f", stride={module.stride}"
    if module.padding != (0, 0):
        s += f", padding={module.padding}"
    if module.dilation != (1, 1):
        s += f", dilation={module.dilation}"
    if module.groups != 1:
        s += f", groups={module.groups}"
    if module.bias is None:
        s += ", bias=False"
    if module.padding_mode != "zeros":
        s += f", padding_mode={module.padding_mode}"
    return s
