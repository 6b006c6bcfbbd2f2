"""Argument checks and geometry shared by the multi-source convolutions of :mod:`isp.nn`.

Every check raises a sentence in the house style (``Expected `x` to be ... Got ...``) naming the
argument, so that a wrong shape never surfaces as a bare error from deep inside ``conv2d`` or a
matmul.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
SOURCES = ("image", "row", "col", "scalar")


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


def _pad_mode(padding_mode: str) -> str:
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"Expected `padding_mode` to be one of {PADDING_MODES}. Got {padding_mode!r}.")
    return "constant" if padding_mode == "zeros" else padding_mode


def _out_size(size: int, k: int, s: int, d: int, p0: int, p1: int, name: str) -> int:
    out = (size + p0 + p1 - d * (k - 1) - 1) // s + 1
    if out < 1:
        raise ValueError(
            f"Expected the padded input {name} ({size} + padding {p0 + p1}) to be at least the dilated "
            "kernel "
            f"size {d * (k - 1) + 1}. Got {name}={size}."
        )
    return out


def check_placement(sources: dict[str, Tensor | None], weights: dict[str, Tensor | None]) -> None:
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


def check_sources(
    image: Tensor | None,
    row: Tensor | None,
    col: Tensor | None,
    scalar: Tensor | None,
    channels: tuple[int, int, int, int],
    size: tuple[int, int] | None,
) -> tuple[int, int, int]:
    """Validate the four sources against ``channels = (C1, C2, C3, C4)``; return ``(N, H, W)``."""
    c1, c2, c3, c4 = channels
    given = dict(zip(SOURCES, (image, row, col, scalar), strict=True))
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


def check_weights(
    weight: Tensor | None,
    row_weight: Tensor | None,
    col_weight: Tensor | None,
    scalar_weight: Tensor | None,
    bias: Tensor | None,
    groups: int,
    kernel_size: int | tuple[int, int] | None,
) -> tuple[tuple[int, int], int, tuple[int, int, int, int]]:
    """Check the weights of :func:`isp.nn.ms_conv2d` against each other.

    Returns:
        ``((kh, kw), C_out, (C1, C2, C3, C4))``. The kernel comes from the 4-d weights, else from
        ``kernel_size``, else from the compact row (``kh``) and column (``kw``) weights.
    """
    shapes = []
    for name, x in zip(WEIGHTS, (weight, row_weight, col_weight, scalar_weight, bias), strict=True):
        if x is not None and not isinstance(x, Tensor):
            raise TypeError(f"Expected `{name}` to be a torch.Tensor or None. Got {type(x).__name__}.")
        shapes.append(None if x is None else tuple(x.shape))
    if isinstance(kernel_size, list):
        kernel_size = tuple(kernel_size)
    layout = _weight_layout.__wrapped__ if torch.compiler.is_compiling() else _weight_layout
    return layout(tuple(shapes), groups, kernel_size)


WEIGHTS = ("weight", "row_weight", "col_weight", "scalar_weight", "bias")


@functools.lru_cache(maxsize=256)
def _weight_layout(
    shapes: tuple[tuple[int, ...] | None, ...], groups: int, kernel_size: int | tuple[int, int] | None
) -> tuple[tuple[int, int], int, tuple[int, int, int, int]]:
    """:func:`check_weights` on the shapes alone (cached: the Python checks cost ~40 us a call)."""
    named = dict(zip(WEIGHTS, shapes, strict=True))
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"Expected `groups` to be a positive int. Got {groups!r}.")
    present = [(n, x) for n, x in named.items() if x is not None and n != "bias"]
    if not present:
        raise ValueError(
            "Expected at least one of `weight`, `row_weight`, `col_weight`, `scalar_weight`. Got none."
        )
    c_out = present[0][1][0] if present[0][1] else 0
    full = [x for _, x in present if len(x) == 4]
    row, col = named["row_weight"], named["col_weight"]
    if full:
        kernel = (full[0][2], full[0][3])
    elif kernel_size is not None:
        kernel = _pair(kernel_size, "kernel_size", 1)
    else:
        kernel = (
            row[2] if row is not None and len(row) == 3 else 1,
            col[2] if col is not None and len(col) == 3 else 1,
        )
    if kernel_size is not None and _pair(kernel_size, "kernel_size", 1) != kernel:
        raise ValueError(
            f"Expected `kernel_size` to match the 4-d weights' kernel {kernel}. Got {kernel_size!r}."
        )
    kh, kw = kernel
    compact = {"weight": None, "row_weight": (kh,), "col_weight": (kw,), "scalar_weight": ()}
    letters = {"weight": "C1 / groups", "row_weight": "C2", "col_weight": "C3", "scalar_weight": "C4"}
    channels = [0, 0, 0, 0]
    for i, name in enumerate(WEIGHTS[:4]):
        x = named[name]
        if x is None:
            continue
        expected = [(c_out, letters[name], kh, kw)]
        if compact[name] is not None:
            expected.insert(0, (c_out, letters[name], *compact[name]))
        if not any(len(x) == len(e) and x[0] == c_out and x[2:] == e[2:] and x[1] > 0 for e in expected):
            shown = " or ".join(str(e).replace("'", "") for e in expected)
            raise ValueError(f"Expected `{name}` of shape {shown}. Got {x}.")
        channels[i] = x[1] * (groups if name == "weight" else 1)
    if groups > 1 and (named["weight"] is None or c_out % groups):
        raise ValueError(
            "Expected `groups` to divide C_out with an image weight. "
            f"Got groups={groups}, C_out={c_out}, weight={named['weight']}."
        )
    bias = named["bias"]
    if bias is not None and bias != (c_out,):
        raise ValueError(f"Expected `bias` of shape (C_out,) = ({c_out},). Got {bias}.")
    return kernel, c_out, tuple(channels)  # type: ignore[return-value]


class Geometry(NamedTuple):
    """Where the taps of a 2-d convolution land: everything but the weights.

    ``pad`` is ``(top, bottom, left, right)``; ``mode`` is the ``F.pad`` mode (``"constant"`` for
    zero padding).
    """

    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad: tuple[int, int, int, int]
    mode: str
    size: tuple[int, int]
    size_out: tuple[int, int]

    def axis(self, dim: int) -> tuple[int, int, int, int, int, int, int]:
        """One axis (0: H, 1: W) as ``(size, size_out, k, s, d, p0, p1)``."""
        return (
            self.size[dim],
            self.size_out[dim],
            self.kernel[dim],
            self.stride[dim],
            self.dilation[dim],
            self.pad[2 * dim],
            self.pad[2 * dim + 1],
        )


def geometry(
    size: tuple[int, int],
    kernel: tuple[int, int],
    stride: int | tuple[int, int],
    padding: str | int | tuple[int, int],
    dilation: int | tuple[int, int],
    padding_mode: str,
) -> Geometry:
    """Validate the convolution arguments for an input of ``size = (H, W)`` (cached)."""
    args = tuple(tuple(a) if isinstance(a, list) else a for a in (size, kernel, stride, padding, dilation))
    # dynamo traces through the cache anyway (and warns): give it the plain function
    return (_geometry if torch.compiler.is_compiling() else _geometry_cached)(*args, padding_mode)


def _geometry(
    size: tuple[int, int],
    kernel: tuple[int, int],
    stride: int | tuple[int, int],
    padding: str | int | tuple[int, int],
    dilation: int | tuple[int, int],
    padding_mode: str,
) -> Geometry:
    """:func:`geometry`, uncached."""
    stride2, dilation2 = _pair(stride, "stride", 1), _pair(dilation, "dilation", 1)
    pad = _padding4(padding, kernel, stride2, dilation2)
    mode = _pad_mode(padding_mode)
    h_out = _out_size(size[0], kernel[0], stride2[0], dilation2[0], pad[0], pad[1], "H")
    w_out = _out_size(size[1], kernel[1], stride2[1], dilation2[1], pad[2], pad[3], "W")
    return Geometry(kernel, stride2, dilation2, pad, mode, size, (h_out, w_out))


_geometry_cached = functools.lru_cache(maxsize=256)(_geometry)


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, geo: Geometry, groups: int) -> Tensor:
    """``conv2d`` exactly as ``nn.Conv2d`` runs it for each padding mode."""
    t, b, le, r = geo.pad
    if geo.mode == "constant" and (t, le) == (b, r):
        return F.conv2d(x, weight, bias, geo.stride, (t, le), geo.dilation, groups)
    x = F.pad(x, (le, r, t, b), mode=geo.mode)
    return F.conv2d(x, weight, bias, geo.stride, 0, geo.dilation, groups)


def conv_config(
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


def extra_repr(module) -> str:
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
