"""Camera colour: XYZ -> camera matrices to camera -> sRGB matrices and back.

The maths is dcraw's / LibRaw's ``cam_xyz_coeff``: with ``M`` the file's XYZ -> camera matrix
(DNG ``ColorMatrix``, rawpy ``rgb_xyz_matrix``) and ``S`` the standard linear sRGB -> XYZ (D65)
matrix (IEC 61966-2-1), ``C = M @ S`` maps sRGB to camera RGB. Normalising each row of ``C`` to
sum 1 makes sRGB white map to camera RGB (1, 1, 1), i.e. to white-balanced camera white, and
``cam_to_srgb = inv(C_normalised)`` then has rows summing to 1.

:func:`auto_white_balance` is dcraw's automatic white balance (``scale_colors``, dcraw 9.28), which
dcraw, LibRaw and RawTherapee apply where a camera recorded "auto" without the multipliers it chose.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SRGB_TO_XYZ", "auto_white_balance", "cam_to_srgb_from_xyz", "xyz_to_cam_from_cam_to_srgb"]

#: Linear sRGB -> CIE XYZ, D65 white (IEC 61966-2-1).
SRGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)


def cam_to_srgb_from_xyz(xyz_to_cam: np.ndarray) -> np.ndarray | None:
    """White-balanced camera RGB -> linear sRGB from an XYZ -> camera matrix.

    Args:
        xyz_to_cam: ``(3, 3)`` (or ``(4, 3)``, first three rows used) XYZ -> camera RGB.

    Returns:
        ``(3, 3)`` float64 matrix whose rows sum to 1, or ``None`` when ``xyz_to_cam`` is all
        zeros or singular (the file carries no usable colour matrix).

    Example:
        >>> m = cam_to_srgb_from_xyz(np.linalg.inv(SRGB_TO_XYZ))  # a camera that sees sRGB
        >>> np.allclose(m, np.eye(3))
        True
    """
    m = np.asarray(xyz_to_cam, dtype=np.float64)[:3, :3]
    if not np.any(m):
        return None
    srgb_to_cam = m @ SRGB_TO_XYZ
    sums = srgb_to_cam.sum(axis=1, keepdims=True)
    if np.any(np.abs(sums) < 1e-12):
        return None
    srgb_to_cam = srgb_to_cam / sums
    if abs(np.linalg.det(srgb_to_cam)) < 1e-12:
        return None
    return np.linalg.inv(srgb_to_cam)


def xyz_to_cam_from_cam_to_srgb(cam_to_srgb: np.ndarray) -> np.ndarray:
    """The inverse path: an XYZ -> camera matrix that :func:`cam_to_srgb_from_xyz` maps back.

    The per-row scale of the XYZ -> camera matrix is lost by the normalisation, so the result is
    scaled globally so that D65 white maps to a largest camera value of 1 (DNG's convention).

    Args:
        cam_to_srgb: ``(3, 3)`` white-balanced camera RGB -> linear sRGB, rows summing to 1.

    Returns:
        ``(3, 3)`` float64 XYZ -> camera matrix.

    Example:
        >>> c = np.array([[1.6, -0.5, -0.1], [-0.2, 1.4, -0.2], [0.0, -0.4, 1.4]])
        >>> np.allclose(cam_to_srgb_from_xyz(xyz_to_cam_from_cam_to_srgb(c)), c)
        True
    """
    c = np.asarray(cam_to_srgb, dtype=np.float64)
    if c.shape != (3, 3):
        raise ValueError(f"Expected `cam_to_srgb` of shape (3, 3). Got {c.shape}.")
    if not np.allclose(c.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError(f"Expected `cam_to_srgb` rows to sum to 1. Got row sums {c.sum(axis=1).tolist()}.")
    if abs(np.linalg.det(c)) < 1e-12:
        raise ValueError("Expected an invertible `cam_to_srgb`. Got a singular matrix.")
    m = np.linalg.inv(c) @ np.linalg.inv(SRGB_TO_XYZ)
    white = m @ SRGB_TO_XYZ.sum(axis=1)  # camera response to D65 white (XYZ of sRGB (1, 1, 1))
    return m / white.max()


def auto_white_balance(
    visible: np.ndarray, cfa: str, black_level: np.ndarray, white_level: float, *, block: int = 8
) -> np.ndarray | None:
    """Grey-world multipliers R, G, B (G = 1) of a Bayer mosaic, as dcraw computes them.

    dcraw's ``scale_colors`` sums the black-subtracted values of each colour over ``block x block``
    blocks, leaving out every block that holds a value above ``white_level - 25`` (clipped), and
    takes each colour's multiplier as 1 / its mean. LibRaw reports a camera white balance whose
    first value is -1 for files whose camera chose it automatically without recording it (the
    Canon EOS D30's CRW); dcraw, LibRaw and RawTherapee then render with these multipliers.

    Args:
        visible: ``(H, W)`` raw values in DN of the visible area (H, W >= ``block``).
        cfa: "RGGB", "BGGR", "GRBG" or "GBRG": the colours of its top-left 2x2, row-major.
        black_level: ``(2, 2)`` black level per position of the top-left 2x2, in DN.
        white_level: saturation level in DN.
        block: side of the blocks (even; dcraw: 8).

    Returns:
        ``(3,)`` float64 multipliers with G = 1, or ``None`` when no unclipped block holds signal
        in every colour.

    Example:
        >>> mosaic = np.tile(np.array([[464, 264], [264, 164]]), (16, 16))  # R G / G B, black 64
        >>> mosaic[:8, :8] = 4095  # a clipped block is left out
        >>> auto_white_balance(mosaic, "RGGB", np.full((2, 2), 64.0), 4095)
        array([0.5, 1. , 2. ])
    """
    visible = np.asarray(visible)
    if visible.ndim != 2 or min(visible.shape) < block or block < 2 or block % 2:
        raise ValueError(
            f"Expected `visible` (H, W) of at least `block` x `block` and an even `block`. "
            f"Got shape {visible.shape}, block {block}."
        )
    h, w = (visible.shape[0] // block) * block, (visible.shape[1] // block) * block
    values = visible[:h, :w].astype(np.float64)
    kept = values.reshape(h // block, block, w // block, block).max(axis=(1, 3)) <= white_level - 25
    black = np.asarray(black_level, dtype=np.float64).reshape(2, 2)
    sums = {c: 0.0 for c in "RGB"}
    counts = {c: 0 for c in "RGB"}
    half = block // 2
    for i, colour in enumerate(cfa):
        dy, dx = divmod(i, 2)
        plane = np.clip(values[dy::2, dx::2] - black[dy, dx], 0, None)
        per_block = plane.reshape(h // block, half, w // block, half).sum(axis=(1, 3))
        sums[colour] += float(per_block[kept].sum())
        counts[colour] += int(kept.sum()) * half * half
    if min(sums.values()) <= 0:
        return None
    mul = np.array([counts[c] / sums[c] for c in "RGB"])
    return mul / mul[1]
