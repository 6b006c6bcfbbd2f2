"""Why MSConv2d convolves a few-channel image in blocks of rows without autograd (isp.nn._compact).

For each layer shape, interleaved repetitions of: the whole-batch ``F.conv2d`` (the reference),
the same conv followed by one rank-2 pass adding row and column terms (MSConv2d's unblocked
path), and per-sample blocks of output rows convolved from the padded input, alone and with the
row and column terms added to each block while it is in cache. Medians, as ratios to the
reference, one thread, no autograd::

    python benchmarks/blocked_conv.py [--reps 12] [--warmup 2]
"""

from __future__ import annotations

import argparse

import _pages  # before torch: the memory tuned as the programs run
import torch
import torch.nn.functional as F
from _timing import interleaved_medians

# batch, C_in, C_out, size, row blocks tried
SHAPES = [
    (8, 4, 32, 256, (16, 64, 256)),
    (1, 5, 32, 576, (16, 64)),  # the UNet's first layer on an inference tile (noise map included)
    (8, 32, 32, 128, (16, 128)),
    (8, 64, 64, 64, (16, 64)),
    (1, 64, 32, 576, (16, 64)),  # a full-resolution decoder conv on an inference tile
]


def calls(n: int, c_in: int, c_out: int, size: int, blocks: tuple[int, ...]) -> dict:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c_in, size, size, generator=g)
    w = torch.randn(c_out, c_in, 3, 3, generator=g)
    rows, cols = torch.randn(n, c_out, size, generator=g), torch.randn(n, c_out, size, generator=g)

    def rank2_pass():
        out = F.conv2d(x, w, padding=1)
        nc = n * c_out
        ones = out.new_ones(1, 1, 1).expand(nc, size, 1)
        left = torch.cat([rows.reshape(nc, size, 1), ones], 2)
        right = torch.cat([ones[:, :1].expand(nc, 1, size), cols.reshape(nc, 1, size)], 1)
        return out.view(nc, size, size).baddbmm_(left, right)

    def blocked(block: int, side: bool):
        def run():
            xp = F.pad(x, (1, 1, 1, 1))
            out = torch.empty(n, c_out, size, size)
            for i in range(n):
                for y0 in range(0, size, block):
                    y1 = min(size, y0 + block)
                    o = F.conv2d(xp[i : i + 1, :, y0 : y1 + 2], w)
                    if side:
                        o.add_(rows[i : i + 1, :, y0:y1, None]).add_(cols[i : i + 1, :, None, :])
                    out[i : i + 1, :, y0:y1] = o
            return out

        return run

    out = {"conv": lambda: F.conv2d(x, w, padding=1), "conv + rank-2 pass": rank2_pass}
    out |= {f"blocks of {b}": blocked(b, False) for b in blocks}
    out |= {f"blocks of {b} + side": blocked(b, True) for b in blocks}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(
        f"torch {torch.__version__}, {_pages.pages()}, 1 thread, no autograd;"
        f" {args.reps} interleaved reps, medians x conv"
    )
    for n, c_in, c_out, size, blocks in SHAPES:
        fns = calls(n, c_in, c_out, size, blocks)
        med = interleaved_medians(fns, args.reps, args.warmup)
        ratios = ", ".join(f"{k} {v / med['conv']:.2f}" for k, v in med.items() if k != "conv")
        print(f"{n} x {c_in} -> {c_out} at {size}²: conv {med['conv'] * 1e3:.1f} ms; {ratios}", flush=True)


if __name__ == "__main__":
    main()
