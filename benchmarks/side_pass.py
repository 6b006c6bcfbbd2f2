"""What an eager float32 CPU forward can do about MSConv2d's pass over the conv output.

MSConv2d's eager forward is the image convolution, then one pass adding the row and column terms
(``isp.nn._compact``); on a few-channel first layer that pass costs a third of the conv. This
script times, per layer shape, interleaved, one thread, no autograd, each way PyTorch's CPU
kernels offer to add the terms, as medians x the image-only conv of the same layout:

- ``ms_conv2d``: MSConv2d's own eager forward (conv, then one rank-2 ``baddbmm_`` pass);
- ``oneDNN post-op``: ``torch.ops.mkldnn._convolution_pointwise.binary(..., "add", ...)``, the
  conv with a broadcast binary add in its output loop (one operand: the rows alone, the rows then
  an ``add_`` of the columns, or the full term materialised first);
- ``per sample``: the conv and the rank-2 pass one sample at a time (its output nearer the cache);
- channels-last (where the conv is faster, but copying its output back to contiguous costs
  several times the conv): MSConv2d (two broadcast adds) and the adds as one accumulating matrix
  product instead (bf16's path, ``_add_by_gemm_``).

::

    python benchmarks/side_pass.py [--reps 11] [--warmup 2]
"""

from __future__ import annotations

import argparse

import _pages  # before torch: the memory tuned as the programs run
import torch
import torch.nn.functional as F
from _timing import interleaved_medians

from isp.nn._compact import _add_by_gemm_, add_compact_side_terms, scalar_constant, unfold_1d
from isp.nn._validate import geometry
from isp.nn.functional import ms_conv2d

# batch, C_in, C_out, size, (C2, C3): the input layer and a middle layer of benchmarks/msconv.py
SHAPES = [(8, 4, 32, 256, (2, 2)), (8, 32, 32, 128, (2, 2))]


def _post_op(x: torch.Tensor, other: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``conv2d(x, w, b, padding=1) + other`` with the add in oneDNN's output loop."""
    one = [1, 1]
    conv_add = torch.ops.mkldnn._convolution_pointwise.binary
    return conv_add(x, other, w, b, one, one, one, 1, "add", 1.0, None, [], None)


def calls(n: int, c_in: int, c_out: int, size: int, sides: tuple[int, int]) -> dict[str, dict]:
    """``{layout: {name: fn}}``; the first of each layout is its reference conv."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c_in, size, size, generator=g)
    w, b = torch.randn(c_out, c_in, 3, 3, generator=g), torch.randn(c_out, generator=g)
    row, col = torch.randn(n, sides[0], size, generator=g), torch.randn(n, sides[1], size, generator=g)
    row_w, col_w = torch.randn(c_out, sides[0], 3, generator=g), torch.randn(c_out, sides[1], 3, generator=g)
    geo = geometry((size, size), (3, 3), 1, 1, 1, "zeros")
    rows, cols = torch.randn(n, c_out, size, 1, generator=g), torch.randn(n, c_out, 1, size, generator=g)
    contiguous = {
        "conv": lambda: F.conv2d(x, w, b, padding=1),
        "ms_conv2d": lambda: ms_conv2d(x, row, col, None, w, row_w, col_w, None, b, padding=1),
        "per sample": lambda: torch.cat(
            [
                add_compact_side_terms(
                    F.conv2d(x[i : i + 1], w, None, padding=1),
                    row[i : i + 1],
                    col[i : i + 1],
                    None,
                    row_w,
                    col_w,
                    None,
                    b,
                    geo,
                )  # fmt: skip
                for i in range(n)
            ]
        ),
    }
    if hasattr(torch.ops.mkldnn, "_convolution_pointwise") and torch.backends.mkldnn.is_available():
        contiguous |= {
            "oneDNN post-op, rows": lambda: _post_op(x, rows, w, b),
            "oneDNN post-op, rows + add_ cols": lambda: _post_op(x, rows, w, b).add_(cols),
            "oneDNN post-op, full term": lambda: _post_op(x, rows + cols, w, b),
        }
    cl = torch.channels_last
    x_cl, w_cl = x.contiguous(memory_format=cl), w.contiguous(memory_format=cl)
    channels_last = {
        "conv": lambda: F.conv2d(x_cl, w_cl, b, padding=1),
        "ms_conv2d": lambda: ms_conv2d(x_cl, row, col, None, w_cl, row_w, col_w, None, b, padding=1),
        "one accumulating product": lambda: _add_by_gemm_(
            F.conv2d(x_cl, w_cl, None, padding=1),
            *(unfold_1d(v, 3, 1, 1, 1, 1, geo.mode) for v in (row, col)),
            scalar_constant(None, None, b),
            row_w,
            col_w,
        ),  # fmt: skip
    }
    with torch.no_grad():  # every way computes what it claims to
        full = F.conv2d(x, w, b, padding=1)
        ms = contiguous["ms_conv2d"]()
        for k, fn in contiguous.items():
            if k.startswith("oneDNN"):
                want = full + rows if k.endswith("rows") else full + rows + cols
            else:
                want = full if k == "conv" else ms
            torch.testing.assert_close(fn(), want, rtol=1e-4, atol=1e-3)
        for k, fn in channels_last.items():
            want = full if k == "conv" else ms
            torch.testing.assert_close(fn(), want, rtol=1e-4, atol=1e-3)
    return {"contiguous": contiguous, "channels-last": channels_last}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=11)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(
        f"torch {torch.__version__}, {_pages.pages()}, 1 thread, float32, no autograd;"
        f" {args.reps} interleaved reps, medians x the image-only conv of the same layout"
    )
    for n, c_in, c_out, size, sides in SHAPES:
        print(f"\n{n} x {c_in} -> {c_out} at {size}², rows and columns {sides}:")
        # one layout at a time: the other's large buffers, interleaved, moved these timings by 20%
        for layout, fns in calls(n, c_in, c_out, size, sides).items():
            med = interleaved_medians(fns, args.reps, args.warmup)
            print(f"  {layout}: conv {med['conv'] * 1e3:.1f} ms")
            for k, v in med.items():
                if k != "conv":
                    print(f"    {k:34s} {v * 1e3:6.1f} ms  {v / med['conv']:5.2f}")


if __name__ == "__main__":
    main()
