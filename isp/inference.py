"""Moved to :mod:`isp.predict.tiling`; this name stays for ``benchmarks/inference.py``."""

from isp.predict.tiling import TiledInference, TileGrid, size_multiple, tile_grid, tile_window, tiled_forward

__all__ = ["TileGrid", "TiledInference", "size_multiple", "tile_grid", "tile_window", "tiled_forward"]
