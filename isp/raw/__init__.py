"""Raw files in and out: decoding, packing, noise vectors, levels and back, DNG writing, LibRaw rendering.

numpy only (no torch): the layers above convert. See docs/CONTRACTS.md (isp.raw).
"""

from .dng import DNG_RENDERING_TAGS, write_dng
from .errors import RawError, RawReadError, RawWarning, UnsupportedRawError
from .frame import BAYER_PATTERNS, OpticalBlack, RawFrame, RawMetadata, frame_from_sensor
from .levels import denormalize, normalize
from .pack import PACKED_CHANNELS, PackInfo, pack, pad_to_rggb, unpack
from .read import RAW_EXTENSIONS, read
from .render import render_srgb
from .vectors import COL_CHANNELS, ROW_CHANNELS, noise_vectors

__all__ = [
    "BAYER_PATTERNS",
    "COL_CHANNELS",
    "DNG_RENDERING_TAGS",
    "ROW_CHANNELS",
    "OpticalBlack",
    "PACKED_CHANNELS",
    "PackInfo",
    "RAW_EXTENSIONS",
    "RawError",
    "RawFrame",
    "RawMetadata",
    "RawReadError",
    "RawWarning",
    "UnsupportedRawError",
    "denormalize",
    "frame_from_sensor",
    "noise_vectors",
    "normalize",
    "pack",
    "pad_to_rggb",
    "read",
    "render_srgb",
    "unpack",
    "write_dng",
]
