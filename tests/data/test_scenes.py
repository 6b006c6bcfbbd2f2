from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from isp.data import RawDataModule
from isp.data.scenes import SceneDataset, SceneMix, find_files
from isp.noise.camera import CameraNoise

CONTENT = Path(__file__).resolve().parents[2].parent / "shared" / "content"


@pytest.fixture()
def photos(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(tmp_path / f"p{i}.png")
    (tmp_path / "skip_me.png").write_bytes((tmp_path / "p0.png").read_bytes())
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_find_files_filters_extensions_and_excludes(photos):
    found = find_files([photos], (".png",), exclude=["skip_me"])
    assert [Path(f).name for f in found] == ["p0.png", "p1.png", "p2.png"]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        find_files([photos / "nowhere"], (".png",))


def test_items_follow_the_batch_contract_and_the_target_is_the_clean_scene(photos):
    ds = SceneDataset(SceneMix(images=[photos], weights=(1, 0, 0)), CameraNoise(), crop_size=16, length=8)
    item = ds[0]
    assert item["image"].shape == item["target"].shape == (4, 16, 16)
    assert item["row"].shape == (7, 16) and item["col"].shape == (5, 16) and item["scalar"].shape == (8,)
    noise = (item["image"] - item["target"]).std()
    assert 0 < noise < 0.5 and item["target"].min() >= 0
    assert torch.isfinite(item["image"]).all()


def test_evaluation_items_are_fixed_and_training_items_fresh(photos):
    mix = SceneMix(images=[photos], weights=(1, 0, 1))
    val = SceneDataset(mix, CameraNoise(), crop_size=16, length=4, train=False, seed=3)
    torch.testing.assert_close(val[2]["image"], val[2]["image"])
    train = SceneDataset(mix, CameraNoise(), crop_size=16, length=4, train=True)
    assert not torch.equal(train[0]["target"], val[0]["target"])


def test_dead_leaves_alone_need_no_files():
    mix = SceneMix()
    assert mix.weights.tolist() == [0.0, 0.0, 1.0]
    x = SceneDataset(mix, CameraNoise(), crop_size=16, length=1)[0]
    assert x["target"].mean() > 0


def test_datamodule_source_scenes(photos):
    dm = RawDataModule(
        source="scenes",
        scenes=SceneMix(images=[photos]),
        crop_size=16,
        eval_crop_size=24,
        batch_size=2,
        epoch_size=4,
        eval_size=2,
    )
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 4, 16, 16)
    assert next(iter(dm.val_dataloader()))["image"].shape == (2, 4, 24, 24)
    with pytest.raises(ValueError, match="scenes"):
        RawDataModule(source="scenes")


@pytest.mark.skipif(not CONTENT.is_dir(), reason="../shared/content is absent (a user's clone)")
def test_shared_photographs_are_found():
    assert len(SceneMix(images=[CONTENT]).images) == 314


def test_reference_noise_stays_in_the_target():
    mix = SceneMix()
    plain = SceneDataset(mix, CameraNoise(), crop_size=32, length=1, train=False, seed=5)
    grainy = SceneDataset(mix, CameraNoise(), crop_size=32, length=1, train=False, seed=5, reference_noise=1.0)
    a, b = plain[0]["target"], grainy[0]["target"]
    diff = (b - a).numpy()
    # the residual noise is white and small: a scene's base-ISO grain, not a change of the scene
    assert 1e-4 < diff.std() < 1e-2 and abs(diff.mean()) < 0.2 * diff.std()
    with pytest.raises(ValueError, match="reference_noise"):
        SceneDataset(mix, CameraNoise(), reference_noise=2.0)


def test_targets_saturate_at_white_like_a_sensor():
    ds = SceneDataset(SceneMix(), CameraNoise(), crop_size=32, length=8, train=False, level=(0.5, 0.9))
    items = [ds[i] for i in range(8)]
    assert max(float(x["target"].max()) for x in items) <= 1.0
    assert any(float(x["target"].max()) == 1.0 for x in items)  # bright scenes do reach the clip


def test_npy_mosaics_are_clean_raw_scenes_drawn_at_every_cfa_phase(tmp_path):
    # one value per colour: R 0.1, G(top) 0.2, G(bottom) 0.3, B 0.4 at RGGB (0, 0)
    mosaic = np.tile(np.array([[0.1, 0.2], [0.3, 0.4]], np.float16), (60, 80))
    np.save(tmp_path / "scene.npy", mosaic)
    mix = SceneMix(raws=[tmp_path], weights=(0, 1, 0))
    assert [Path(f).name for f in mix.raws] == ["scene.npy"] and mix.weights.tolist() == [0, 1, 0]
    first = {"RGGB": 0.1, "GRBG": 0.2, "GBRG": 0.3, "BGGR": 0.4}
    seen = set()
    for seed in range(16):
        crop, cfa, _, _ = mix.draw(20, np.random.default_rng(seed))
        assert crop.shape == (20, 20) and crop.dtype == np.float32
        # the label names the colour at (0, 0), and the crop is the stored mosaic itself
        assert crop[0, 0] == pytest.approx(first[cfa], abs=1e-3)
        np.testing.assert_allclose(crop[:2, :2], crop[2:4, 2:4])
        seen.add(cfa)
    assert seen == set(first)


def test_a_stored_decimated_mosaic_is_the_raw_files_decimation(tmp_path, raw_writer):
    from isp.data.scenes import decimated_mosaic, load_mosaic

    path = raw_writer(tmp_path / "clean.dng", iso=100, exposure=0.01, seed=0)
    m = decimated_mosaic(path)
    assert m.shape == (20, 28) and m.dtype == np.float32 and m.min() >= 0
    # an independent reference: the mean of each 2x2 block of same-colour pixels of the visible area
    from isp.raw import read

    full = read(path).mosaic
    np.testing.assert_allclose(m[0, 0], full[0:4:2, 0:4:2].mean(), rtol=1e-5)
    np.testing.assert_allclose(m[1, 1], full[1:4:2, 1:4:2].mean(), rtol=1e-5)
    np.save(tmp_path / "clean.npy", m.astype(np.float16))
    np.testing.assert_allclose(load_mosaic(tmp_path / "clean.npy"), m, rtol=1e-3, atol=1e-6)
    stored = str((tmp_path / "clean.npy").resolve())
    np.testing.assert_allclose(SceneMix(raws=[stored])._raw(stored), load_mosaic(stored))
    np.save(tmp_path / "odd.npy", np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="even sides"):
        load_mosaic(tmp_path / "odd.npy")


def test_wide_crops_take_long_rows_of_every_kind_of_scene(tmp_path):
    # a portrait photo and a portrait mosaic: a wide crop turns them so that its rows are theirs
    photo = np.zeros((200, 60, 3), np.uint8)
    photo[:, :, 1] = np.linspace(0, 255, 200, dtype=np.uint8)[:, None]  # a ramp down the photo
    Image.fromarray(photo).save(tmp_path / "portrait.png")
    mosaic = np.tile(np.array([[0.1, 0.2], [0.3, 0.4]], np.float16), (100, 30))  # 200 x 60
    np.save(tmp_path / "portrait.npy", mosaic)
    first = {"RGGB": (0.1,), "GRBG": (0.2, 0.3), "GBRG": (0.2, 0.3), "BGGR": (0.4,)}
    for weights in ((1, 0, 0), (0, 1, 0), (0, 0, 1)):
        mix = SceneMix(images=[tmp_path], raws=[tmp_path], weights=weights)
        for seed in range(4):
            crop, cfa, _, _ = mix.draw((20, 150), np.random.default_rng(seed))
            assert crop.shape == (20, 150) and crop.dtype == np.float32
            if weights[1]:  # the turned mosaic is still the stored Bayer pattern, not resampled
                # (turning swaps the two greens: either one is green at a G phase)
                assert any(crop[0, 0] == pytest.approx(v, abs=1e-3) for v in first[cfa])
                np.testing.assert_allclose(crop[:, :2], crop[:, 2:4])
            if weights[0]:  # the photo's ramp now runs along the rows: no upsampled 60-pixel width
                green = crop[(0 if cfa in ("GRBG", "GBRG") else 1) :: 2, 0::2]
                assert np.ptp(green.mean(axis=0)) > 5 * np.ptp(green.mean(axis=1))


def test_wide_training_crops_follow_the_batch_contract(photos):
    mix = SceneMix(images=[photos], weights=(1, 0, 1))
    item = SceneDataset(mix, CameraNoise(), crop_size=(16, 40), length=2)[0]
    assert item["image"].shape == item["target"].shape == (4, 16, 40)
    assert item["row"].shape == (7, 16) and item["col"].shape == (5, 40)
    dm = RawDataModule(source="scenes", scenes=mix, crop_size=[16, 40], eval_crop_size=24, batch_size=2)
    assert next(iter(dm.train_dataloader()))["image"].shape == (2, 4, 16, 40)
    assert next(iter(dm.val_dataloader()))["image"].shape[-2:] == (24, 24)
    for bad in ((16, 4), (16,), 0, "wide"):
        with pytest.raises(ValueError, match="crop_size"):
            SceneDataset(mix, CameraNoise(), crop_size=bad)
        if bad != (16, 4):
            with pytest.raises(ValueError, match="crop_size"):
                RawDataModule(source="scenes", scenes=mix, crop_size=bad)
