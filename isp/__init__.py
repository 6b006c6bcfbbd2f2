"""isp: metadata-aware raw denoising built on MSConv2d."""

__version__ = "0.1.0"

from isp._memory import tune_memory  # noqa: E402  (imports no torch)

__all__ = ["tune_memory"]
