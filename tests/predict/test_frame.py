"""One file through the training path and through the predict path: identical network inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from isp.data import DecodeCache, Pair, RawPairDataset
from isp.data.inputs import crop_inputs, model_inputs
from isp.predict import frame_inputs
from isp.raw import read


def _files(sample_root):
    noisy = sorted((sample_root / "test" / "noisy").glob("*.dng"))
    return [(n, sample_root / "test" / "clean" / n.name) for n in noisy]


@pytest.mark.parametrize("vector_scale", [1024.0, 64.0])
def test_contract_1_dataset_item_equals_predict_inputs(sample_root, tmp_path, vector_scale):
    pairs = [Pair(str(n), str(c), "test") for n, c in _files(sample_root)]
    ds = RawPairDataset(
        pairs, DecodeCache(tmp_path / "cache"), crop_size=None, train=False, vector_scale=vector_scale
    )
    for i, pair in enumerate(pairs):
        item = ds[i]
        x = frame_inputs(read(pair.noisy), vector_scale=vector_scale, version=1)
        for key in ("image", "row", "col", "scalar"):
            assert item[key].dtype == x[key].dtype == torch.float32
            torch.testing.assert_close(item[key], x[key][0], rtol=0, atol=0, msg=key)


def test_contract_2_scene_inputs_equal_predict_inputs(sample_root):
    for noisy, _ in _files(sample_root):
        frame = read(noisy)
        x = model_inputs(frame)  # what isp.data.scenes does with a frame it made, before cropping
        h, w = x.image.shape[1:]
        item = crop_inputs(x, 0, 0, h, w)
        y = frame_inputs(read(noisy), version=2)
        for key in ("image", "row", "col", "scalar"):
            np.testing.assert_array_equal(item[key], y[key][0].numpy(), err_msg=key)
