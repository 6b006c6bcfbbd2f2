"""The shipped default model: loads without --ckpt, denoises, and tiles seamlessly."""

from __future__ import annotations

import json

import numpy as np
import torch

from isp.cli import predict
from isp.predict import denoise_frame
from isp.raw import RawMetadata, read, write_dng
from isp.weights import DEFAULT_CONFIG, DEFAULT_WEIGHTS, load_model


def _run(args, capfd):
    code = predict.main([str(a) for a in args])
    return code, capfd.readouterr().err


def test_default_model_denoises_without_ckpt(sample_root, tmp_path, capfd):
    noisy = [p for split in ("test", "val") for p in sorted((sample_root / split / "noisy").glob("*.dng"))]
    code, err = _run([*noisy, "--out-dir", tmp_path], capfd)
    assert code == 0, err
    gains = []
    for path in noisy:
        clean = read(path.parent.parent / "clean" / path.name).mosaic
        x, y = read(path).mosaic, read(tmp_path / path.name).mosaic
        psnr_in = -10 * np.log10(np.mean((np.clip(x, 0, 1) - np.clip(clean, 0, 1)) ** 2))
        psnr_out = -10 * np.log10(np.mean((np.clip(y, 0, 1) - np.clip(clean, 0, 1)) ** 2))
        gains.append(psnr_out - psnr_in)
    assert min(gains) > 0 and np.mean(gains) > 2, gains


def test_default_settings_tile_like_the_untiled_frame(tmp_path):
    # predict.py's defaults (--tile 1024 --overlap 192 mosaic pixels) on a frame of 2 x 2 tiles
    rng = np.random.default_rng(3)
    h, w, top, left = 1200, 1800, 8, 16
    yy, xx = np.mgrid[0:h, 0:w]
    clean = 600 + 3000 * (0.5 + 0.4 * np.sin(xx / 7.0) * np.cos(yy / 11.0))
    sensor = np.full((h + top, w + left), 512, np.uint16)
    noisy = np.rint(clean + rng.normal(0, 80, clean.shape))
    sensor[top:, left:] = np.clip(noisy, 0, 16383).astype(np.uint16)
    meta = RawMetadata(iso=3200.0, exposure_time=0.01)
    src = write_dng(
        tmp_path / "big.dng",
        sensor,
        cfa="GBRG",
        black_level=512,
        white_level=16383,
        active_area=(top, left, h + top, w + left),
        metadata=meta,
    )
    frame = read(src)
    loaded = load_model()
    parser = predict.build_parser()
    defaults = parser.parse_args(["x", "--out-dir", "y"])
    tile, overlap = defaults.tile // 2, defaults.overlap // 2  # packed pixels
    assert h // 2 > tile and w // 2 > tile  # really tiled in both directions
    tiled = denoise_frame(loaded.net, frame, data=loaded.data, tile=tile, overlap=overlap)
    whole = denoise_frame(loaded.net, frame, data=loaded.data, tile=4096, overlap=0)
    assert np.abs(whole - frame.mosaic).max() > 2e-3  # the model changes the image (noise std 5e-3)
    assert np.abs(tiled - whole).max() <= 1e-4


def test_shipped_files_are_small_and_documented():
    assert DEFAULT_WEIGHTS.stat().st_size <= 20 * 2**20
    config = json.loads(DEFAULT_CONFIG.read_text())
    assert config["model"]["class_path"] == "isp.models.UNet"
    assert config["metrics"]["val_raw_psnr"] > config["metrics"]["val_input_raw_psnr"]
    assert "configs/production.yaml" in config["training"]["command"]
    assert config["data"]["inputs_version"] == 2 and config["model"]["init_args"]["noise_map"]
    card = config["devset"]["physical"]  # the model card's dev-set results, per ISO x banding cell
    assert card["cases"] == 48 and card["isp"] > card["noisy"] and len(card["cells"]) == 6
    state = torch.load(DEFAULT_WEIGHTS, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
