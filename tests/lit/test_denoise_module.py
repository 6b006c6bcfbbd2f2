"""isp.lit.DenoiseModule with a real Trainer: metrics against numpy, ISO buckets, previews,
predict_step (whole files), optimisers, a short training run."""

import copy
import glob

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lightning import Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import DataLoader, Dataset

from isp.lit import DenoiseModule, denoise_loss, iso_bucket_index, iso_bucket_names, side_by_side
from isp.models import UNet
from isp.models.render import raw_to_srgb

ISOS = [100.0, 800.0, 1600.0, 3200.0, 25600.0, 0.0, 400.0, 12800.0]


class TinyPairs(Dataset):
    """Contract-shaped pairs: smooth clean planes, Gaussian noise growing with ISO."""

    def __init__(self, n=8, size=24, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for i in range(n):
            low = torch.rand(1, 4, size // 4, size // 4, generator=g) * 0.6 + 0.1
            clean = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)[0]
            iso = ISOS[i % len(ISOS)]
            sigma = 0.05 + 0.1 * np.log2(max(iso, 100) / 100) / 8
            noisy = clean + sigma * torch.randn(clean.shape, generator=g)
            self.items.append(
                {
                    "image": noisy.float(),
                    "target": clean.float(),
                    "row": torch.randn(5, size, generator=g) * 0.1,
                    "col": torch.randn(5, size, generator=g) * 0.1,
                    "scalar": torch.tensor([np.log2(max(iso, 100) / 100), -5, 0, float(iso > 0), 1]).float(),
                    "wb": torch.tensor([2.0, 1.0, 1.5]),
                    "cam_to_srgb": torch.tensor([[1.6, -0.4, -0.2], [-0.2, 1.4, -0.2], [0.0, -0.5, 1.5]]),
                    "iso": torch.tensor(iso),
                    "path": f"img{i}.dng",
                }
            )

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _psnr(a, b):
    mse = ((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2).reshape(len(a), -1).mean(1)
    return 10 * np.log10(1 / mse)


def _trainer(tmp_path, **kw):
    args = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": tmp_path,
    }
    args.update(kw)
    return Trainer(**args)


def _stack(ds, keys=("image", "target", "wb", "cam_to_srgb", "iso")):
    return {k: torch.stack([it[k] for it in ds.items]) for k in keys}


def test_validation_metrics_match_numpy(tmp_path):
    ds = TinyPairs(n=6)
    module = DenoiseModule(UNet(base_width=4, depth=2, conditioning="film"))  # identity at init
    (res,) = _trainer(tmp_path).validate(module, DataLoader(ds, batch_size=4))
    b = _stack(ds)
    noisy, clean = b["image"].numpy(), b["target"].numpy()
    ref = _psnr(noisy, clean).mean()  # mean over images, not pooled (batches 4 + 2)
    pooled = 10 * np.log10(1 / ((np.clip(noisy, 0, 1) - np.clip(clean, 0, 1)) ** 2).mean())
    assert abs(ref - pooled) > 0.01  # the two definitions differ on this data
    assert res["val/raw_psnr"] == pytest.approx(ref, abs=1e-3)
    assert res["val/input_raw_psnr"] == pytest.approx(ref, abs=1e-3)
    srgb = [raw_to_srgb(b[k], b["wb"], b["cam_to_srgb"]).numpy() for k in ("image", "target")]
    assert res["val/srgb_psnr"] == pytest.approx(_psnr(*srgb).mean(), abs=1e-3)
    assert res["val/input_srgb_psnr"] == pytest.approx(res["val/srgb_psnr"], abs=1e-4)
    assert 0 < res["val/raw_ssim"] < 1 and 0 < res["val/srgb_ssim"] < 1
    assert res["val/loss"] == pytest.approx(np.abs(noisy - clean).mean(), rel=1e-4)


def test_iso_buckets_at_test_time(tmp_path):
    ds = TinyPairs(n=8)
    module = DenoiseModule(UNet(base_width=4, depth=2, conditioning="none"), iso_buckets=[400, 1600, 6400])
    (res,) = _trainer(tmp_path).test(module, DataLoader(ds, batch_size=3))
    b = _stack(ds)
    psnr = _psnr(b["image"].numpy(), b["target"].numpy())
    iso = b["iso"].numpy()
    groups = {
        "iso_le400": (iso > 0) & (iso <= 400),
        "iso_le1600": (iso > 400) & (iso <= 1600),
        "iso_le6400": (iso > 1600) & (iso <= 6400),
        "iso_gt6400": iso > 6400,
        "iso_unknown": iso == 0,
    }
    for name, mask in groups.items():
        assert res[f"test/{name}/count"] == mask.sum()
        assert res[f"test/{name}/raw_psnr"] == pytest.approx(psnr[mask].mean(), abs=1e-3)
        assert res[f"test/{name}/input_raw_psnr"] == pytest.approx(psnr[mask].mean(), abs=1e-3)
    assert res["test/raw_psnr"] == pytest.approx(psnr.mean(), abs=1e-3)
    # a bucket without images is not logged
    (res,) = _trainer(tmp_path).test(module, DataLoader(torch.utils.data.Subset(ds, [0, 6]), batch_size=2))
    assert "test/iso_le400/raw_psnr" in res and not any(k.startswith("test/iso_gt6400") for k in res)


def test_iso_bucket_helpers():
    assert iso_bucket_names([400, 1600]) == ["iso_le400", "iso_le1600", "iso_gt1600", "iso_unknown"]
    idx = iso_bucket_index(torch.tensor([50.0, 400, 401, 1600, 1601, 0]), [400, 1600])
    assert idx.tolist() == [0, 0, 1, 1, 2, 3]
    with pytest.raises(ValueError, match="iso_buckets"):
        iso_bucket_names([1600, 400])


def test_short_training_run_improves_and_logs_previews(tmp_path):
    torch.manual_seed(0)
    train, val = TinyPairs(n=16, size=16, seed=1), TinyPairs(n=4, size=16, seed=2)
    module = DenoiseModule(
        UNet(base_width=8, depth=2, conditioning="film"),
        optimizer=lambda p: torch.optim.Adam(p, lr=3e-3),
        num_previews=2,
    )
    logger = TensorBoardLogger(tmp_path, name="tb")
    trainer = _trainer(
        tmp_path, max_epochs=40, logger=logger, log_every_n_steps=1, check_val_every_n_epoch=20
    )
    before = _trainer(tmp_path).validate(copy.deepcopy(module), DataLoader(val, batch_size=4))[0]
    trainer.fit(module, DataLoader(train, batch_size=8, shuffle=True), DataLoader(val, batch_size=4))
    after = trainer.callback_metrics
    assert float(after["val/raw_psnr"]) > before["val/raw_psnr"] + 1.0
    assert float(after["val/loss"]) < before["val/loss"]
    assert float(after["val/input_raw_psnr"]) == pytest.approx(before["val/input_raw_psnr"], abs=1e-4)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = glob.glob(str(tmp_path / "tb" / "version_*" / "events.out.tfevents.*"))
    acc = EventAccumulator(events, size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    assert {"val/preview_0", "val/preview_1"} <= set(acc.Tags()["images"])
    assert "val/preview_2" not in acc.Tags()["images"]
    losses = [e.value for e in acc.Scalars("train/loss_step")]
    assert np.mean(losses[-8:]) < 0.9 * np.mean(losses[:8])
    assert len(acc.Images("val/preview_0")) == 2  # one per validation epoch, none at sanity check
    # the last preview is noisy | denoised | clean sRGB, RGB (not RGBA), 3 panels + 2 gaps wide
    import io

    from PIL import Image

    last = acc.Images("val/preview_0")[-1]
    img = np.asarray(Image.open(io.BytesIO(last.encoded_image_string)))
    assert img.shape == (32, 3 * 32 + 2 * 4, 3)
    b = _stack(val)
    module.eval()
    with torch.no_grad():
        pred = module.denoise(_stack(val, ("image", "row", "col", "scalar")))
    strip = side_by_side(
        *(raw_to_srgb(t[:1], b["wb"][:1], b["cam_to_srgb"][:1])[0] for t in (b["image"], pred, b["target"]))
    )
    np.testing.assert_allclose(img / 255.0, strip.permute(1, 2, 0).numpy(), atol=2 / 255)


def test_predict_step_denoises_whole_files_as_predict_does(sample_root):
    from isp.predict import denoise_file

    torch.manual_seed(0)
    net = UNet(base_width=4, depth=1, conditioning="film").eval()
    torch.nn.init.normal_(net.head.weight, std=0.1)
    paths = [str(p) for p in sorted((sample_root / "test" / "noisy").glob("*.dng"))]
    out = DenoiseModule(net).predict_step({"path": paths, "scalar": torch.zeros(len(paths), 5)}, 0)
    assert len(out) == len(paths)
    for path, (frame, mosaic) in zip(paths, out, strict=True):
        assert frame.path == path and mosaic.shape == frame.mosaic.shape
        np.testing.assert_array_equal(mosaic, denoise_file(net, path)[1])
    with pytest.raises(ValueError, match="path"):
        DenoiseModule(net).predict_step({"image": torch.zeros(1, 4, 8, 8)}, 0)


def test_hparams_leave_out_the_module_and_a_checkpoint_loads_back(tmp_path):
    net = UNet(base_width=4, depth=1, conditioning="film")
    module = DenoiseModule(net, loss="l2", optimizer=lambda p: torch.optim.SGD(p, lr=0.1), num_previews=0)
    assert "net" not in module.hparams and "optimizer" not in module.hparams
    assert module.hparams["loss"] == "l2"
    trainer = _trainer(tmp_path, max_steps=1, limit_val_batches=0)
    trainer.fit(module, DataLoader(TinyPairs(n=2), batch_size=2))
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = DenoiseModule.load_from_checkpoint(
        tmp_path / "m.ckpt", net=UNet(base_width=4, depth=1, conditioning="film")
    )
    assert loaded.loss == "l2"
    for key, value in module.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)


def test_optimizer_and_scheduler_from_callables():
    module = DenoiseModule(
        UNet(base_width=2, depth=1, conditioning="none"),
        optimizer=lambda p: torch.optim.SGD(p, lr=0.5),
        scheduler=lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.1),
        scheduler_interval="step",
    )
    cfg = module.configure_optimizers()
    assert isinstance(cfg["optimizer"], torch.optim.SGD) and cfg["optimizer"].defaults["lr"] == 0.5
    assert cfg["lr_scheduler"]["interval"] == "step"
    plateau = DenoiseModule(
        UNet(base_width=2, depth=1, conditioning="none"),
        scheduler=lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, mode="max"),
    ).configure_optimizers()
    assert plateau["lr_scheduler"]["monitor"] == "val/raw_psnr"
    assert "net" not in module.hparams and module.hparams["loss"] == "l1"


def test_losses_and_bad_arguments():
    a, b = torch.zeros(1, 1, 2, 2), torch.tensor([0.0, 0.1, -0.3, 0.6]).view(1, 1, 2, 2)
    assert denoise_loss(a, b, "l1").item() == pytest.approx(0.25)
    assert denoise_loss(a, b, "l2").item() == pytest.approx((0.01 + 0.09 + 0.36) / 4)
    expected = np.mean(np.sqrt(np.array([0.0, 0.1, -0.3, 0.6]) ** 2 + 1e-6))
    assert denoise_loss(a, b, "charbonnier").item() == pytest.approx(expected, rel=1e-5)
    two = torch.stack([torch.full((1, 2, 2), 0.1), torch.full((1, 2, 2), 0.01)])
    # per-image PSNRs 20 and 40 dB -> loss -30 (pooled MSE would give -22.9)
    assert denoise_loss(torch.zeros_like(two), two, "psnr").item() == pytest.approx(-30.0, abs=1e-3)
    net = UNet(base_width=2, depth=1, conditioning="none")
    with pytest.raises(ValueError, match="loss"):
        DenoiseModule(net, loss="huber")
    with pytest.raises(ValueError, match="scheduler_interval"):
        DenoiseModule(net, scheduler_interval="batch")
    with pytest.raises(TypeError, match="net"):
        DenoiseModule("unet")


def test_init_weights_copies_the_shipped_model_and_rejects_another_architecture():
    import json

    from isp.lit.module import DenoiseModule
    from isp.models import UNet
    from isp.weights import DEFAULT_CONFIG, load_model

    args = json.loads(DEFAULT_CONFIG.read_text())["model"]["init_args"]
    module = DenoiseModule(UNet(**args), init_weights="default")
    shipped = load_model().net.state_dict()
    for name, value in module.net.state_dict().items():
        assert torch.equal(value, shipped[name]), name
    with pytest.raises(ValueError, match="init_weights.*default"):
        DenoiseModule(UNet(**{**args, "base_width": 8}), init_weights="default")


def test_a_fine_tuned_checkpoint_loads_without_its_starting_weights(tmp_path):
    import json

    arch = {"base_width": 4, "depth": 1, "conditioning": "film"}
    start = tmp_path / "start.pt"  # exported weights: a state dict with its architecture beside it
    torch.save(UNet(**arch).state_dict(), start)
    start.with_suffix(".json").write_text(
        json.dumps({"model": {"class_path": "isp.models.UNet", "init_args": arch}})
    )
    tuned = DenoiseModule(UNet(**arch), init_weights=str(start))
    assert "init_weights" not in tuned.hparams
    trainer = _trainer(tmp_path, max_steps=1, limit_val_batches=0)
    trainer.fit(tuned, DataLoader(TinyPairs(n=2), batch_size=2))
    trainer.save_checkpoint(tmp_path / "tuned.ckpt")
    start.unlink()
    loaded = DenoiseModule.load_from_checkpoint(tmp_path / "tuned.ckpt", net=UNet(**arch))
    for key, value in tuned.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)


def test_init_weights_adds_a_line_view_to_a_net_without_one(tmp_path):
    import json

    arch = {"base_width": 4, "depth": 1}
    start = tmp_path / "start.pt"
    torch.save(UNet(**arch).state_dict(), start)
    start.with_suffix(".json").write_text(
        json.dumps({"model": {"class_path": "isp.models.UNet", "init_args": arch}})
    )
    base = UNet(**arch)
    base.load_state_dict(torch.load(start))
    tuned = DenoiseModule(UNet(**arch, line_features=2), init_weights=str(start))
    for name, value in base.state_dict().items():
        assert torch.equal(tuned.net.state_dict()[name], value), name
    x = torch.rand(1, 4, 8, 8)
    torch.testing.assert_close(tuned.net(x), base(x), rtol=0, atol=0)
    # the other way round is still refused: dropping trained layers is not fine-tuning
    torch.save(tuned.net.state_dict(), start)
    start.with_suffix(".json").write_text(
        json.dumps({"model": {"class_path": "isp.models.UNet", "init_args": {**arch, "line_features": 2}}})
    )
    with pytest.raises(ValueError, match="init_weights"):
        DenoiseModule(UNet(**arch), init_weights=str(start))


def test_bf16_autocast_steps_run_the_image_channels_last():
    # oneDNN's bf16 convolutions are slow in the contiguous layout: under CPU bf16 autocast
    # (Lightning's bf16-mixed) the module hands the net a channels-last image; float32 keeps it as is
    torch.manual_seed(0)
    module = DenoiseModule(UNet(base_width=4, depth=2), num_previews=0)
    torch.nn.init.normal_(module.net.head.weight, std=0.05)  # zero-initialised: output = input
    item = TinyPairs(n=1)[0]
    batch = {k: item[k][None] for k in ("image", "row", "col", "scalar")}
    seen = []
    module.net.register_forward_pre_hook(
        lambda m, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last))
    )
    full = module.denoise(batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = module.denoise(batch)
    assert seen == [False, True]
    change = (full - batch["image"]).abs().max()
    assert change > 1e-3 and (low.float() - full).abs().max() < 0.05 * change  # the same denoiser
