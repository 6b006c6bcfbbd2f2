"""The study harness: true noise replay, side-input variants, aggregation, and a tiny end-to-end study."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from isp.data.datamodule import RawDataModule
from isp.data.transforms import center_crop_params
from isp.data.window import frame_window
from isp.experiments.ablation import (
    VARIANTS,
    SideInputs,
    StudyConfig,
    build_net,
    make_test_set,
    run_study,
    side_inputs,
    true_noise_params,
)
from isp.experiments.report import aggregate, answers, markdown_report
from isp.noise import SyntheticNoise, get_profile, synthesize
from isp.raw import frame_from_sensor
from isp.raw.pack import pack


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from isp.data import synth

    root = tmp_path_factory.mktemp("abl")
    synth.generate(root / "data", n_train=2, n_val=1, n_test=1, size=(48, 64), seed=0)
    dm = RawDataModule(
        root=str(root / "data"),
        source="synthetic",
        manifest="pairs.csv",
        noise=SyntheticNoise(),
        cache_dir=str(root / "cache"),
        crop_size=8,
    )
    dm.prepare_data()
    return root, dm


def test_true_noise_params_regenerate_the_test_image_bit_for_bit(tiny_data):
    _, dm = tiny_data
    items = make_test_set(dm.pairs(), dm.cache, isos=(800.0, 6400.0), crop_size=None)
    assert len(items) == 2
    for ds, i in items:
        params, iso, dn_range = true_noise_params(ds, i)
        item = ds[i]
        assert iso == pytest.approx(float(item["iso"]))
        frame = ds.cache.load_frame(ds.pairs[i].clean, ds.keys[ds.pairs[i].clean])
        assert dn_range == pytest.approx(frame.white_level - np.mean(frame.black_level))
        # jittered: not the calibration's median
        median = get_profile("SonyA7S2").params(iso, dn_range=dn_range)
        assert params.gain == pytest.approx(median.gain)
        assert params.read_scale != pytest.approx(median.read_scale, rel=1e-3)
        # replay the item's generator up to the pixel noise, then synthesise with the parameters on
        # the sensor window under the (whole-frame) crop, as the dataset does
        rng = np.random.default_rng([ds.seed, i])
        ds.noise.sample_iso(rng)
        get_profile("SonyA7S2").params(iso, dn_range=dn_range, rng=rng)
        shape = ds.cache.load(ds.pairs[i].clean, ds.keys[ds.pairs[i].clean]).planes.shape[1:]
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


def test_side_inputs_variants():
    row, col = torch.rand(2, 5, 6), torch.rand(2, 5, 4)
    scalar = torch.rand(2, 5)
    assert side_inputs(row, col, scalar, "full") == (row, col, scalar)
    assert side_inputs(row, col, scalar, "scalars") == (None, None, scalar)
    r, c, s = side_inputs(row, col, scalar, "flat")
    assert r is None and c is None
    torch.testing.assert_close(s, torch.cat([scalar, row.mean(-1), col.mean(-1)], 1))
    with pytest.raises(ValueError, match="`inputs`"):
        side_inputs(row, col, scalar, "rows")
    with pytest.raises(ValueError, match="`inputs`"):
        SideInputs(torch.nn.Identity(), "rows")


def test_every_variant_builds_and_only_reads_its_inputs():
    x, row, col, scalar = torch.rand(2, 4, 8, 8), torch.rand(2, 5, 8), torch.rand(2, 5, 8), torch.rand(2, 5)
    for name, variant in VARIANTS.items():
        torch.manual_seed(0)
        net = build_net(variant, base_width=4, depth=1)
        for p in net.parameters():  # a non-zero head, so the side inputs can show in the output
            torch.nn.init.normal_(p, std=0.3)
        y = net(x, row, col, scalar)
        y_row = net(x, row + 1.0, col, scalar)
        y_scalar = net(x, row, col, scalar + 1.0)
        reads_row = not torch.allclose(y, y_row)
        reads_scalar = not torch.allclose(y, y_scalar)
        assert reads_row == (variant.inputs in ("full", "flat") and variant.conditioning != "none"), name
        assert reads_scalar == (variant.conditioning != "none"), name


def _study(deltas, stds):
    """A hand-made study: msconv / tile_concat per-seed means given directly."""

    def runs(values):
        return [
            {
                "seed": s,
                "step_time_s": 0.1,
                "per_image": [{"bucket": "iso_le400", "iso": 100.0, "psnr_raw": v, "psnr_srgb": v - 10}],
            }
            for s, v in enumerate(values)
        ]

    a = [40.0 + deltas + d for d in (-stds, 0.0, stds)]
    b = [40.0 + d for d in (-stds, 0.0, stds)]
    return {
        "config": {"groups": ["all", "iso_le400"]},
        "baselines": {
            "bm3d_vst": {
                "per_image": [{"bucket": "iso_le400", "iso": 100.0, "psnr_raw": 38.5, "psnr_srgb": 28.0}]
            }
        },
        "variants": {
            "msconv": {"parameters": 10, "runs": runs(a)},
            "tile_concat": {"parameters": 12, "runs": runs(b)},
        },
    }


def test_answers_apply_the_two_sigma_rule():
    near = answers(_study(0.1, 0.2))["msconv_vs_tile_concat"]["psnr_raw"]
    assert near["delta"] == pytest.approx(0.1) and near["pooled_seed_std"] == pytest.approx(0.2)
    assert near["within_noise"] is True
    assert near["paired"][:2] == [pytest.approx(0.1), pytest.approx(0.0, abs=1e-9)]
    far = answers(_study(1.0, 0.2))["msconv_vs_tile_concat"]["psnr_raw"]
    assert far["within_noise"] is False
    bm = answers(_study(1.0, 0.2))["over_bm3d"]["psnr_raw"]
    assert bm["all"] == pytest.approx(41.0 - 38.5)
    agg = aggregate(_study(0.0, 0.5))
    assert agg["msconv"]["all"]["psnr_raw"] == [pytest.approx(40.0), pytest.approx(0.5), 3]


def test_tiny_study_end_to_end(tiny_data):
    root, _ = tiny_data
    out = root / "out"
    cfg = StudyConfig(
        out=str(out),
        data_root=str(root / "data"),
        cache_dir=str(root / "cache"),
        variants=("msconv", "tile_concat"),
        seeds=(0, 1),
        steps=2,
        batch_size=2,
        crop_size=8,
        base_width=4,
        depth=1,
        n_train=2,
        n_test=1,
        size=(48, 64),
        test_crop=None,
        test_isos=(200.0, 12800.0),
        threads=1,
    )
    study = run_study(cfg, command="python -m isp.experiments.ablation --tiny", log=lambda s: None)
    doc = json.loads((out / "results.json").read_text())
    assert set(doc["variants"]) == {"msconv", "tile_concat"}
    assert set(doc["step_benchmark"]) == {"msconv", "tile_concat"}
    assert all(0 < v < 10 for v in doc["step_benchmark"].values())
    runs = {name: {r["seed"]: r for r in v["runs"]} for name, v in doc["variants"].items()}
    # same seed: the same training batches for both variants; another seed: other batches
    assert runs["msconv"][0]["data_fingerprint"] == runs["tile_concat"][0]["data_fingerprint"]
    assert runs["msconv"][0]["data_fingerprint"] != runs["msconv"][1]["data_fingerprint"]
    for name in runs:
        seed_means = [np.mean([r["psnr_raw"] for r in runs[name][s]["per_image"]]) for s in (0, 1)]
        mean, std, n = doc["aggregate"][name]["all"]["psnr_raw"]
        assert n == 2 and mean == pytest.approx(np.mean(seed_means))
        assert std == pytest.approx(np.std(seed_means, ddof=1))
        assert [r["iso"] for r in runs[name][0]["per_image"]] == [200.0, 12800.0]
    noisy = doc["baselines"]["noisy"]["per_image"]
    bm3d = doc["baselines"]["bm3d_vst"]["per_image"]
    assert bm3d[1]["psnr_raw"] > noisy[1]["psnr_raw"] + 0.5  # BM3D helps at ISO 12800
    md = (out / "results.md").read_text()
    assert "python -m isp.experiments.ablation --tiny" in md
    d = doc["answers"]["msconv_vs_tile_concat"]["psnr_raw"]
    assert f"{d['delta']:+.2f} dB" in md and "Is msconv within noise" in md
    assert md == markdown_report(study) + "\n"
    with Image.open(out / "results_psnr_vs_iso.png") as im:
        assert im.size == (1000, 640) and im.mode == "RGB"
        assert len(np.unique(np.asarray(im).reshape(-1, 3), axis=0)) > 5  # something was drawn
    # resume: nothing is retrained, the numbers are kept
    again = run_study(cfg, command="x", resume=True, log=lambda s: None)
    assert again["variants"]["msconv"]["runs"][1]["train_seconds"] == runs["msconv"][1]["train_seconds"]
    assert not math.isnan(again["variants"]["msconv"]["runs"][0]["step_time_s"])


def test_a_seed_not_every_variant_finished_is_left_out_of_the_tables():
    study = _study(0.1, 0.2)
    extra = {
        "seed": 7,
        "step_time_s": 0.1,
        "per_image": [{"bucket": "iso_le400", "iso": 100.0, "psnr_raw": 99.0, "psnr_srgb": 99.0}],
    }
    study["variants"]["msconv"]["runs"].append(extra)
    study["config"]["groups"] = ["all", "iso_le400"]
    assert aggregate(study)["msconv"]["all"]["psnr_raw"][2] == 3  # seed 7 ignored
    assert aggregate(study)["msconv"]["all"]["psnr_raw"][0] == pytest.approx(40.1)
    assert "msconv seed 7" in markdown_report(study)
