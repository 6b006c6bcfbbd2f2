"""Shared fixtures for the whole test suite."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

#: Arguments of the session's sample set (small: about a second to write on two CPU cores).
SAMPLE_ARGS = {"n_train": 4, "n_val": 2, "n_test": 2, "size": (64, 96), "seed": 0}


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small sample dataset written once per test session by ``isp.data.synth.generate``.

    Treat it as read-only (other tests share it). Layout (``SAMPLE_ARGS``: 4 train, 2 val,
    2 test pairs, visible mosaic 64x96, seed 0)::

        ROOT/pairs.csv                     header ``noisy,clean,split``; paths relative to ROOT,
                                           e.g. ``train/noisy/train0000.dng``
        ROOT/synth.json                    generator arguments
        ROOT/{train,val,test}/clean/*.dng  ISO 100, noise-free scene (rounded to DN)
        ROOT/{train,val,test}/noisy/*.dng  same scene and DN brightness at ISO 100..25600

    Each DNG: uint16 sensor 72x112 = 8 masked rows on top + 16 masked columns at the left +
    the 64x96 active area; 14-bit-class levels from three virtual cameras (black 512 / white
    16383; black 400 / white 15520; per-position blacks 2046..2051 / white 15000); the CFA
    cycles RGGB, BGGR, GRBG, GBRG with the file index; EXIF ISO, exposure (noisy:
    ``t_clean * 100 / ISO``), f-number, focal length, date; as-shot WB and a colour matrix.
    The noisy files' masked pixels carry the same per-row banding noise as their visible rows.
    """
    from isp.data.synth import generate

    return generate(tmp_path_factory.mktemp("sample_data") / "sample", **SAMPLE_ARGS)


#: the architecture of the small random checkpoint of the predict.py tests
TINY = {"class_path": "isp.models.UNet", "init_args": {"base_width": 4, "depth": 2}}


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """A small random UNet (non-zero head so that it changes the image) as .pt + .json."""
    import torch
    from torch import nn

    from isp.models import UNet

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
