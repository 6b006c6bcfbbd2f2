"""Multi-source convolutions: MSConv2d and its tile-concat reference."""

from isp.nn.functional import (
    ms_conv2d,
    ms_conv2d_leaky_relu,
    side_leaky_relu,
    tile_and_concatenate,
    tile_concat_conv2d,
)
from isp.nn.msconv import MSConv2d
from isp.nn.tile_concat import TileConcatConv2d

__all__ = [
    "MSConv2d",
    "TileConcatConv2d",
    "ms_conv2d",
    "ms_conv2d_leaky_relu",
    "side_leaky_relu",
    "tile_and_concatenate",
    "tile_concat_conv2d",
]
