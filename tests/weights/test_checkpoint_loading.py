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


# -- hostile or broken checkpoints: refused with a sentence, never built (issue 14, items 1 and 8) --


def test_a_nan_tensor_is_refused_naming_it(tmp_path):
    state = _unet().state_dict()
    state["head.weight"][0, 0, 0, 0] = float("nan")
    with pytest.raises(CheckpointError, match=r"nan\.pt.*'head\.weight'.*1 non-finite"):
        load_model(_save(tmp_path, state, name="nan.pt"))


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_a_non_finite_number_in_the_json_is_refused(tmp_path, literal):
    path = _save(tmp_path, _unet().state_dict())
    text = path.with_suffix(".json").read_text().replace('"vector_scale": 3.0', f'"vector_scale": {literal}')
    path.with_suffix(".json").write_text(text)
    with pytest.raises(CheckpointError, match=f"not valid JSON: it holds {literal}"):
        load_model(path)


@pytest.mark.parametrize(
    ("init_args", "match"),
    [
        ([4, 2], "init_args` must be a mapping.*got list"),
        ({"base_width": 10**6, "depth": 2}, r"init_args\.base_width must be an integer in \[0, 4096\]"),
        ({"base_width": 4, "depth": 40}, r"init_args\.depth must be an integer in \[0, 12\]"),
        ({"base_width": "4"}, r"init_args\.base_width must be an integer, got '4'"),
        ({"base_width": 4, "residual": 1}, r"init_args\.residual must be true or false"),
        ({"base_width": 4, "input_scale": float("inf")}, r"not valid JSON: it holds Infinity"),
        ({"base_width": 4, "evil": 1}, r"unknown argument 'evil'"),
        ({"base_width": 8, "depth": 2}, r"do not fit"),  # fits no tensor of the file: refused on meta
    ],
)
def test_bad_init_args_are_checkpoint_errors(tmp_path, init_args, match):
    model = {"class_path": "isp.models.UNet", "init_args": init_args}
    path = tmp_path / "w.pt"
    torch.save(_unet().state_dict(), path)
    path.with_suffix(".json").write_text(json.dumps({"model": model}, allow_nan=True))
    with pytest.raises(CheckpointError, match=match):
        load_model(path)


@pytest.mark.parametrize("device", ["cuda", "meta", "cpu"])
def test_device_and_dtype_in_init_args_are_ignored(tmp_path, device):
    net = _unet()
    model = {
        "class_path": "isp.models.UNet",
        "init_args": {**ARCH["init_args"], "device": device, "dtype": "float16"},
    }
    loaded = load_model(_save(tmp_path, net.state_dict(), model=model))
    p = next(loaded.net.parameters())
    assert p.device.type == "cpu" and p.dtype == torch.float32
    x = torch.rand(1, 4, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded.net(x), net.eval()(x), rtol=0, atol=0)


def _lightning(tmp_path, net, arch=ARCH, data=None):
    ckpt = {
        "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
        "hyper_parameters": {"net": arch},
        "datamodule_hyper_parameters": data or {"vector_scale": 2.0},
    }
    path = tmp_path / "run.ckpt"
    torch.save(ckpt, path)
    return path


def test_a_stray_json_beside_a_ckpt_cannot_change_its_architecture(tmp_path):
    path = _lightning(tmp_path, _unet())
    other = {"class_path": "isp.models.UNet", "init_args": {**ARCH["init_args"], "conditioning": "film"}}
    path.with_suffix(".json").write_text(json.dumps({"model": other}))
    with pytest.raises(CheckpointError, match=r"run\.ckpt.*run\.json.*another architecture.*conditioning"):
        load_model(path)
    path.with_suffix(".json").write_text(json.dumps({"data": {"vector_scale": 9.0}}))
    with pytest.raises(CheckpointError, match=r"data\.vector_scale=9\.0 but the checkpoint was trained"):
        load_model(path)
    # repeating the checkpoint's own settings (defaults spelled out or not) is fine
    spelled_out = {**ARCH["init_args"], "depth": 2, "residual": True}
    same = {"class_path": "isp.models.unet.UNet", "init_args": spelled_out}
    path.with_suffix(".json").write_text(json.dumps({"model": same, "data": {"vector_scale": 2.0}}))
    assert load_model(path).data["vector_scale"] == 2.0


def test_non_finite_init_args_in_a_ckpt_are_refused(tmp_path):
    arch = {"class_path": "isp.models.UNet", "init_args": {**ARCH["init_args"], "input_scale": float("inf")}}
    with pytest.raises(CheckpointError, match=r"init_args\.input_scale must be a finite number, got inf"):
        load_model(_lightning(tmp_path, _unet(), arch=arch))


def test_non_positive_vector_scale_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match=r"vector_scale must be a positive finite number, got 0"):
        load_model(_save(tmp_path, _unet().state_dict(), data={"vector_scale": 0}))


@pytest.mark.parametrize(
    ("inputs", "channels"), [("full", (2, 3, 4)), ("scalars", (0, 0, 4)), ("flat", (0, 0, 9))]
)
def test_a_side_inputs_wrapper_loads_and_sees_its_variants_inputs(tmp_path, inputs, channels):
    """The study's variants (isp.models.SideInputs around a UNet) load for prediction."""
    from isp.models import SideInputs

    row, col, scal = channels
    inner = _unet(2, row_channels=row, col_channels=col, scalar_channels=scal, conditioning="msconv")
    net = SideInputs(inner, inputs)
    inner_arch = {
        "class_path": "isp.models.UNet",
        "init_args": {
            **ARCH["init_args"],
            "row_channels": row,
            "col_channels": col,
            "scalar_channels": scal,
            "conditioning": "msconv",
        },
    }
    arch = {"class_path": "isp.models.SideInputs", "init_args": {"net": inner_arch, "inputs": inputs}}
    loaded = load_model(_lightning(tmp_path, net, arch=arch))
    assert isinstance(loaded.net, SideInputs) and loaded.net.inputs == inputs and not loaded.net.training
    x, r, c, s = torch.rand(2, 4, 8, 12), torch.randn(2, 2, 8), torch.randn(2, 3, 12), torch.randn(2, 4)
    with torch.no_grad():
        expected = inner.eval()(
            x,
            *{
                "full": (r, c, s),
                "scalars": (None, None, s),
                "flat": (None, None, torch.cat([s, r.mean(-1), c.mean(-1)], 1)),
            }[inputs],
        )
        torch.testing.assert_close(loaded.net(x, r, c, s), expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("init_args", "match"),
    [
        (
            {"net": {"class_path": "torch.nn.Identity"}, "inputs": "full"},
            r"must wrap one of.*torch\.nn\.Identity",
        ),
        ({"net": ARCH, "inputs": "rows"}, r"init_args\.inputs must be one of \['full', 'scalars', 'flat'\]"),
        ({"net": ARCH, "extra": 1}, r"unknown argument 'extra'"),
        ({"net": {"class_path": "isp.models.SideInputs", "init_args": {"net": ARCH}}}, r"must wrap one of"),
    ],
)
def test_a_bad_wrapper_is_a_checkpoint_error(tmp_path, init_args, match):
    from isp.models import SideInputs

    arch = {"class_path": "isp.models.SideInputs", "init_args": init_args}
    with pytest.raises(CheckpointError, match=r"run\.ckpt.*" + match):
        load_model(_lightning(tmp_path, SideInputs(_unet()), arch=arch))


def test_inputs_version_from_the_training_source():
    """Weights trained on `source: scenes` take contract 2 whatever their side channels."""
    from isp.models import SideInputs
    from isp.predict import inputs_version

    wrapped = SideInputs(_unet(scalar_channels=20), "flat")
    assert inputs_version(wrapped, {"source": "scenes"}) == 2
    assert inputs_version(wrapped, {"source": "synthetic"}) == 1
    assert inputs_version(_unet(row_channels=7, col_channels=5, scalar_channels=8), {}) == 2
    assert inputs_version(wrapped, {"source": "scenes", "inputs_version": 1}) == 1


def test_a_stray_json_beside_a_wrapper_ckpt_cannot_change_it(tmp_path):
    from isp.models import SideInputs

    arch = {"class_path": "isp.models.SideInputs", "init_args": {"net": ARCH, "inputs": "full"}}
    path = _lightning(tmp_path, SideInputs(_unet()), arch=arch)
    other = {"class_path": "isp.models.SideInputs", "init_args": {"net": ARCH, "inputs": "scalars"}}
    path.with_suffix(".json").write_text(json.dumps({"model": other}))
    with pytest.raises(CheckpointError, match=r"run\.json.*another architecture.*init_args"):
        load_model(path)
    path.with_suffix(".json").write_text(json.dumps({"model": arch}))
    assert load_model(path).net.inputs == "full"
