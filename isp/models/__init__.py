"""Plain ``nn.Module`` networks: the metadata-conditioned UNet and its conditioning blocks."""

from isp.models.conditioning import CONDITIONING, ConditionedConv2d
from isp.models.unet import UNet, UNetStage, count_parameters

__all__ = ["CONDITIONING", "ConditionedConv2d", "UNet", "UNetStage", "count_parameters"]
