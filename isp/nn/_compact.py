"""Compact side kernels: the interior formula of the multi-source convolution, fused.

With compact side weights ``row_weight (C_out, C2, kh)``, ``col_weight (C_out, C3, kw)`` and
``scalar_weight (C_out, C4)`` the side sources contribute, at every output pixel ``(y, x)``,

    out[n, :, y, x] += bias + W_sc s[n] + (W_row * r[n])[y] + (W_col * c[n])[x]

(``*`` a 1-d convolution along the source's own axis, padded with the convolution's padding mode).
This module adds those terms into the image convolution's output in place, as one autograd node,
in one memory pass over the output (out of place under ``torch.compile``, which fuses the adds
with the ops that follow). The derivation is in :mod:`isp.nn.functional`'s docstring.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from isp._memory import memory_tuned
from isp.nn._validate import Geometry

__all__ = [
    "add_compact_side_terms",
    "blocked_conv_with_side_terms",
    "channels_like",
    "folded_side_vectors",
    "scalar_constant",
    "unfold_1d",
    "use_blocked_conv",
]

#: Image channels up to which a CPU forward without autograd runs the conv in blocks of rows
#: (:func:`blocked_conv_with_side_terms`).
BLOCKED_MAX_CHANNELS = 8
#: Output bytes per block: small enough to stay in cache for the side terms' adds.
BLOCK_BYTES = 1 << 20


def unfold_1d(x: Tensor, k: int, s: int, d: int, p0: int, p1: int, mode: str) -> Tensor:
    """The taps of a 1-d convolution, im2col style: ``x (N, C, L)`` -> ``(N, C k, L_out)``."""
    xp = F.pad(x, (p0, p1), mode=mode) if p0 or p1 else x
    u = xp.unfold(2, d * (k - 1) + 1, s)  # (N, C, L_out, d (k - 1) + 1)
    if d > 1:
        u = u[..., ::d]
    n, c, length = u.shape[0], u.shape[1], u.shape[2]
    return u.permute(0, 1, 3, 2).reshape(n, c * k, length)


def _matmul_add(weight: Tensor, u: Tensor, const: Tensor | None) -> Tensor:
    """``weight (C_out, C, k) . u (N, C k, L) [+ const (N or 1, C_out)]`` -> ``(N, C_out, L)``."""
    w = weight.reshape(weight.shape[0], -1)
    if const is None:
        return w @ u
    n = u.shape[0]
    return torch.baddbmm(const[:, :, None].expand(n, -1, u.shape[2]), w.expand(n, -1, -1), u)


def add_rows_cols_(out: Tensor, rows: Tensor | None, cols: Tensor | None) -> Tensor:
    """``out (N, C, H, W) += rows (N, C, H)[..., None] + cols (N, C, W)[..., None, :]``, in place.

    Both in one memory pass when ``out`` is contiguous: per plane, ``out += [rows, 1] @ [1; cols]``
    is a rank-2 ``baddbmm_``. Measured (one thread, batch 8, interleaved medians, the machine
    busy): after a 4 -> 32 conv at 256², two broadcast ``add_`` cost the conv + 23%, the rank-2
    ``baddbmm_`` + 12%; after 32 -> 32 at 128², + 11% and + 6%. On the adds alone (batch 8):
    5.1 -> 3.0 ms at 32 x 256², 0.62 -> 0.48 ms at 64 x 64², equal at 256 x 16².
    """
    dtype = out.dtype
    # below ~32 x 32 planes the batched rank-2 product costs more than it saves (measured)
    if rows is not None and cols is not None and out.is_contiguous() and out.shape[2] * out.shape[3] >= 1024:
        n, c, h, w = out.shape
        ones = out.new_ones(1, 1, 1).expand(n * c, h, 1)
        left = torch.cat([rows.to(dtype).reshape(n * c, h, 1), ones], 2)
        right = torch.cat([ones[:, :1].expand(n * c, 1, w), cols.to(dtype).reshape(n * c, 1, w)], 1)
        out.view(n * c, h, w).baddbmm_(left, right)
        return out
    if rows is not None:
        out.add_(channels_like(out, rows)[:, :, :, None])
    if cols is not None:
        out.add_(channels_like(out, cols)[:, :, None, :])
    return out


def channels_like(out: Tensor, v: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """``v (N, C, L)`` in ``dtype`` (default ``out``'s), laid out in memory as ``out`` runs.

    A channels-last ``out`` runs its channels innermost: broadcast from a channels-first vector,
    each add gathers one element per step instead of streaming (4.5x the time of the same add on
    float32 at 32 x 512², 10x on bfloat16; ``channels_last`` is how predict runs its tiles).
    Otherwise ``v`` is made contiguous: a channels-innermost column vector made the compiled
    epilogue gather along the rows of a contiguous float32 output (2.1x aten's ``leaky_relu_``).
    """
    v = v.to(out.dtype if dtype is None else dtype)
    if out.dim() == 4 and out.stride(1) == 1 and out.shape[1] > 1:
        return v.transpose(1, 2).contiguous().transpose(1, 2)
    return v.contiguous()


def scalar_constant(
    scalar: Tensor | None, scalar_weight: Tensor | None, bias: Tensor | None
) -> Tensor | None:
    """``bias + scalar @ scalar_weight^T``: ``(N or 1, C_out)`` or ``None``."""
    if scalar is None:
        return None if bias is None else bias[None, :]
    if bias is None:
        return scalar @ scalar_weight.t()
    return torch.addmm(bias, scalar, scalar_weight.t())


def _bf16_channels_last(out: Tensor) -> bool:
    """A CPU bf16 output in the channels-last layout (predict's tiles on a CPU with AMX)."""
    return (
        out.device.type == "cpu"
        and out.dtype == torch.bfloat16
        and out.dim() == 4
        and out.shape[1] > 1
        and out.is_contiguous(memory_format=torch.channels_last)
    )


def _add_by_gemm_(out, u_row, u_col, const, row_weight, col_weight) -> Tensor:
    """``out += rows + cols`` as one accumulating batched matrix product (channels-last, bf16).

    ``out`` viewed ``(N H, W, C)`` gets, for every sample ``n`` and row ``h``,
    ``[1 | U_col[n]^T] (W, 1 + C3 kw) @ [rows[n, :, h]; W_col^T] (1 + C3 kw, C)``: oneDNN runs it
    on the AMX unit, reading and writing the output once and rounding once, where aten's two bf16
    broadcast adds convert element by element (one thread: 32 x 512², 1.8 ms against 5.0; batch 8
    x 32 x 128², 1.0 against 3.1).
    """
    n, c, h, w = out.shape
    dtype = out.dtype
    rows = None
    if u_row is not None:
        rows = _matmul_add(row_weight, u_row, const)  # (N, C, H), the constant folded in
    elif const is not None:
        rows = const.expand(n, c)[:, :, None].expand(n, c, h)
    left, right = [], []  # (N, W, k) and (N, H, k, C) factors
    if rows is not None:
        left.append(out.new_ones(1, 1, 1).expand(n, w, 1))
        right.append(rows.to(dtype).transpose(1, 2)[:, :, None, :])
    if u_col is not None:
        left.append(u_col.to(dtype).transpose(1, 2))
        right.append(col_weight.reshape(c, -1).t().to(dtype).expand(n, h, -1, -1))
    a = left[0] if len(left) == 1 else torch.cat(left, 2)
    b = right[0] if len(right) == 1 else torch.cat(right, 2)
    k = a.shape[2]
    if n == 1 or 4 * k > c:  # per sample, the left factor broadcast over the rows, not copied
        for i in range(n):
            out[i].permute(1, 2, 0).baddbmm_(a[i].expand(h, w, k), b[i].expand(h, k, c))
    else:  # one call (1.0 ms against 1.4 for 8 x 32 x 128²), the left factor copied: k / c of out
        view = out.permute(0, 2, 3, 1).view(n * h, w, c)  # channels-last: a view
        a = a[:, None].expand(n, h, w, k).reshape(n * h, w, k)
        view.baddbmm_(a, b.expand(n, h, k, c).reshape(n * h, k, c))
    return out


def _sums_by_gemm(
    grad: Tensor, rows: bool, cols: bool, dtype: torch.dtype
) -> tuple[Tensor | None, Tensor | None]:
    """``grad.sum(3)`` and ``grad.sum(2)`` of a CPU bf16 ``grad``, as products with ones.

    oneDNN runs them on the AMX unit, accumulating in float32 and rounding each sum once to bf16
    (relative error ~3e-3, as autocast's own bf16 products); aten's bf16 reductions convert element
    by element. One thread, batch 8 x 32 x 96²: channels-last 0.7 ms against 4.9 (32 x 512²: 3.1
    against 70.5); contiguous 1.0 against 1.9. Returned in ``dtype``: ``(N, C, H)`` and
    ``(N, C, W)`` (or ``None``).
    """
    n, c, h, w = grad.shape
    g_rows = g_cols = None
    if _bf16_channels_last(grad):
        view = grad.permute(0, 2, 3, 1)  # (N, H, W, C), contiguous
        if rows:
            ones = grad.new_ones(1, 1, 1).expand(n * h, 1, w)
            g_rows = torch.bmm(ones, view.reshape(n * h, w, c)).view(n, h, c).transpose(1, 2)
        if cols:
            ones = grad.new_ones(1, 1, 1).expand(n, 1, h)
            g_cols = torch.bmm(ones, view.reshape(n, h, w * c)).view(n, w, c).transpose(1, 2)
    else:
        grad = grad.contiguous()
        if rows:
            g_rows = (grad.view(n * c * h, w) @ grad.new_ones(w, 1)).view(n, c, h)
        if cols:
            g_cols = torch.bmm(grad.new_ones(1, 1, 1).expand(n * c, 1, h), grad.view(n * c, h, w)).view(
                n, c, w
            )
    return tuple(None if g is None else g.to(dtype) for g in (g_rows, g_cols))


def _add_in_place(out, u_row, u_col, scalar, row_weight, col_weight, scalar_weight, bias) -> Tensor:
    """The side terms into ``out``, in place, without autograd (one pass over ``out``)."""
    # the per-channel constant (N, C_out) rides on the row vector, else on the column vector
    const = scalar_constant(scalar, scalar_weight, bias)
    if (u_row is not None or u_col is not None) and _bf16_channels_last(out):
        return _add_by_gemm_(out, u_row, u_col, const, row_weight, col_weight)
    rows = cols = None
    if u_row is not None:
        rows, const = _matmul_add(row_weight, u_row, const), None
    if u_col is not None:
        cols, const = _matmul_add(col_weight, u_col, const), None
    if const is not None:
        out.add_(const[:, :, None, None].to(out.dtype))
    return add_rows_cols_(out, rows, cols)


def _add_functional(out, u_row, u_col, scalar, row_weight, col_weight, scalar_weight, bias) -> Tensor:
    """The same sum out of place, for graph capture.

    The compiler fuses the broadcast adds into one pass, with the pointwise ops that follow. The
    per-channel constant (bias + scalar term) rides in the row (else the column) term's matrix
    product as extra taps: computed on its own, Inductor inlined that small product into the fused
    pass and recomputed it at every pixel (a 4 -> 16 layer at 256² took 3.1x the blind conv +
    LeakyReLU instead of 1.0x).
    """
    dtype = out.dtype
    if u_row is None and u_col is None:  # scalar and bias only
        constant = scalar_constant(scalar, scalar_weight, bias)
        return out if constant is None else out + constant[:, :, None, None].to(dtype)
    rows, cols = folded_side_vectors(u_row, u_col, scalar, row_weight, col_weight, scalar_weight, bias)
    if rows is not None:
        out = out + rows[:, :, :, None].to(dtype)
    if cols is not None:
        out = out + cols[:, :, None, :].to(dtype)
    return out


def folded_side_vectors(
    u_row, u_col, scalar, row_weight, col_weight, scalar_weight, bias
) -> tuple[Tensor | None, Tensor | None]:
    """The row and column terms ``(N, C_out, H_out)``, ``(N, C_out, W_out)``, channels innermost in memory.

    The per-channel constant (bias + scalar term) rides in the row (else the column) term's matrix
    product as extra taps; at least one of ``u_row``, ``u_col`` is given.
    """
    const = (scalar, scalar_weight, bias)
    if u_row is None:
        return None, _fold_constant(u_col, col_weight.reshape(col_weight.shape[0], -1), *const)
    rows = _fold_constant(u_row, row_weight.reshape(row_weight.shape[0], -1), *const)
    cols = (
        None if u_col is None else _channels_last_matmul(col_weight.reshape(col_weight.shape[0], -1), u_col)
    )
    return rows, cols


def _channels_last_matmul(weight: Tensor, taps: Tensor) -> Tensor:
    """``weight (C_out, K) @ taps (N, K, L)`` -> ``(N, C_out, L)``, computed as ``(N, L, C_out)``.

    The compiler lays convolution outputs out channels-last; its fused add then reads the term
    along the channels.
    """
    return (taps.transpose(1, 2) @ weight.t()).transpose(1, 2)


def _fold_constant(taps, weight, scalar, scalar_weight, bias) -> Tensor:
    """``weight @ taps`` plus ``scalar @ scalar_weight^T + bias``, as one matrix product with extra taps."""
    n, length = taps.shape[0], taps.shape[2]
    extra_taps, extra_weight = [taps], [weight]
    if scalar is not None:
        extra_taps.append(scalar[:, :, None].to(taps.dtype).expand(n, scalar.shape[1], length))
        extra_weight.append(scalar_weight.to(weight.dtype))
    if bias is not None:
        extra_taps.append(taps.new_ones(1, 1, 1).expand(n, 1, length))
        extra_weight.append(bias[:, None].to(weight.dtype))
    if len(extra_taps) > 1:
        taps, weight = torch.cat(extra_taps, 1), torch.cat(extra_weight, 1)
    return _channels_last_matmul(weight, taps)


class _CompactSideTerms(torch.autograd.Function):
    """The compact side terms added into the conv output in place, as one autograd node.

    Written by hand because, as ~15 separate ops per layer (reshape, matmul, view, add, their
    backward nodes), their bookkeeping was most of what msconv cost over a plain conv in the UNet's
    training step (docs/benchmarks.md, "Training step"). ``u_row (N, C2 kh, H_out)`` and
    ``u_col (N, C3 kw, W_out)`` are the unfolded taps (:func:`unfold_1d`), so the gradient to the
    row/col sources flows back through ordinary unfold ops. The backward is built from
    differentiable ops, so double backward works too.
    """

    @staticmethod
    def forward(ctx, out, u_row, u_col, scalar, row_weight, col_weight, scalar_weight, bias):
        _add_in_place(out, u_row, u_col, scalar, row_weight, col_weight, scalar_weight, bias)
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
        if grad.device.type == "cpu" and grad.dtype == torch.bfloat16 and grad.dim() == 4:
            g_rows, g_cols = _sums_by_gemm(grad, u_row is not None, u_col is not None, dtype)
        else:
            g_rows = None if u_row is None else grad.sum(3, dtype=acc)  # (N, C_out, H_out)
            g_cols = None if u_col is None else grad.sum(2, dtype=acc)  # (N, C_out, W_out)
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
                out[i + 3] = torch.bmm(g, u.to(dtype).transpose(1, 2)).sum(0).view_as(w)  # sum_n g u^T
        if scalar is not None:
            if need[3]:
                out[3] = (g_const @ scalar_weight.to(dtype)).to(scalar.dtype)
            if need[6]:
                out[6] = g_const.t() @ scalar.to(dtype)
        if need[7]:
            out[7] = g_const.sum(0)
        return tuple(out)


def add_compact_side_terms(
    out: Tensor,
    row: Tensor | None,
    col: Tensor | None,
    scalar: Tensor | None,
    row_weight: Tensor | None,
    col_weight: Tensor | None,
    scalar_weight: Tensor | None,
    bias: Tensor | None,
    geo: Geometry,
) -> Tensor:
    """``out (N, C_out, H_out, W_out)`` plus the compact side terms (module docstring), in place.

    ``out`` is the image convolution's output (or zeros without an image); returns it.
    """
    if row is None and col is None and scalar is None and bias is None:
        return out
    kh, kw = geo.kernel
    (sh, sw), (dh, dw), (pt, pb, pl, pr) = geo.stride, geo.dilation, geo.pad
    args = (
        out,
        None if row is None else unfold_1d(row, kh, sh, dh, pt, pb, geo.mode),
        None if col is None else unfold_1d(col, kw, sw, dw, pl, pr, geo.mode),
        scalar,
        None if row is None else row_weight,
        None if col is None else col_weight,
        None if scalar is None else scalar_weight,
        bias,
    )
    if torch.compiler.is_compiling():  # dynamo cannot trace mark_dirty: give it plain ops to fuse
        return _add_functional(*args)
    if not _needs_grad(args):
        return _add_in_place(*args)  # no autograd node needed (inference): skip its set-up
    return _CompactSideTerms.apply(*args)


def _needs_grad(args: tuple) -> bool:
    """Whether autograd must record a call on ``args`` (grad mode on and a tensor needing a gradient)."""
    return torch.is_grad_enabled() and any(isinstance(a, Tensor) and a.requires_grad for a in args)


def use_blocked_conv(image: Tensor, weight: Tensor, groups: int, geo: Geometry, side: tuple) -> bool:
    """Whether :func:`blocked_conv_with_side_terms` serves this call (see its docstring).

    Planes under 64 x 64 were not measured and keep the whole-batch conv. So do processes whose
    memory is tuned (:func:`isp.tune_memory`, as the programs do): there the whole-batch conv no
    longer faults its output in page by page, runs 2-4x as fast, and the blocks lose to it (1.8-2.0x
    with the side terms; ``python benchmarks/blocked_conv.py``).
    """
    return (
        not memory_tuned()
        and image.device.type == "cpu"
        and image.is_contiguous()
        and not torch.is_autocast_enabled("cpu")
        and image.shape[1] <= BLOCKED_MAX_CHANNELS
        and groups == 1
        and geo.stride == (1, 1)
        and geo.size_out[0] * geo.size_out[1] >= 64 * 64
        and not torch.compiler.is_compiling()
        and not _needs_grad((image, weight, *side))
    )


def blocked_conv_with_side_terms(
    image: Tensor,
    weight: Tensor,
    row: Tensor | None,
    col: Tensor | None,
    scalar: Tensor | None,
    row_weight: Tensor | None,
    col_weight: Tensor | None,
    scalar_weight: Tensor | None,
    bias: Tensor | None,
    geo: Geometry,
) -> Tensor:
    """The image convolution and the compact side terms, one sample and one block of rows at a time.

    For an image of few channels (the first layer of a network on packed raw planes) the CPU
    convolution of a whole batch is memory-bound, and so is each extra pass over its output.
    Convolving one sample's block of output rows at a time (from the padded input, with no padding
    of its own) and adding the block's row and column terms while it is still in cache costs less
    than the whole-batch convolution alone. Measured (``python benchmarks/blocked_conv.py``, one
    thread, no autograd): 4 -> 32 at 256², batch 8: the conv alone in blocks 0.73-0.88 of the
    whole-batch conv, with the side terms 0.79-0.96 (conv then one rank-2 pass: 1.13); 5 -> 32 at
    576², batch 1 (the UNet's first layer on an inference tile): 0.81-0.89 and 0.86-0.97 (1.11).
    That is with glibc's default allocation, where the whole-batch conv's fresh output faults in
    page by page; with the memory tuned it beats the blocks (:func:`use_blocked_conv`).
    With 32 or more image channels blocks cost more (1.0-1.8), so :func:`use_blocked_conv` keeps
    them to :data:`BLOCKED_MAX_CHANNELS`. The per-channel constant (bias + scalar term) rides in each
    sample's conv bias. Every output equals the unblocked result to float rounding.
    """
    (kh, kw), (dh, dw), (t, b, le, r) = geo.kernel, geo.dilation, geo.pad
    x = F.pad(image, (le, r, t, b), mode=geo.mode) if t or b or le or r else image
    n, c_out = image.shape[0], weight.shape[0]
    h_out, w_out = geo.size_out
    rows = None if row is None else row_weight.reshape(c_out, -1) @ unfold_1d(row, kh, 1, dh, t, b, geo.mode)
    cols = None if col is None else col_weight.reshape(c_out, -1) @ unfold_1d(col, kw, 1, dw, le, r, geo.mode)
    const = scalar_constant(scalar, scalar_weight, bias)
    out = image.new_empty(n, c_out, h_out, w_out)
    block = max(1, BLOCK_BYTES // (c_out * w_out * out.element_size()))
    halo = dh * (kh - 1)
    for i in range(n):
        sample_bias = None if const is None else const[min(i, const.shape[0] - 1)].to(out.dtype)
        for y0 in range(0, h_out, block):
            y1 = min(h_out, y0 + block)
            o = F.conv2d(x[i : i + 1, :, y0 : y1 + halo], weight, sample_bias, 1, 0, geo.dilation)
            if rows is not None:
                o.add_(rows[i : i + 1, :, y0:y1, None].to(o.dtype))
            if cols is not None:
                o.add_(cols[i : i + 1, :, None, :].to(o.dtype))
            out[i : i + 1, :, y0:y1] = o
    return out
