"""A small fixed raw -> sRGB pipeline for metrics and previews.

Packed RGGB planes go back to a Bayer mosaic (``pixel_shuffle``), get the file's as-shot white
balance, a bilinear demosaic (kornia, ``CFA.BG`` = RGGB: kornia reads the pattern from pixel
(1, 1)), the file's camera -> linear sRGB matrix, a clamp to [0, 1] and the sRGB transfer curve
(kornia's ``linear_rgb_to_rgb`` does not clamp, so the clamp comes first). There is no tone
curve, highlight recovery or sharpening: the point is a faithful, differentiable view of the
data in the colour space people look at, the same for prediction and ground truth.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.color import CFA, linear_rgb_to_rgb, raw_to_rgb
from torch import Tensor, nn

__all__ = ["RawToSrgb", "raw_to_srgb"]


def _check_inputs(planes: Tensor, wb: Tensor, cam_to_srgb: Tensor) -> None:
    for name, value in (("planes", planes), ("wb", wb), ("cam_to_srgb", cam_to_srgb)):
        if not isinstance(value, Tensor):
            raise TypeError(f"Expected `{name}` to be a torch.Tensor. Got {type(value).__name__}.")
    if planes.ndim != 4 or planes.shape[1] != 4:
        raise ValueError(
            f"Expected `planes` of shape (N, 4, h, w) (R, Gr, Gb, B). Got {tuple(planes.shape)}."
        )
    n = planes.shape[0]
    if wb.shape != (n, 3):
        raise ValueError(f"Expected `wb` of shape ({n}, 3) to match `planes`. Got {tuple(wb.shape)}.")
    if cam_to_srgb.shape != (n, 3, 3):
        raise ValueError(
            f"Expected `cam_to_srgb` of shape ({n}, 3, 3) to match `planes`. Got {tuple(cam_to_srgb.shape)}."
        )


def raw_to_srgb(planes: Tensor, wb: Tensor, cam_to_srgb: Tensor) -> Tensor:
    """Render packed RGGB planes to display sRGB in [0, 1].

    Args:
        planes: ``(N, 4, h, w)`` packed planes in the order R, Gr, Gb, B, normalised so that 0 is
            black and 1 the white level (values outside [0, 1] are allowed).
        wb: ``(N, 3)`` as-shot white-balance multipliers R, G, B.
        cam_to_srgb: ``(N, 3, 3)`` white-balanced camera RGB -> linear sRGB matrix.

    Returns:
        ``(N, 3, 2h, 2w)`` sRGB image in [0, 1].

    Example:
        >>> planes = torch.full((1, 4, 2, 3), 0.25)
        >>> rgb = raw_to_srgb(planes, torch.ones(1, 3), torch.eye(3)[None])
        >>> rgb.shape
        torch.Size([1, 3, 4, 6])
        >>> round(rgb.mean().item(), 4)  # sRGB encoding of linear 0.25
        0.5371
    """
    _check_inputs(planes, wb, cam_to_srgb)
    dtype = planes.dtype
    wb = wb.to(dtype)
    gains = torch.stack([wb[:, 0], wb[:, 1], wb[:, 1], wb[:, 2]], dim=1)  # R, Gr, Gb, B
    mosaic = F.pixel_shuffle(planes * gains[:, :, None, None], 2)  # (N, 1, 2h, 2w), RGGB
    rgb = raw_to_rgb(mosaic, CFA.BG)
    rgb = torch.einsum("nck,nkhw->nchw", cam_to_srgb.to(dtype), rgb)
    return linear_rgb_to_rgb(rgb.clamp(0.0, 1.0))


class RawToSrgb(nn.Module):
    """Module form of :func:`raw_to_srgb` (no parameters).

    Shapes: ``planes (N, 4, h, w), wb (N, 3), cam_to_srgb (N, 3, 3) -> (N, 3, 2h, 2w)``.

    Example:
        >>> RawToSrgb()(torch.zeros(2, 4, 8, 8), torch.ones(2, 3), torch.eye(3).expand(2, 3, 3)).shape
        torch.Size([2, 3, 16, 16])
    """

    def forward(self, planes: Tensor, wb: Tensor, cam_to_srgb: Tensor) -> Tensor:
        """Render; see :func:`raw_to_srgb`."""
        return raw_to_srgb(planes, wb, cam_to_srgb)
