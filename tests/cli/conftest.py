"""Fixtures of the predict.py tests: a small random checkpoint and copies of the sample inputs."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from torch import nn

from isp.models import UNet

TINY = {"class_path": "isp.models.UNet", "init_args": {"base_width": 4, "depth": 2}}


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """A small random UNet (non-zero head so that it changes the image) as .pt + .json."""
    torch.manual_seed(0)
    net = UNet(**TINY["init_args"])
    nn.init.normal_(net.head.weight, std=0.05)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save(net.state_dict(), path)
    path.with_suffix(".json").write_text(json.dumps({"model": TINY, "data": {"vector_scale": 64.0}}))
    return path


@pytest.fixture(scope="module")
def inputs(sample_root, tmp_path_factory):
    """Copies of the sample set's noisy test/val files (inputs must never be written)."""
    d = tmp_path_factory.mktemp("inputs")
    for split in ("test", "val"):
        for p in sorted((sample_root / split / "noisy").glob("*.dng")):
            shutil.copy(p, d / p.name)
    return d
