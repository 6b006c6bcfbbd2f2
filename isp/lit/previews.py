"""Side-by-side sRGB previews (noisy | denoised | clean) for TensorBoard.

TensorBoard reads a 4-channel image as RGBA, so the packed raw planes are always rendered to RGB
with :func:`isp.models.render.raw_to_srgb` first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["side_by_side"]


def side_by_side(*images: Tensor, max_height: int = 512, gap: int = 4) -> Tensor:
    """Put same-sized ``(3, H, W)`` images side by side, separated by white gaps.

    Images taller than ``max_height`` are shrunk first (area interpolation, aspect kept).

    Args:
        images: ``(3, H, W)`` RGB images in [0, 1].
        max_height: the preview's largest height.
        gap: width of the white separator in pixels.

    Returns:
        ``(3, H', k * W' + (k - 1) * gap)``.

    Example:
        >>> side_by_side(torch.zeros(3, 4, 5), torch.ones(3, 4, 5), gap=2).shape
        torch.Size([3, 4, 12])
    """
    if not images:
        raise ValueError("Expected at least one image. Got none.")
    shape = images[0].shape
    for image in images:
        if image.ndim != 3 or image.shape[0] != 3 or image.shape != shape:
            shapes = [tuple(i.shape) for i in images]
            raise ValueError(f"Expected images of one shape (3, H, W). Got {shapes}.")
    if max_height < 1 or gap < 0:
        raise ValueError(f"Expected `max_height` >= 1 and `gap` >= 0. Got {max_height} and {gap}.")
    h, w = shape[1:]
    stack = torch.stack(images)
    if h > max_height:
        size = (max_height, max(1, round(w * max_height / h)))
        stack = F.interpolate(stack, size=size, mode="area")
    pieces = []
    for i, image in enumerate(stack):
        if i:
            pieces.append(image.new_ones(3, image.shape[1], gap))
        pieces.append(image)
    return torch.cat(pieces, dim=2).clamp(0, 1)
