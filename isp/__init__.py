"""isp: metadata-aware raw denoising built on MSConv2d."""

from isp._memory import tune_memory  # imports no torch

__version__ = "0.1.0"
__all__ = ["tune_memory"]
