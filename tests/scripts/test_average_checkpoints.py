"""scripts/average_checkpoints.py: the mean of a run's checkpoints, loadable like any checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from isp.models import UNet
from isp.weights import load_model

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import average_checkpoints  # noqa: E402

NET = {"class_path": "isp.models.UNet", "init_args": {"base_width": 4, "depth": 2}}


def _ckpt(path: Path, seed: int, step: int, net: dict = NET) -> UNet:
    """A checkpoint laid out as train.py's (Lightning's) with a random UNet."""
    torch.manual_seed(seed)
    model = UNet(**net["init_args"])
    torch.save(
        {
            "state_dict": {f"net.{k}": v for k, v in model.state_dict().items()},
            "hyper_parameters": {"net": net, "loss": "psnr"},
            "datamodule_hyper_parameters": {"vector_scale": 64.0},
            "global_step": step,
            "epoch": step // 10,
            "optimizer_states": [{"state": {}}],
        },
        path,
    )
    return model


def test_the_average_is_the_mean_of_every_weight_and_loads(tmp_path):
    nets = [_ckpt(tmp_path / f"s{i}.ckpt", seed=i, step=10 * (i + 1)) for i in range(3)]
    out = average_checkpoints.main(
        [*(str(tmp_path / f"s{i}.ckpt") for i in range(3)), "--out", str(tmp_path / "m.ckpt")]
    )
    loaded = load_model(out)  # the loader predict.py and score.py use (weights_only=True)
    got = loaded.net.state_dict()
    for key in nets[0].state_dict():
        mean = sum(n.state_dict()[key].double() for n in nets) / 3
        torch.testing.assert_close(got[key].double(), mean, rtol=0, atol=1e-7, msg=key)
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["global_step"] == 30 and "optimizer_states" not in ckpt
    assert loaded.data["vector_scale"] == 64.0


def test_refuses_different_networks_and_a_single_file(tmp_path):
    _ckpt(tmp_path / "a.ckpt", 0, 1)
    _ckpt(
        tmp_path / "b.ckpt",
        1,
        2,
        {"class_path": "isp.models.UNet", "init_args": {"base_width": 8, "depth": 2}},
    )
    with pytest.raises(SystemExit):
        average_checkpoints.main(
            [str(tmp_path / "a.ckpt"), str(tmp_path / "b.ckpt"), "--out", str(tmp_path / "m.ckpt")]
        )
    with pytest.raises(ValueError, match="do not match"):
        average_checkpoints.average([tmp_path / "a.ckpt", tmp_path / "b.ckpt"])
    with pytest.raises(ValueError, match="at least two"):
        average_checkpoints.average([tmp_path / "a.ckpt"])
    with pytest.raises(SystemExit):
        average_checkpoints.main(
            [str(tmp_path / "a.ckpt"), str(tmp_path / "a.ckpt"), "--out", str(tmp_path / "a.ckpt")]
        )
    assert not (tmp_path / "m.ckpt").exists()
