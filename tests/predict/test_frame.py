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


class _Halve(torch.nn.Module):
    """A stand-in denoiser whose output is known at every pixel: half its input planes."""

    def forward(self, image, row, col, scalar):
        return image * 0.5


@pytest.mark.parametrize("cfa", ["RGGB", "BGGR", "GRBG", "GBRG"])
@pytest.mark.parametrize("shape", [(40, 52), (41, 53)])
def test_denoise_frame_reaches_every_pixel_of_every_bayer_phase(cfa, shape):
    """No edge row or column is left as it came in (packing would crop one for three phases)."""
    from isp.predict import denoise_frame
    from isp.raw import frame_from_sensor

    rng = np.random.default_rng(3)
    sensor = rng.integers(600, 4000, size=(shape[0], shape[1] + 8), dtype=np.uint16)
    black = np.array([[500.0, 510.0], [520.0, 530.0]])
    frame = frame_from_sensor(
        sensor, cfa=cfa, black_level=black, white_level=4095, active_area=(0, 8, *shape)
    )
    out = denoise_frame(_Halve(), frame, data={"inputs_version": 1}, tile=16, overlap=4)
    assert out.shape == frame.mosaic.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, 0.5 * frame.mosaic, rtol=1e-6, atol=1e-7)
