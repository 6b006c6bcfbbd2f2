"""Prediction: raw files in, denoised files out, the same for ``predict.py``, ``train.py predict`` and Python.

- :mod:`isp.predict.files`: input discovery, output naming, atomic no-clobber writing;
- :mod:`isp.predict.frame`: one frame through the network (:func:`denoise_frame`);
- :mod:`isp.predict.tiling`: overlapping, aligned tiles blended back seamlessly;
- :mod:`isp.predict.ensemble`: each tile also turned by 180 degrees, the two predictions averaged;
- :mod:`isp.predict.cores`: the CPU cores the tiles run on, re-counted before each tile;
- :mod:`isp.predict.outputs`: the denoised mosaic to a DNG, TIFF or PNG.

In Python, the steps of ``predict.py`` for one file::

    frame, mosaic = denoise_file(isp.weights.load_model().net.eval(), "in.NEF")
    write_output("out/in.dng", frame, mosaic)
"""

from isp.predict.files import (
    FORMATS,
    TEMP_MARK,
    Format,
    OutputExistsError,
    atomic_output,
    discover_inputs,
    output_path,
    remove_stale_temporaries,
)
from isp.predict.frame import (
    OVERLAP,
    TILE,
    denoise_file,
    denoise_frame,
    for_network,
    frame_inputs,
    inputs_version,
)
from isp.predict.outputs import write_denoised_dng, write_output
from isp.predict.tiling import TiledInference, TileGrid, size_multiple, tile_grid, tile_window, tiled_forward

__all__ = [
    "FORMATS",
    "Format",
    "OVERLAP",
    "OutputExistsError",
    "TEMP_MARK",
    "TILE",
    "TileGrid",
    "TiledInference",
    "atomic_output",
    "denoise_file",
    "denoise_frame",
    "discover_inputs",
    "for_network",
    "frame_inputs",
    "inputs_version",
    "output_path",
    "remove_stale_temporaries",
    "size_multiple",
    "tile_grid",
    "tile_window",
    "tiled_forward",
    "write_denoised_dng",
    "write_output",
]
