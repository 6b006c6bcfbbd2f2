"""Full side kernels: the tile-concat convolution exactly, border strips included.

A full side weight ``(C_out, C_i, kh, kw)`` is the side sources' block of a tile-concat weight.
Inside the image every tap sees the constant channel, so the interior formula (summed kernels, as
in :mod:`isp.nn._compact`) holds. Under zero padding an output pixel near the border sees only the
taps that fall inside the image; which ones depends only on the output row (its *row class*) or
column (its *column class*), not on the pixel. So each border class gets its own partial-sum
kernel, and the strips are corrected by ``(true - interior)`` at ``O((H + W) k)`` extra cost,
never ``O(H W k^2)``. The derivation is in :mod:`isp.nn.functional`'s docstring.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from isp.nn._compact import channels_like, unfold_1d
from isp.nn._validate import Geometry

__all__ = ["add_full_side_terms"]


def _class_masks(
    size: int, size_out: int, k: int, s: int, d: int, p0: int
) -> tuple[Tensor, list[int], int, int]:
    """Which taps of one axis fall inside the input, per border class of output position.

    Returns ``(masks (n_classes, k), class_of, lo, hi)``: class 0 is "all taps inside" (the
    interior ``[lo, hi)``); ``class_of[t]`` is the class of output position ``t`` (0 inside).
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


def _conv1d_classes(x: Tensor, kernels: Tensor, axis: tuple[int, ...], mode: str, n_classes: int) -> Tensor:
    """Conv1d: ``x (N, C, L)``, ``kernels (n_classes C_out, C, k)`` -> ``(N, n_classes, C_out, L_out)``."""
    size, size_out, k, s, d, p0, p1 = axis
    # As an unfold + matmul rather than F.conv1d: these are tiny convs (L ~ 10-1000, C ~ 5), where
    # conv1d's per-call set-up (forward and backward) dominated; measured (one thread, N=8, C=5,
    # L=64, 16 out, k=3, forward + backward) ~190 us against ~300 us.
    u = unfold_1d(x, k, s, d, p0, p1, mode)
    y = kernels.reshape(kernels.shape[0], -1) @ u  # contiguous (N, n_classes C_out, L_out)
    return y.view(u.shape[0], n_classes, -1, u.shape[2])


def add_full_side_terms(
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
    """``out (N, C_out, H_out, W_out)`` plus the side terms of full (4-d) side kernels, in place.

    A compact (3-d / 2-d) weight among them contributes its interior formula everywhere.
    """
    n, c_out, h_out, w_out = out.shape
    zeros = geo.mode == "constant"
    row_full = row is not None and row_weight.dim() == 4
    col_full = col is not None and col_weight.dim() == 4
    sc_full = scalar is not None and scalar_weight.dim() == 4
    axis_h, axis_w = geo.axis(0), geo.axis(1)
    # column classes matter to the row and scalar terms, row classes to the column and scalar terms
    if zeros and (row_full or sc_full):
        col_masks, col_class, x0, x1 = _class_masks(*axis_w[:6])
    else:
        col_masks, col_class, x0, x1 = torch.ones(1, axis_w[2], dtype=torch.float64), None, 0, w_out
    if zeros and (col_full or sc_full):
        row_masks, row_class, y0, y1 = _class_masks(*axis_h[:6])
    else:
        row_masks, row_class, y0, y1 = torch.ones(1, axis_h[2], dtype=torch.float64), None, 0, h_out

    # per border class (class 0: the interior): row term a (N, n_col_classes, C_out, H_out),
    # column term b (N, n_row_classes, C_out, W_out), scalar term t (N, n_rc, n_cc, C_out)
    a = b = t = None
    if row is not None:
        if row_full:
            kern = torch.einsum("oihw,cw->coih", row_weight, col_masks.to(row_weight))
            a = _conv1d_classes(row, kern.reshape(-1, *kern.shape[2:]), axis_h, geo.mode, len(col_masks))
        else:
            a = _conv1d_classes(row, row_weight, axis_h, geo.mode, 1)
    if col is not None:
        if col_full:
            kern = torch.einsum("oihw,ch->coiw", col_weight, row_masks.to(col_weight))
            b = _conv1d_classes(col, kern.reshape(-1, *kern.shape[2:]), axis_w, geo.mode, len(row_masks))
        else:
            b = _conv1d_classes(col, col_weight, axis_w, geo.mode, 1)
    if scalar is not None:
        if sc_full:
            table = torch.einsum(
                "oihw,ah,bw->aboi", scalar_weight, row_masks.to(scalar_weight), col_masks.to(scalar_weight)
            )
            t = (scalar @ table.flatten(0, 2).transpose(0, 1)).view(n, len(row_masks), len(col_masks), c_out)
        else:
            t = (scalar @ scalar_weight.transpose(0, 1)).view(n, 1, 1, c_out)

    # Interior terms, added into `out` itself in place (not into a view: autograd then passes the
    # output gradient through without a copy). Bias and scalar ride on the row or column vector.
    const = None if bias is None else bias.expand(n, c_out)
    if t is not None:
        const = t[:, 0, 0] if const is None else const + t[:, 0, 0]
    rows = None if a is None else a[:, 0]
    cols = None if b is None else b[:, 0]
    if const is not None and rows is not None:
        rows, const = rows + const[:, :, None], None
    elif const is not None and cols is not None:
        cols, const = cols + const[:, :, None], None
    if rows is not None:
        out.add_(channels_like(out, rows)[:, :, :, None])
    if cols is not None:
        out.add_(channels_like(out, cols)[:, :, None, :])
    if const is not None:
        out.add_(const[:, :, None, None].to(out.dtype))
    if col_class is None and row_class is None:
        return out

    # Border strips: add (true - interior) there only, with index_add_ on `out` itself (cheap
    # backward: the source's gradient is an index_select).
    def delta(ys: list[int], xs: list[int]) -> Tensor:
        dev = out.device
        yi = torch.tensor(ys, dtype=torch.long, device=dev)
        xi = torch.tensor(xs, dtype=torch.long, device=dev)
        cx = torch.tensor([col_class[x] for x in xs] if col_class is not None else [0] * len(xs), device=dev)
        cy = torch.tensor([row_class[y] for y in ys] if row_class is not None else [0] * len(ys), device=dev)
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

    border_y = [*range(y0), *range(y1, h_out)]
    border_x = [*range(x0), *range(x1, w_out)]
    if border_y:
        out.index_add_(2, torch.tensor(border_y, device=out.device), delta(border_y, list(range(w_out))))
    if border_x and y1 > y0:
        d = F.pad(delta(list(range(y0, y1)), border_x), (0, 0, y0, h_out - y1))
        out.index_add_(3, torch.tensor(border_x, device=out.device), d)
    return out
