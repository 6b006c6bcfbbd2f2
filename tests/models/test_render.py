"""isp.models.render against an independent numpy reference (per-pixel bilinear demosaic)."""

import numpy as np
import pytest
import torch

from isp.models.render import RawToSrgb, raw_to_srgb


def _reference(planes, wb, m):
    """Per-image numpy reference: unpack RGGB, WB, bilinear demosaic (kornia's border rules:
    replicate for R/B, reflect for G), matrix, clip, sRGB curve."""
    _, h, w = planes.shape
    H, W = 2 * h, 2 * w
    mos = np.zeros((H, W))
    mos[0::2, 0::2] = planes[0] * wb[0]
    mos[0::2, 1::2] = planes[1] * wb[1]
    mos[1::2, 0::2] = planes[2] * wb[1]
    mos[1::2, 1::2] = planes[3] * wb[2]
    r_s = mos[0::2, 0::2]  # R sample grid: (2i, 2j)
    b_s = mos[1::2, 1::2]  # B sample grid: (2i+1, 2j+1)

    def interp(samples, y, x, off):
        # position in sample coordinates, clamped to the grid (replicate)
        fy, fx = (y - off) / 2.0, (x - off) / 2.0
        y0, x0 = int(np.floor(fy)), int(np.floor(fx))
        ty, tx = fy - y0, fx - x0

        def s(i, j):
            return samples[min(max(i, 0), h - 1), min(max(j, 0), w - 1)]

        return (
            (1 - ty) * (1 - tx) * s(y0, x0)
            + (1 - ty) * tx * s(y0, x0 + 1)
            + ty * (1 - tx) * s(y0 + 1, x0)
            + ty * tx * s(y0 + 1, x0 + 1)
        )

    def refl(i, n):
        return -i if i < 0 else (2 * (n - 1) - i if i >= n else i)

    rgb = np.zeros((3, H, W))
    for y in range(H):
        for x in range(W):
            rgb[0, y, x] = interp(r_s, y, x, 0)
            rgb[2, y, x] = interp(b_s, y, x, 1)
            if (y + x) % 2 == 1:  # green site
                rgb[1, y, x] = mos[y, x]
            else:
                rgb[1, y, x] = 0.25 * (
                    mos[refl(y - 1, H), x]
                    + mos[refl(y + 1, H), x]
                    + mos[y, refl(x - 1, W)]
                    + mos[y, refl(x + 1, W)]
                )
    lin = np.clip(np.einsum("ck,khw->chw", m, rgb), 0, 1)
    return np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)


def _inputs(n=2, h=3, w=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    planes = torch.rand(n, 4, h, w, generator=g, dtype=torch.float64) * 0.6 - 0.05
    wb = torch.tensor([[2.1, 1.0, 1.6], [1.4, 1.0, 2.3]], dtype=torch.float64)[:n]
    m = torch.tensor([[1.7, -0.5, -0.2], [-0.3, 1.5, -0.2], [0.05, -0.45, 1.4]], dtype=torch.float64)
    cam = torch.stack([m, m.flip(0).flip(1)])[:n]
    return planes, wb, cam


def test_matches_numpy_reference():
    planes, wb, cam = _inputs()
    out = raw_to_srgb(planes, wb, cam)
    assert out.shape == (2, 3, 6, 10)
    for i in range(2):
        ref = _reference(planes[i].numpy(), wb[i].numpy(), cam[i].numpy())
        np.testing.assert_allclose(out[i].numpy(), ref, atol=1e-6)


def test_flat_grey_and_white_balance():
    # a flat raw (after WB) renders to the sRGB value of the flat colour everywhere
    wb = torch.tensor([[2.0, 1.0, 4.0]])
    planes = torch.tensor([0.1, 0.2, 0.2, 0.05]).view(1, 4, 1, 1).expand(1, 4, 4, 4)
    out = raw_to_srgb(planes, wb, torch.eye(3)[None])
    expected = 1.055 * 0.2 ** (1 / 2.4) - 0.055
    torch.testing.assert_close(out, torch.full_like(out, expected))


def test_module_matches_function_and_clamps():
    planes, wb, cam = _inputs(seed=1)
    planes = planes * 5 - 1  # far outside [0, 1]
    out = RawToSrgb()(planes, wb, cam)
    torch.testing.assert_close(out, raw_to_srgb(planes, wb, cam))
    assert out.min() >= 0 and out.max() <= 1
    assert torch.isclose(out, torch.ones_like(out)).any() and (out == 0).any()


def test_bad_inputs():
    planes, wb, cam = _inputs()
    with pytest.raises(ValueError, match="planes"):
        raw_to_srgb(planes[:, :3], wb, cam)
    with pytest.raises(ValueError, match="wb"):
        raw_to_srgb(planes, wb[:1], cam)
    with pytest.raises(ValueError, match="cam_to_srgb"):
        raw_to_srgb(planes, wb, cam[:, :2])
    with pytest.raises(TypeError, match="planes"):
        raw_to_srgb(planes.numpy(), wb, cam)
