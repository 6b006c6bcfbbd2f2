"""MSConv2d followed by LeakyReLU, the side terms added in the activation's pass (a compiled epilogue).

Eager, a compact MSConv2d adds its row and column terms into the convolution's output (one pass
over it) and the LeakyReLU that follows makes another. Under bf16 autocast on the CPU those
elementwise passes cost more than the convolution itself: aten converts bf16 element by element
(the shipped UNet's 512² tile, one thread, channels_last: 153 ms for the msconv net against 123 ms
for the blind one). Here the image convolution runs as usual, the side terms are computed as
``(N, C_out, L)`` float32 vectors laid out as the output runs (:func:`isp.nn._compact.channels_like`),
and one Inductor-compiled pointwise kernel reads the output once: ``leaky_relu(out + rows + cols)``,
computed in float32 and rounded once, written into the output itself where that is faster.

Each kernel (with row terms, column terms, both or neither; into a new buffer or in place) is
compiled on first use in a process, for dynamic shapes (seconds; Inductor's on-disk cache shortens
later processes' compiles). Where compilation fails (no C++ compiler, an unsupported device) a
warning says so once and the eager path runs instead.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from isp.nn._compact import channels_like, folded_side_vectors, unfold_1d
from isp.nn._validate import Geometry, conv2d

__all__ = ["conv_side_leaky_relu", "fresh_side_leaky_relu", "fused_side_leaky_relu"]

#: the compiled kernels by function name; dynamo keeps one cache of at most eight recompilations
#: (dtypes, layouts, thread counts) per function's code, so each variant is its own function
_compiled: dict[str, object] = {}
#: kernels that could not be compiled (or recompiled past dynamo's limit), with the reason
_failed: dict[str, str] = {}


def _acc(t: Tensor) -> Tensor:
    """``t`` in the dtype the kernels compute in: float32 (float64 stays float64)."""
    return t if t.dtype == torch.float64 else t.float()


def _act(out: Tensor, rows: None, cols: None, negative_slope: float) -> Tensor:
    return F.leaky_relu(_acc(out), negative_slope).to(out.dtype)


def _rows_act(out: Tensor, rows: Tensor, cols: None, negative_slope: float) -> Tensor:
    return F.leaky_relu(_acc(out) + rows[:, :, :, None], negative_slope).to(out.dtype)


def _cols_act(out: Tensor, rows: None, cols: Tensor, negative_slope: float) -> Tensor:
    return F.leaky_relu(_acc(out) + cols[:, :, None, :], negative_slope).to(out.dtype)


def _rows_cols_act(out: Tensor, rows: Tensor, cols: Tensor, negative_slope: float) -> Tensor:
    y = _acc(out) + rows[:, :, :, None] + cols[:, :, None, :]
    return F.leaky_relu(y, negative_slope).to(out.dtype)


# in place: the kernel writes where it reads (a conv output nobody else holds); see _in_place_pays
def _act_(out: Tensor, rows: None, cols: None, negative_slope: float) -> Tensor:
    return out.copy_(F.leaky_relu(_acc(out), negative_slope))


def _rows_act_(out: Tensor, rows: Tensor, cols: None, negative_slope: float) -> Tensor:
    return out.copy_(F.leaky_relu(_acc(out) + rows[:, :, :, None], negative_slope))


def _cols_act_(out: Tensor, rows: None, cols: Tensor, negative_slope: float) -> Tensor:
    return out.copy_(F.leaky_relu(_acc(out) + cols[:, :, None, :], negative_slope))


def _rows_cols_act_(out: Tensor, rows: Tensor, cols: Tensor, negative_slope: float) -> Tensor:
    y = _acc(out) + rows[:, :, :, None] + cols[:, :, None, :]
    return out.copy_(F.leaky_relu(y, negative_slope))


_VARIANTS = {
    (False, False, False): _act,
    (True, False, False): _rows_act,
    (False, True, False): _cols_act,
    (True, True, False): _rows_cols_act,
    (False, False, True): _act_,
    (True, False, True): _rows_act_,
    (False, True, True): _cols_act_,
    (True, True, True): _rows_cols_act_,
}


def _compiled_call(fn, *args):
    """``fn(*args)`` through its compiled kernel; eager where it failed to compile (one warning)."""
    name = fn.__name__
    if name in _failed or torch.compiler.is_compiling():
        return fn(*args)
    if name not in _compiled:  # dynamic shapes from the start: one kernel for every layer's size
        _compiled[name] = torch.compile(fn, fullgraph=True, dynamic=True)
    try:
        return _compiled[name](*args)
    except Exception as err:  # noqa: BLE001 - any compiler failure: fall back, say so once
        result = fn(*args)  # the caller's own error raises here
        _failed[name] = f"{type(err).__name__}: {err}".splitlines()[0]
        warnings.warn(
            f"isp: the fused MSConv2d + LeakyReLU epilogue {name} could not be compiled "
            f"({_failed[name]}); running the eager ops instead",
            RuntimeWarning,
            stacklevel=3,
        )
        return result


def _side_leaky_relu(
    out: Tensor, rows: Tensor | None, cols: Tensor | None, negative_slope: float, inplace: bool = False
) -> Tensor:
    """``leaky_relu(out + rows + cols)`` in float32 (float64 for float64), rounded once to ``out``'s dtype.

    ``out (N, C, H, W)``, ``rows (N, C, H)``, ``cols (N, C, W)`` (either may be ``None``).
    """
    return _VARIANTS[rows is not None, cols is not None, inplace](out, rows, cols, negative_slope)


def fused_side_leaky_relu(
    out: Tensor, rows: Tensor | None, cols: Tensor | None, negative_slope: float, inplace: bool = False
) -> Tensor:
    """:func:`_side_leaky_relu` as one compiled kernel (eager where that variant failed to compile).

    The vectors are read fastest laid out as ``out`` runs: channels innermost for a channels-last
    ``out`` (:func:`isp.nn._compact.channels_like`).
    """
    kernel = _VARIANTS[rows is not None, cols is not None, inplace]
    y = _compiled_call(kernel, out, rows, cols, negative_slope)
    return out if inplace else y  # the compiled in-place kernel returns an alias, not ``out`` itself


def _in_place_pays(out: Tensor) -> bool:
    """Whether the kernel is faster writing into ``out`` (a fresh conv output) than into a new buffer.

    Measured one thread, ``python benchmarks/msconv.py --fused-epilogue`` and a one-off script
    after a fresh 4 -> 32 conv at 8 x 256²: float32 in place 6.8-6.9 ms against 10.6-11.0 into a
    new buffer (aten's ``leaky_relu_`` alone 5.2-5.4), MSConv2d's input rows 25.7-26.4 against
    29.0-29.8 ms; bf16 channels-last the reverse (13.0 against 5.8 ms; the input rows 18.5-21.1
    against 13.7-14.7).
    """
    return out.dtype in (torch.float32, torch.float64)


def fresh_side_leaky_relu(
    out: Tensor, rows: Tensor | None, cols: Tensor | None, negative_slope: float
) -> Tensor:
    """:func:`fused_side_leaky_relu` of a fresh conv output nobody else holds: in place where faster.

    The vectors ``(N, C, L)`` are laid out as ``out`` runs first (:func:`channels_like`, float32).
    """
    rows, cols = (None if v is None else channels_like(out, v, v.dtype) for v in (rows, cols))
    return fused_side_leaky_relu(out, rows, cols, negative_slope, inplace=_in_place_pays(out))


def _side_vectors(u_row, u_col, scalar, row_weight, col_weight, scalar_weight, bias):
    """The compact side terms ``rows (N, C_out, H_out)``, ``cols (N, C_out, W_out)``.

    From the unfolded taps (:func:`isp.nn._compact.unfold_1d`), in float32 (float64 where a source
    or weight is), without autocast; the per-channel constant (bias + scalar term) rides on
    ``rows``, else on ``cols``. At least one of ``u_row``, ``u_col`` is given.
    """
    sides = (u_row, u_col, scalar, row_weight, col_weight, scalar_weight, bias)
    acc = torch.float64 if any(t is not None and t.dtype == torch.float64 for t in sides) else torch.float32
    device = (u_row if u_row is not None else u_col).device.type
    with torch.autocast(device, enabled=False):
        return folded_side_vectors(*(None if t is None else t.to(acc) for t in sides))


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
    a row or a column source among them. Without autograd; the kernel writes into the conv's
    output where that is faster (:func:`fresh_side_leaky_relu`).
    """
    row, col, *rest = sides
    (kh, kw), (sh, sw), (dh, dw), (pt, pb, pl, pr) = geo.kernel, geo.stride, geo.dilation, geo.pad
    u_row = None if row is None else unfold_1d(row, kh, sh, dh, pt, pb, geo.mode)
    u_col = None if col is None else unfold_1d(col, kw, sw, dw, pl, pr, geo.mode)
    out = conv2d(image, weight, None, geo, groups)
    return fresh_side_leaky_relu(out, *_side_vectors(u_row, u_col, *rest), negative_slope)
