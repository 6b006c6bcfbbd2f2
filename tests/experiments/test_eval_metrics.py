"""The study's per-image metrics: independent formulas and the training module's own numbers."""

import math

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics.image import StructuralSimilarityIndexMeasure

from isp.experiments.evaluate import bucket_names, bucket_of, image_metrics, mean_std
from isp.lit import DenoiseModule


def _batch(n=4, h=12, w=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(n, 4, h, w, generator=g) * 0.6 + 0.1
    noisy = target + 0.08 * torch.randn(n, 4, h, w, generator=g) * torch.linspace(0.5, 2, n).view(n, 1, 1, 1)
    wb = torch.stack([torch.tensor([2.0, 1.0, 1.6])] * n)
    cam = torch.tensor([[1.7, -0.6, -0.1], [-0.2, 1.5, -0.3], [0.05, -0.5, 1.45]]).expand(n, 3, 3).clone()
    return noisy, target, wb, cam


def test_raw_psnr_is_per_image_and_clipped():
    noisy, target, wb, cam = _batch()
    m = image_metrics(noisy, target, wb, cam)
    for i in range(noisy.shape[0]):
        mse = float(((noisy[i].double().clamp(0, 1) - target[i].double()) ** 2).mean())
        assert m["psnr_raw"][i].item() == pytest.approx(-10 * math.log10(mse), rel=1e-6)
        one = slice(i, i + 1)
        ssim = StructuralSimilarityIndexMeasure(data_range=1.0)(noisy[one].clamp(0, 1), target[one])
        assert m["ssim_raw"][i].item() == pytest.approx(ssim.item(), abs=1e-5)
    # the images differ in noise level, so their PSNRs differ: a pooled PSNR would not equal the mean
    assert m["psnr_raw"].std() > 1.0


def test_bad_shapes_raise():
    noisy, target, wb, cam = _batch()
    with pytest.raises(ValueError, match="same shape"):
        image_metrics(noisy[:, :3], target[:, :3], wb, cam)
    with pytest.raises(TypeError, match="torch.Tensor"):
        image_metrics(noisy.numpy(), target, wb, cam)


class _Shrink(nn.Module):
    """A fixed 'denoiser' that is not the identity: pulls values toward 0.4."""

    def forward(self, image, row=None, col=None, scalar=None):
        return 0.7 * image + 0.12


def test_same_numbers_as_the_training_module():
    """DenoiseModule.test (real Lightning) logs the same means as the per-image metrics here."""
    noisy, target, wb, cam = _batch(n=6)
    iso = torch.tensor([100.0, 400.0, 800.0, 3200.0, 6400.0, 25600.0])
    items = [
        {
            "image": noisy[i],
            "target": target[i],
            "row": torch.zeros(5, 12),
            "col": torch.zeros(5, 16),
            "scalar": torch.zeros(5),
            "wb": wb[i],
            "cam_to_srgb": cam[i],
            "iso": iso[i],
            "path": f"x{i}",
        }
        for i in range(6)
    ]
    module = DenoiseModule(_Shrink(), num_previews=0)
    trainer = L.Trainer(
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        accelerator="cpu",
        devices=1,
    )
    logged = trainer.test(module, DataLoader(items, batch_size=4), verbose=False)[0]
    pred = _Shrink()(noisy)
    mine = image_metrics(pred, target, wb, cam)
    for key, theirs in (
        ("psnr_raw", "test/raw_psnr"),
        ("ssim_raw", "test/raw_ssim"),
        ("psnr_srgb", "test/srgb_psnr"),
        ("ssim_srgb", "test/srgb_ssim"),
    ):
        assert mine[key].mean().item() == pytest.approx(logged[theirs], abs=2e-4), key
    buckets = [bucket_of(float(v)) for v in iso]
    assert buckets == ["iso_le400", "iso_le400", "iso_le1600", "iso_le6400", "iso_le6400", "iso_gt6400"]
    for name in bucket_names():
        sel = [i for i, b in enumerate(buckets) if b == name]
        assert mine["psnr_raw"][sel].mean().item() == pytest.approx(logged[f"test/{name}/raw_psnr"], abs=2e-4)


def test_mean_std_uses_sample_std():
    assert mean_std([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2.0)))
    assert mean_std([5.0]) == (5.0, 0.0)
    assert all(np.isnan(mean_std([])))
