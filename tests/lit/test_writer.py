"""``trainer.predict`` with RawPredictionWriter writes what predict.py writes (real Lightning, real DNGs)."""

from __future__ import annotations

import json

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn

import predict
from isp.data import RawDataModule
from isp.lit import DenoiseModule
from isp.lit.writer import RawPredictionWriter
from isp.models import UNet
from isp.raw import read

ARCH = {"base_width": 4, "depth": 2}


def test_trainer_predict_writes_the_same_dngs_as_predict_py(sample_root, tmp_path, capfd):
    torch.manual_seed(0)
    net = UNet(**ARCH)
    nn.init.normal_(net.head.weight, std=0.05)
    ckpt = tmp_path / "w.pt"
    torch.save(net.state_dict(), ckpt)
    config = {"model": {"class_path": "isp.models.UNet", "init_args": ARCH}, "data": {"vector_scale": 64.0}}
    ckpt.with_suffix(".json").write_text(json.dumps(config))

    dm = RawDataModule(
        root=str(sample_root),
        source="sample",
        eval_crop_size=None,
        eval_batch_size=1,
        cache_dir=str(tmp_path / "cache"),
        generate=False,
        vector_scale=64.0,
    )
    writer = RawPredictionWriter(out_dir=tmp_path / "lightning")
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        callbacks=[writer],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.predict(DenoiseModule(net.eval(), num_previews=0), datamodule=dm, return_predictions=False)
    inputs = sorted((sample_root / "test" / "noisy").glob("*.dng"))
    assert writer.failures == [] and sorted(p.name for p in writer.written) == [p.name for p in inputs]

    # the Trainer runs float32 ("32-true"); predict.py's auto precision is bf16 on a CPU with AMX tiles
    cli = [*map(str, inputs), "--out-dir", str(tmp_path / "cli"), "--ckpt", str(ckpt), "--precision", "fp32"]
    assert predict.main(cli) == 0
    for src in inputs:  # the same function denoised the same whole frames: the same pixels
        a, b, x = read(tmp_path / "lightning" / src.name), read(tmp_path / "cli" / src.name), read(src)
        assert (a.cfa, a.active_area, a.metadata.iso) == (b.cfa, b.active_area, b.metadata.iso)
        np.testing.assert_array_equal(a.sensor, b.sensor)
        # every pixel is predicted, the border too (packing may drop one outer row / column)
        assert np.mean(a.mosaic[2:-2, 2:6] == x.mosaic[2:-2, 2:6]) < 0.1


def test_the_prediction_must_be_whole_frames(sample_root, tmp_path):
    writer = RawPredictionWriter(out_dir=tmp_path / "out")
    with pytest.raises(ValueError, match=r"list of \(frame, mosaic\)"):
        writer.write_on_batch_end(None, None, torch.rand(1, 4, 16, 16), [0], {}, 0)
    src = sorted((sample_root / "test" / "noisy").glob("*.dng"))[0]
    frame = read(src)
    writer.write_on_batch_end(None, None, [(frame, np.full((2, 2), 0.5, np.float32))], [0], {}, 0)
    assert writer.written == [] and len(writer.failures) == 1 and "visible shape" in writer.failures[0][1]
    with pytest.raises(ValueError, match="format"):
        RawPredictionWriter(out_dir=tmp_path, format="jpeg")
