"""Plain ``nn.Module`` networks: the metadata-conditioned UNet and its conditioning blocks."""

from isp.models.conditioning import CONDITIONING, ConditionedConv2d, Conditioning, PaddingMode
from isp.models.side_inputs import SideInputs
from isp.models.unet import UNet, UNetStage, count_parameters

__all__ = [
    "CONDITIONING",
    "Conditioning",
    "ConditionedConv2d",
    "PaddingMode",
    "SideInputs",
    "UNet",
    "UNetStage",
    "count_parameters",
]
