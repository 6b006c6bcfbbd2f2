"""Loading denoisers for prediction: weights_only, configs beside state dicts, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from isp.models import UNet
from isp.weights import CheckpointError, load_model

ARCH = {"class_path": "isp.models.UNet", "init_args": {"base_width": 4, "depth": 2, "conditioning": "none"}}


def _save(tmp_path, state, model=ARCH, name="w.pt", data=None):
    path = tmp_path / name
    torch.save(state, path)
    config = {"model": model, "data": data or {"vector_scale": 3.0}, "metrics": {"val_psnr": 40.0}}
    path.with_suffix(".json").write_text(json.dumps(config))
    return path


def _unet(seed=0, **kwargs):
    torch.manual_seed(seed)
    net = UNet(**{**ARCH["init_args"], **kwargs})
    nn.init.normal_(net.head.weight)
    return net


def test_state_dict_with_json_round_trips(tmp_path):
    net = _unet()
    loaded = load_model(_save(tmp_path, net.state_dict()))
    assert not loaded.net.training and loaded.model == ARCH
    assert loaded.data == {"vector_scale": 3.0} and loaded.info["metrics"] == {"val_psnr": 40.0}
    x = torch.rand(1, 4, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(loaded.net(x), net.eval()(x), rtol=0, atol=0)


def test_lightning_style_checkpoint_with_net_config_in_hparams(tmp_path):
    net = _unet(1)
    ckpt = {
        "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
        "hyper_parameters": {"net": ARCH, "loss": "l1", "_instantiator": "lightning.pytorch.cli.instantiate"},
        "datamodule_hyper_parameters": {"vector_scale": 2.0},
        "epoch": 3,
    }
    path = tmp_path / "last.ckpt"
    torch.save(ckpt, path)
    loaded = load_model(path)
    assert loaded.data["vector_scale"] == 2.0
    for (k, v), w in zip(net.state_dict().items(), loaded.net.state_dict().values(), strict=True):
        assert torch.equal(v, w), k


def test_other_architecture_names_file_and_mismatch(tmp_path):
    wider = _save(tmp_path, _unet(base_width=8).state_dict(), name="wide.pt")
    with pytest.raises(CheckpointError, match=r"wide\.pt.*do not fit.*base_width=4.*reshaped"):
        load_model(wider)
    conv = _save(tmp_path, nn.Conv2d(4, 4, 3).state_dict(), name="conv.pt")
    with pytest.raises(CheckpointError, match=r"conv\.pt.*missing.*unexpected"):
        load_model(conv)
    other = {"class_path": "os.system", "init_args": {}}
    foreign = _save(tmp_path, _unet().state_dict(), model=other, name="f.pt")
    with pytest.raises(CheckpointError, match="not one predict builds"):
        load_model(foreign)


class Payload:
    def __reduce__(self):
        return (print, ("executed pickled code",))


def test_pickled_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1), "x": Payload()}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt.*weights_only=True"):
        load_model(path)
    assert "executed" not in capsys.readouterr().out


def test_missing_config_and_missing_file(tmp_path):
    path = tmp_path / "bare.pt"
    torch.save(_unet().state_dict(), path)
    with pytest.raises(CheckpointError, match="which architecture"):
        load_model(path)
    with pytest.raises(CheckpointError, match="no such file"):
        load_model(tmp_path / "absent.ckpt")
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointError, match="found Tensor"):
        load_model(path)


@pytest.mark.slow
def test_real_train_py_checkpoint_loads_and_predicts(sample_root, tmp_path):
    import train

    ckpt_dir = tmp_path / "ckpt"
    config = Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"
    args = ["fit", "--config", str(config), "--trainer.max_epochs=1", "--trainer.check_val_every_n_epoch=1"]
    args += ["--trainer.logger=false", "--trainer.callbacks=[]", "--data.batch_size=4"]
    args += [f"--trainer.default_root_dir={tmp_path}"]  # the saved config.yaml goes there, not the cwd
    args += ["--trainer.enable_progress_bar=false", f"--checkpoint.dirpath={ckpt_dir}"]
    args += [f"--data.root={sample_root}", f"--data.cache_dir={tmp_path / 'cache'}", "--data.train_repeat=1"]
    args += ["--data.crop_size=16", "--data.eval_crop_size=null", "--data.vector_scale=32.0"]
    args += ["--model.net.init_args.base_width=4", "--model.net.init_args.depth=2"]
    train.main(args)
    loaded = load_model(ckpt_dir / "last.ckpt")
    assert loaded.model["init_args"]["base_width"] == 4 and loaded.model["init_args"]["depth"] == 2
    assert loaded.data["vector_scale"] == 32.0  # from the DataModule's saved hyperparameters
    raw = torch.load(ckpt_dir / "last.ckpt", weights_only=True)
    for k, v in loaded.net.state_dict().items():
        assert torch.equal(v, raw["state_dict"][f"net.{k}"]), k
