"""Tiled full-frame inference with overlapping tiles and seamless blending.

A full 24-megapixel raw does not fit a denoising UNet's activations in a few gigabytes, so the
packed frame is cut into overlapping tiles, each tile is denoised on its own, and the tiles are
blended back. Three things make the tiled result equal the untiled one:

- **Alignment.** A UNet of depth ``d`` pools by 2 ``d`` times; its pooling grid is anchored at the
  top-left of whatever it is given. Tiles therefore start at multiples of ``align`` (``2**d``) and,
  except the last one along each axis, have sizes that are multiples of it. The last tile ends at
  the frame edge, and its size is ``H - start`` with ``start`` a multiple of ``align``, so a model
  that pads its input to a multiple of ``align`` at the bottom/right pads it exactly as it pads the
  whole frame ("pad at the frame edges the way the model's own padding would").
- **Context.** A tile's outer pixels see the tile edge (zero padding) where the untiled run sees
  more image. Each interior tile edge is followed by ``margin`` pixels of weight 0, then a linear
  ramp to 1 across the rest of the overlap (a window whose sum over neighbours is one), so no
  output pixel comes from within ``margin`` of an interior tile edge. Where ``margin`` covers the
  model's receptive field the result is exact up to float rounding; where it does not, the ramps
  hide the seam.
- **Side inputs.** Each tile gets its rows' slice of the per-row vector, its columns' slice of
  the per-column vector and the frame's scalars.

Positions are in the units of the tensors given (packed planes: one packed pixel is a 2x2 block of
the mosaic, so any offset in the packed planes is an even offset in the mosaic and the CFA phase
of every tile is that of the frame).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = [
    "TileGrid",
    "TiledInference",
    "size_multiple",
    "tile_grid",
    "tile_window",
    "tiled_forward",
]


@dataclass(frozen=True)
class TileGrid:
    """Tile layout along one axis.

    Attributes:
        starts: first index of each tile.
        stops: one past the last index of each tile.
        length: length of the axis.
        overlap: nominal overlap between neighbouring tiles.
        margin: pixels of zero weight after each interior tile edge.
    """

    starts: tuple[int, ...]
    stops: tuple[int, ...]
    length: int
    overlap: int
    margin: int

    def __len__(self) -> int:
        return len(self.starts)


def size_multiple(net: object) -> int:
    """The size a network's input is padded to a multiple of: its tiles' alignment.

    ``net.size_multiple`` when it has one, ``2**net.depth`` for a UNet, else 1.

    Example:
        >>> from isp.models import UNet
        >>> size_multiple(UNet(base_width=4, depth=3, conditioning="none")), size_multiple(nn.Conv2d(1, 1, 3))
        (8, 1)
    """
    if hasattr(net, "size_multiple"):
        return int(net.size_multiple)
    depth = getattr(net, "depth", None)
    return 2**depth if isinstance(depth, int) else 1


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Expected `{name}` to be an int. Got {type(value).__name__} {value!r}.")
    if value < minimum:
        raise ValueError(f"Expected `{name}` to be an int >= {minimum}. Got {value}.")
    return value


def tile_grid(length: int, tile: int, overlap: int, *, align: int = 1, margin: int | None = None) -> TileGrid:
    """Lay out overlapping tiles along one axis of ``length`` pixels.

    Tiles start at multiples of ``align``; every tile but the last has size ``tile`` rounded down
    to a multiple of ``align``; the stride is ``tile - overlap`` rounded down to a multiple of
    ``align`` (so the real overlap is at least ``overlap``); the last tile ends at ``length``.

    Args:
        length: axis length (>= 1).
        tile: nominal tile size (>= ``align``).
        overlap: minimum overlap between neighbouring tiles (>= 0; ``tile - overlap >= align``).
        align: tile starts are multiples of it (the model's size multiple, ``2**depth``).
        margin: zero-weight pixels after each interior edge; default ``overlap // 4``.
            Must satisfy ``2 * margin < overlap`` when ``overlap > 0``.

    Returns:
        The :class:`TileGrid`.

    Example:
        >>> g = tile_grid(100, 48, 16, align=8)
        >>> list(zip(g.starts, g.stops))
        [(0, 48), (32, 80), (56, 100)]
    """
    _check_int("length", length, 1)
    _check_int("align", align, 1)
    _check_int("tile", tile, align)
    _check_int("overlap", overlap, 0)
    if margin is None:
        margin = overlap // 4
    _check_int("margin", margin, 0)
    if overlap > 0 and 2 * margin >= overlap:
        raise ValueError(
            f"Expected `margin` to be less than half of `overlap` ({overlap}) so that the ramps meet. "
            f"Got {margin}."
        )
    size = tile // align * align
    stride = (size - overlap) // align * align
    if stride < align:
        raise ValueError(
            f"Expected `tile - overlap` to be at least `align` ({align}) so that tiles advance. "
            f"Got tile={tile}, overlap={overlap}."
        )
    if length <= size:
        return TileGrid((0,), (length,), length, overlap, margin)
    starts = list(range(0, length - size, stride))
    last = -(-(length - size) // align) * align  # align_up(length - size) <= starts[-1] + stride
    if last > starts[-1]:
        starts.append(last)
    stops = [min(s + size, length) for s in starts]
    stops[-1] = length
    return TileGrid(tuple(starts), tuple(stops), length, overlap, margin)


def tile_window(grid: TileGrid, index: int, *, dtype: torch.dtype = torch.float32) -> Tensor:
    """Blending weights of tile ``index`` of ``grid`` along its axis.

    1 inside, 0 for ``grid.margin`` pixels after an interior edge, then a linear ramp over the
    remaining ``overlap - 2 * margin`` pixels; frame edges get no ramp. Ramps of two neighbours
    ``overlap`` apart sum to one.

    Returns:
        ``(stop - start,)`` weights in ``[0, 1]``.

    Example:
        >>> g = tile_grid(12, 8, 4, align=2, margin=1)
        >>> tile_window(g, 0).tolist()
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.25, 0.0]
    """
    start, stop = grid.starts[index], grid.stops[index]
    x = torch.arange(stop - start, dtype=torch.float64)
    w = torch.ones_like(x)
    ramp_len = grid.overlap - 2 * grid.margin
    if ramp_len > 0:
        if start > 0:
            w = torch.minimum(w, ((x - grid.margin + 0.5) / ramp_len).clamp(0, 1))
        if stop < grid.length:
            w = torch.minimum(w, ((stop - start - 1 - x - grid.margin + 0.5) / ramp_len).clamp(0, 1))
    return w.to(dtype)


def _axis_sum(grid: TileGrid) -> Tensor:
    total = torch.zeros(grid.length, dtype=torch.float64)
    for i, (s, e) in enumerate(zip(grid.starts, grid.stops, strict=True)):
        total[s:e] += tile_window(grid, i, dtype=torch.float64)
    return total


def _slice_last(x: Tensor | None, start: int, stop: int) -> Tensor | None:
    return None if x is None else x[..., start:stop]


def _check_inputs(image: Tensor, row: Tensor | None, col: Tensor | None, scalar: Tensor | None) -> None:
    if not isinstance(image, Tensor) or image.ndim != 4:
        got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"Expected `image` to be a tensor of shape (N, C, H, W). Got {got}.")
    n, _, h, w = image.shape
    for name, x, length in (("row", row, h), ("col", col, w)):
        if x is not None and (x.ndim != 3 or x.shape[0] != n or x.shape[2] != length):
            raise ValueError(
                f"Expected `{name}` of shape (N={n}, C, {length}) to match `image` {tuple(image.shape)}. "
                f"Got {tuple(x.shape)}."
            )
    if scalar is not None and (scalar.ndim != 2 or scalar.shape[0] != n):
        raise ValueError(f"Expected `scalar` of shape (N={n}, C). Got {tuple(scalar.shape)}.")


def tiled_forward(
    net: Callable[..., Tensor],
    image: Tensor,
    row: Tensor | None = None,
    col: Tensor | None = None,
    scalar: Tensor | None = None,
    *,
    tile: int = 256,
    overlap: int = 16,
    align: int = 1,
    margin: int | None = None,
    device: torch.device | str | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
    governor: Callable[[], int] | None = None,
) -> Tensor:
    """Run ``net(image, row, col, scalar)`` tile by tile and blend the tiles.

    The frame stays where it is (usually CPU memory); each tile is moved to ``device``, and the
    result is accumulated in float32 on the frame's device. Only one tile's activations exist at a
    time, so peak memory is the frame, the output and one tile's worth of the network.

    Args:
        net: a module or function ``(image, row, col, scalar) -> (N, C_out, h, w)``, called
            positionally, that keeps the spatial size (trailing ``None`` side inputs are left out,
            so a plain ``nn.Conv2d`` works).
        image: ``(N, C, H, W)``.
        row: ``(N, C2, H)`` per-row side input or ``None``; tile ``[y0:y1]`` gets ``row[..., y0:y1]``.
        col: ``(N, C3, W)`` per-column side input or ``None``.
        scalar: ``(N, C4)`` or ``None``, the same for every tile.
        tile: tile size in pixels of ``image`` (both axes).
        overlap: minimum overlap of neighbouring tiles.
        align: tile starts are multiples of it; pass the model's size multiple (``2**depth``).
        margin: zero-weight pixels after an interior tile edge (default ``overlap // 4``).
        device: where the network runs; default the device of ``net``'s first parameter, else
            that of ``image``.
        progress: called as ``progress(done, total)`` after each tile.
        workers: on the CPU, tiles run concurrently in this many threads, each with one intra-op
            thread (torch's thread count is restored afterwards); tiles are blended in the serial
            order, so the result equals a one-thread serial run. Peak memory grows by one tile's
            activations per worker. Ignored on other devices.
        governor: with one worker on the CPU, called before each tile; its answer becomes torch's
            intra-op thread count for that tile (e.g. :class:`isp.predict.cores.CoreGovernor`: two
            threads while the other core is idle, one while another job uses it). Torch's thread
            count is restored afterwards. The result does not depend on the thread counts beyond
            float rounding.

    Returns:
        ``(N, C_out, H, W)`` float32 on ``image``'s device.

    Example:
        >>> net = nn.Conv2d(4, 4, 3, padding=1)
        >>> x = torch.rand(1, 4, 40, 56)
        >>> y = tiled_forward(net, x, tile=24, overlap=8, margin=2)
        >>> bool(torch.allclose(y, net(x), atol=1e-5))
        True
    """
    _check_inputs(image, row, col, scalar)
    _check_int("workers", workers, 1)
    if governor is not None and not callable(governor):
        raise TypeError(f"Expected `governor` to be a callable returning a thread count. Got {governor!r}.")
    _, _, h, w = image.shape
    gy = tile_grid(h, tile, overlap, align=align, margin=margin)
    gx = tile_grid(w, tile, overlap, align=align, margin=margin)
    if device is None:
        param = next(iter(net.parameters()), None) if isinstance(net, nn.Module) else None
        device = param.device if param is not None else image.device
    device = torch.device(device)
    wy = [tile_window(gy, i) for i in range(len(gy))]
    wx = [tile_window(gx, j) for j in range(len(gx))]
    tiles = [
        (i, j, y0, y1, x0, x1)
        for i, (y0, y1) in enumerate(zip(gy.starts, gy.stops, strict=True))
        for j, (x0, x1) in enumerate(zip(gx.starts, gx.stops, strict=True))
    ]

    def predict(t: tuple[int, ...]) -> Tensor:
        _, _, y0, y1, x0, x1 = t
        args = [image[:, :, y0:y1, x0:x1], _slice_last(row, y0, y1), _slice_last(col, x0, x1), scalar]
        while args[-1] is None:  # trailing side inputs left out: plain modules take only the image
            args.pop()
        pred = net(*(None if a is None else a.to(device, non_blocking=True) for a in args))
        if pred.shape[-2:] != (y1 - y0, x1 - x0):
            got = tuple(pred.shape[-2:])
            raise ValueError(f"Expected `net` to keep the tile size {(y1 - y0, x1 - x0)}. Got {got}.")
        return pred.to(image.device, torch.float32)

    out: Tensor | None = None
    blended = 0

    def blend(t: tuple[int, ...], pred: Tensor) -> None:
        nonlocal out, blended
        i, j, y0, y1, x0, x1 = t
        if out is None:
            out = torch.zeros((image.shape[0], pred.shape[1], h, w), dtype=torch.float32, device=image.device)
        weight = (wy[i][:, None] * wx[j][None, :]).to(image.device)
        out[:, :, y0:y1, x0:x1].addcmul_(pred, weight)
        blended += 1
        if progress is not None:
            progress(blended, len(tiles))

    if device.type == "cpu" and governor is not None and workers == 1:
        saved = torch.get_num_threads()
        try:
            for t in tiles:
                threads = governor()
                if threads != torch.get_num_threads():
                    torch.set_num_threads(threads)
                blend(t, predict(t))
        finally:
            torch.set_num_threads(saved)
    elif workers == 1 or len(tiles) == 1 or device.type != "cpu":
        for t in tiles:
            blend(t, predict(t))
    else:
        # at most `workers` tiles in flight, blended in the serial order (the same sums)
        with _one_intra_op_thread(), ThreadPoolExecutor(workers, thread_name_prefix="tile") as pool:
            pending: deque = deque()
            for t in tiles:
                pending.append((t, pool.submit(predict, t)))
                if len(pending) >= workers:
                    done, future = pending.popleft()
                    blend(done, future.result())
            while pending:
                done, future = pending.popleft()
                blend(done, future.result())
    assert out is not None  # the grid always has at least one tile
    # The tiles form a product grid, so the summed weight is separable: sum_i wy_i(y) * sum_j wx_j(x).
    norm_y = _axis_sum(gy).to(torch.float32).to(image.device)
    norm_x = _axis_sum(gx).to(torch.float32).to(image.device)
    out.div_(norm_y[:, None]).div_(norm_x[None, :])
    return out


@contextlib.contextmanager
def _one_intra_op_thread() -> Iterator[None]:
    """One intra-op thread for torch inside the block (threads started in it inherit it)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


class TiledInference(nn.Module):
    """Wrap a network so that its forward runs tile by tile (see :func:`tiled_forward`).

    Args:
        net: the network; ``net(image, row=..., col=..., scalar=...)`` keeps the spatial size.
        tile: tile size in pixels of the input tensor.
        overlap: minimum overlap of neighbouring tiles.
        align: tile starts are multiples of it; default :func:`size_multiple` of ``net``.
        margin: zero-weight pixels after an interior tile edge (default ``overlap // 4``).

    Shapes:
        image ``(N, C, H, W)``, row ``(N, C2, H)``, col ``(N, C3, W)``, scalar ``(N, C4)`` ->
        ``(N, C_out, H, W)``.

    Example:
        >>> tiled = TiledInference(nn.Conv2d(4, 4, 3, padding=1), tile=32, overlap=8, margin=2)
        >>> tiled(torch.rand(1, 4, 50, 70)).shape
        torch.Size([1, 4, 50, 70])
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        tile: int = 256,
        overlap: int = 16,
        align: int | None = None,
        margin: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"Expected `net` to be an nn.Module. Got {type(net).__name__}.")
        self.net = net
        self.tile = tile
        self.overlap = overlap
        self.align = size_multiple(net) if align is None else align
        self.margin = margin
        tile_grid(max(tile, 1), tile, overlap, align=self.align, margin=margin)  # validates arguments

    def forward(
        self,
        image: Tensor,
        row: Tensor | None = None,
        col: Tensor | None = None,
        scalar: Tensor | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Tensor:
        """Denoise ``image`` tile by tile; see the class docstring for shapes."""
        return tiled_forward(
            self.net,
            image,
            row,
            col,
            scalar,
            tile=self.tile,
            overlap=self.overlap,
            align=self.align,
            margin=self.margin,
            device=next(iter(self.net.parameters()), image).device,
            progress=progress,
        )

    def extra_repr(self) -> str:
        """Tile settings, printed in the module's repr."""
        return f"tile={self.tile}, overlap={self.overlap}, align={self.align}, margin={self.margin}"
