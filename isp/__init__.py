"""isp: metadata-aware raw denoising built on MSConv2d."""

__version__ = "0.1.0"
