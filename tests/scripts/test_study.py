"""scripts/study.py and scripts/study_report.py: the conditioning study through the Lightning CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from isp.data.datamodule import RawDataModule
from isp.data.transforms import center_crop_params
from isp.data.window import frame_window
from isp.noise import SyntheticNoise, get_profile, synthesize
from isp.raw import frame_from_sensor
from isp.raw.pack import pack

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import study  # noqa: E402
import study_report  # noqa: E402


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from isp.data import synth

    root = tmp_path_factory.mktemp("study")
    synth.generate(root / "data", n_train=2, n_val=1, n_test=1, size=(48, 64), seed=0)
    return root


def test_true_noise_params_regenerate_the_test_image_bit_for_bit(tiny_data):
    dm = RawDataModule(
        root=str(tiny_data / "data"),
        source="synthetic",
        manifest="pairs.csv",
        noise=SyntheticNoise(),
        cache_dir=str(tiny_data / "cache"),
        crop_size=8,
    )
    dm.prepare_data()
    parts = study.fixed_iso_test_set(dm, [800.0, 6400.0]).datasets
    assert [len(ds) for ds in parts] == [1, 1]
    for ds in parts:
        params, iso, dn_range = study.true_noise_params(ds, 0)
        item = ds[0]
        assert iso == pytest.approx(float(item["iso"])) and iso in (800.0, 6400.0)
        frame = ds.cache.load_frame(ds.pairs[0].clean, ds.keys[ds.pairs[0].clean])
        assert dn_range == pytest.approx(frame.white_level - np.mean(frame.black_level))
        median = get_profile("SonyA7S2").params(iso, dn_range=dn_range)
        assert params.read_scale != pytest.approx(median.read_scale, rel=1e-3)  # jittered
        # replay the item's generator up to the pixel noise, then synthesise with the parameters
        rng = np.random.default_rng([ds.seed, 0])
        ds.noise.sample_iso(rng)
        get_profile("SonyA7S2").params(iso, dn_range=dn_range, rng=rng)
        shape = ds.cache.load(ds.pairs[0].clean, ds.keys[ds.pairs[0].clean]).planes.shape[1:]
        crop = center_crop_params(shape, None)
        win = frame_window(frame, crop.top, crop.left, crop.height, crop.width)
        sensor = synthesize(
            np.asarray(win.sensor, np.float32),
            iso=iso,
            black_level=win.black_level,
            white_level=win.white_level,
            active_area=win.active_area,
            rng=rng,
            params=params,
        )
        again = frame_from_sensor(
            sensor,
            cfa=win.cfa,
            black_level=win.black_level,
            white_level=win.white_level,
            active_area=win.active_area,
        )
        np.testing.assert_array_equal(pack(again)[0], item["image"].numpy())


def test_tiny_study_end_to_end(tiny_data):
    out = tiny_data / "out"
    tiny = [
        "--data.crop_size",
        "8",
        "--data.eval_crop_size",
        "null",
        "--data.batch_size",
        "2",
        "--data.train_repeat",
        "1",
        "--model.net.init_args.net.init_args.base_width",
        "4",
        "--model.net.init_args.net.init_args.depth",
        "1",
    ]
    argv = [
        "--out",
        str(out),
        "--work",
        str(tiny_data / "work"),
        "--variants",
        "msconv",
        "tile_concat",
        "--seeds",
        "0",
        "1",
        "--steps",
        "2",
        "--n-train",
        "2",
        "--n-test",
        "1",
        "--size",
        "48",
        "64",
        "--test-isos",
        "200",
        "12800",
        "--",
        *tiny,
    ]
    result = study.main(argv)
    doc = json.loads((out / "results.json").read_text())
    assert set(doc["variants"]) == {"msconv", "tile_concat"} and doc["config"]["test_isos"] == [
        200.0,
        12800.0,
    ]
    for name, variant in doc["variants"].items():
        assert [r["seed"] for r in variant["runs"]] == [0, 1] and all(
            r["steps"] == 2 for r in variant["runs"]
        )
        mean, std, n = doc["summary"][name]["raw_psnr"]
        values = [r["metrics"]["test/raw_psnr"] for r in variant["runs"]]
        assert (
            n == 2 and mean == pytest.approx(np.mean(values)) and std == pytest.approx(np.std(values, ddof=1))
        )
    noisy = doc["summary"]["noisy"]["per_iso"]
    bm3d = doc["summary"]["bm3d_vst"]["per_iso"]
    assert bm3d[1][0] > noisy[1][0] + 0.5  # BM3D helps at ISO 12800
    md = (out / "results.md").read_text()
    assert "python scripts/study.py --out" in md and "tile_concat" in md and "2-sigma rule" in md
    assert md == study_report.markdown(result) + "\n"
    with Image.open(out / "results_psnr_vs_iso.png") as im:
        assert im.size == (1000, 640) and im.mode == "RGB"
        assert len(np.unique(np.asarray(im).reshape(-1, 3), axis=0)) > 5  # something was drawn


def _hand_made(delta, std):
    def runs(values):
        return [
            {"seed": s, "train_seconds": 1.0, "metrics": {"test/raw_psnr": v, "test/iso_le400/raw_psnr": v}}
            for s, v in enumerate(values)
        ]

    offsets = (-std, 0.0, std)
    return {
        "config": {"command": "x", "test_isos": [100.0], "setup": []},
        "baselines": {
            "noisy": {"label": "noisy", "metrics": {"test/raw_psnr": 30.0, "test/iso_le400/raw_psnr": 30.0}}
        },
        "variants": {
            "msconv": {
                "label": "msconv",
                "parameters": 10,
                "description": "",
                "runs": runs([40 + o for o in offsets]),
            },
            "film": {
                "label": "film",
                "parameters": 12,
                "description": "",
                "runs": runs([40 + delta + o for o in offsets]),
            },
        },
    }


def test_differences_apply_the_two_sigma_rule_and_partial_seeds_are_left_out():
    near = study_report.paired(_hand_made(0.1, 0.2), "film", "msconv")
    assert near["delta"] == pytest.approx(0.1) and near["pooled_seed_std"] == pytest.approx(0.2)
    assert near["within_noise"] and near["paired"] == pytest.approx([0.1, 0.1, 0.1])
    assert not study_report.paired(_hand_made(1.0, 0.2), "film", "msconv")["within_noise"]
    s = _hand_made(0.0, 0.5)
    s["variants"]["msconv"]["runs"].append(
        {"seed": 7, "train_seconds": 1.0, "metrics": {"test/raw_psnr": 99.0}}
    )
    assert study_report.summary(s)["msconv"]["raw_psnr"] == pytest.approx((40.0, 0.5, 3))
    assert "msconv seed 7" in study_report.markdown(s)
