"""MSConv2d followed by LeakyReLU, the side terms added in the activation's pass (a compiled epilogue).

Eager, a compact MSConv2d adds its row and column terms into the convolution's output (one pass
over it) and the LeakyReLU that follows makes another. Under bf16 autocast on the CPU those
elementwise passes cost more than the convolution itself: aten converts bf16 element by element
(the shipped UNet's 512² tile, one thread, channels_last: 153 ms for the msconv net against 123 ms
for the blind one). Here the image convolution runs as usual, the side terms are computed as
``(N, L, C_out)`` float32 vectors (channels innermost, as a channels-last output runs), and one
Inductor-compiled pointwise kernel reads the output once: ``leaky_relu(out + rows + cols)``,
computed in float32 and rounded once.

Each kernel (with row terms, column terms, both, neither) is compiled on first use in a process,
for dynamic shapes (seconds; Inductor's on-disk cache shortens later processes' compiles). Where
compilation fails (no C++ compiler, an unsupported device) a warning says so once and the eager
path runs instead.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from isp.nn._compact import folded_side_vectors, unfold_1d
from isp.nn._validate import Geometry, conv2d

__all__ = ["fused_side_leaky_relu", "side_vectors"]

#: the compiled kernels, one per (rows given, cols given); dynamo keeps one cache of at most eight
#: recompilations (dtypes, layouts, thread counts) per function's code, so each variant has its own
_compiled: dict[tuple[bool, bool], object] = {}
#: variants that could not be compiled (or recompiled past dynamo's limit), with the reason
_failed: dict[tuple[bool, bool], str] = {}


def _act(out: Tensor, rows: None, cols: None, negative_slope: float) -> Tensor:
    return F.leaky_relu(out.float(), negative_slope).to(out.dtype)


def _rows_act(out: Tensor, rows: Tensor, cols: None, negative_slope: float) -> Tensor:
    y = out.float() + rows.permute(0, 2, 1)[:, :, :, None]
    return F.leaky_relu(y, negative_slope).to(out.dtype)


def _cols_act(out: Tensor, rows: None, cols: Tensor, negative_slope: float) -> Tensor:
    y = out.float() + cols.permute(0, 2, 1)[:, :, None, :]
    return F.leaky_relu(y, negative_slope).to(out.dtype)


def _rows_cols_act(out: Tensor, rows: Tensor, cols: Tensor, negative_slope: float) -> Tensor:
    y = out.float() + rows.permute(0, 2, 1)[:, :, :, None] + cols.permute(0, 2, 1)[:, :, None, :]
    return F.leaky_relu(y, negative_slope).to(out.dtype)


_VARIANTS = {
    (False, False): _act,
    (True, False): _rows_act,
    (False, True): _cols_act,
    (True, True): _rows_cols_act,
}


def _side_leaky_relu(out: Tensor, rows: Tensor | None, cols: Tensor | None, negative_slope: float) -> Tensor:
    """``leaky_relu(out + rows + cols)`` in float32, rounded once to ``out``'s dtype.

    ``out (N, C, H, W)``, ``rows (N, H, C)``, ``cols (N, W, C)`` (either may be ``None``).
    """
    return _VARIANTS[rows is not None, cols is not None](out, rows, cols, negative_slope)


def fused_side_leaky_relu(
    out: Tensor, rows: Tensor | None, cols: Tensor | None, negative_slope: float
) -> Tensor:
    """:func:`_side_leaky_relu` as one compiled kernel (eager where that variant failed to compile)."""
    key = (rows is not None, cols is not None)
    if key not in _failed and not torch.compiler.is_compiling():
        if key not in _compiled:  # dynamic shapes from the start: one kernel for every layer's size
            _compiled[key] = torch.compile(_VARIANTS[key], fullgraph=True, dynamic=True)
        try:
            return _compiled[key](out, rows, cols, negative_slope)
        except Exception as err:  # noqa: BLE001 - any compiler failure: fall back, say so once
            result = _side_leaky_relu(out, rows, cols, negative_slope)  # the caller's own error raises here
            _failed[key] = f"{type(err).__name__}: {err}".splitlines()[0]
            warnings.warn(
                f"isp: the fused MSConv2d + LeakyReLU epilogue {_VARIANTS[key].__name__} could not be "
                f"compiled ({_failed[key]}); running the eager ops instead",
                RuntimeWarning,
                stacklevel=2,
            )
            return result
    return _side_leaky_relu(out, rows, cols, negative_slope)


def side_vectors(
    row: Tensor | None,
    col: Tensor | None,
    scalar: Tensor | None,
    row_weight: Tensor | None,
    col_weight: Tensor | None,
    scalar_weight: Tensor | None,
    bias: Tensor | None,
    geo: Geometry,
) -> tuple[Tensor | None, Tensor | None]:
    """The compact side terms as float32 ``rows (N, H_out, C_out)``, ``cols (N, W_out, C_out)``.

    The per-channel constant (bias + scalar term) rides on ``rows``, else on ``cols``; at least
    one of ``row``, ``col`` is given.
    """
    (kh, kw), (sh, sw), (dh, dw), (pt, pb, pl, pr) = geo.kernel, geo.stride, geo.dilation, geo.pad
    f = [
        None if t is None else t.float()
        for t in (row, col, scalar, row_weight, col_weight, scalar_weight, bias)
    ]
    u_row = None if row is None else unfold_1d(f[0], kh, sh, dh, pt, pb, geo.mode)
    u_col = None if col is None else unfold_1d(f[1], kw, sw, dw, pl, pr, geo.mode)
    with torch.autocast(f[0].device.type if row is not None else f[1].device.type, enabled=False):
        rows, cols = folded_side_vectors(u_row, u_col, *f[2:])
    # (N, C_out, L) views of (N, L, C_out) memory: back to their contiguous layout
    return tuple(None if v is None else v.transpose(1, 2) for v in (rows, cols))


def conv_side_leaky_relu(
    image: Tensor,
    weight: Tensor,
    sides: tuple,
    geo: Geometry,
    groups: int,
    negative_slope: float,
) -> Tensor:
    """``leaky_relu(conv(image) + side terms)``: the convolution eager, the rest in one fused pass.

    ``sides``: ``(row, col, scalar, row_weight, col_weight, scalar_weight, bias)``, compact weights,
    a row or a column source among them.
    """
    rows, cols = side_vectors(*sides, geo)
    return fused_side_leaky_relu(conv2d(image, weight, None, geo, groups), rows, cols, negative_slope)
