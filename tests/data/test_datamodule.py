import shutil

import numpy as np
import pytest
import torch

from isp.data import RawDataModule
from isp.data.cache import MissingDataError
from isp.data.dataset import VECTOR_SCALE, RawPairDataset
from isp.data.scalars import scalars
from isp.data.sources import manifest_pairs
from isp.noise import SyntheticNoise
from isp.raw import noise_vectors, read

# independent of isp.raw.pack: rows / columns to drop so the mosaic starts with R
SCALE = np.array([VECTOR_SCALE] * 4 + [1.0])[:, None]  # vector channels 0-3 scaled, validity not
PHASE = {"RGGB": (0, 0), "GRBG": (0, 1), "GBRG": (1, 0), "BGGR": (1, 1)}


def rggb_mosaic(frame):
    dy, dx = PHASE[frame.cfa]
    m = np.asarray(frame.mosaic)[dy:, dx:]
    return m[: m.shape[0] // 2 * 2, : m.shape[1] // 2 * 2]


def pack_rggb(m):
    return np.stack([m[0::2, 0::2], m[0::2, 1::2], m[1::2, 0::2], m[1::2, 1::2]])


def per_line(vec):
    """(5, n) vectors -> per mosaic line offset and spread (2n,)."""
    off, spr = np.empty(2 * vec.shape[1]), np.empty(2 * vec.shape[1])
    off[0::2], spr[0::2], off[1::2], spr[1::2] = vec[0], vec[1], vec[2], vec[3]
    return off, spr


def reference_indices(shape, top, left, size, hflip, vflip, transpose):
    """Mosaic (Y, X) of a crop: flip the mosaic window, drop the first line to restore RGGB."""
    ys, xs = np.indices(shape)
    t, le, n = 2 * top, 2 * left, 2 * size
    ys, xs = (
        ys[t : t + n + 2 * vflip, le : le + n + 2 * hflip],
        xs[t : t + n + 2 * vflip, le : le + n + 2 * hflip],
    )
    if hflip:
        ys, xs = ys[:, ::-1][:, 1 : n + 1], xs[:, ::-1][:, 1 : n + 1]
    if vflip:
        ys, xs = ys[::-1][1 : n + 1], xs[::-1][1 : n + 1]
    return (ys.T, xs.T) if transpose else (ys, xs)


def test_val_batches_are_the_files(sample_root, tmp_path):
    dm = RawDataModule(root=str(sample_root), source="sample", batch_size=2, cache_dir=str(tmp_path / "c"))
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert set(batch) == {"image", "target", "row", "col", "scalar", "wb", "cam_to_srgb", "iso", "path"}
    val = [p for p in manifest_pairs(sample_root / "pairs.csv") if p.split == "val"]
    frames = [(read(p.noisy), read(p.clean)) for p in val]
    # whole frames, centre-cropped to the packed size all of them have (the CFA phase crop differs)
    h = min(rggb_mosaic(n).shape[0] // 2 for n, _ in frames)
    w = min(rggb_mosaic(n).shape[1] // 2 for n, _ in frames)
    assert (h, w) != (32, 48)  # 64x96 mosaics; a non-RGGB phase drops a row and/or column
    assert batch["image"].shape == batch["target"].shape == (2, 4, h, w)
    assert batch["row"].shape == (2, 5, h) and batch["col"].shape == (2, 5, w)
    assert (
        batch["scalar"].shape == (2, 5)
        and batch["wb"].shape == (2, 3)
        and batch["cam_to_srgb"].shape == (2, 3, 3)
    )
    assert batch["iso"].shape == (2,) and isinstance(batch["path"], list)
    for key in ("image", "target", "row", "col", "scalar", "wb", "cam_to_srgb", "iso"):
        assert batch[key].dtype == torch.float32, key
    for k, (pair, (noisy, clean)) in enumerate(zip(val, frames, strict=True)):
        planes = pack_rggb(rggb_mosaic(noisy))
        t, le = (planes.shape[1] - h) // 2, (planes.shape[2] - w) // 2
        assert batch["path"][k] == pair.noisy
        np.testing.assert_array_equal(batch["image"][k].numpy(), planes[:, t : t + h, le : le + w])
        np.testing.assert_array_equal(
            batch["target"][k].numpy(), pack_rggb(rggb_mosaic(clean))[:, t : t + h, le : le + w]
        )
        row, col = noise_vectors(noisy)
        np.testing.assert_allclose(batch["row"][k].numpy(), (row * SCALE)[:, t : t + h], rtol=1e-6)
        np.testing.assert_allclose(batch["col"][k].numpy(), (col * SCALE)[:, le : le + w], rtol=1e-6)
        np.testing.assert_array_equal(batch["scalar"][k].numpy(), scalars(noisy.metadata))
        np.testing.assert_allclose(batch["wb"][k].numpy(), clean.metadata.wb, rtol=1e-6)
        np.testing.assert_allclose(batch["cam_to_srgb"][k].numpy(), clean.metadata.cam_to_srgb, rtol=1e-6)
        assert batch["iso"][k].item() == noisy.metadata.iso > 100
    # the noise vectors of the sample files are measured (masked left columns)
    assert batch["row"][:, 4].min() == 1


def test_train_crops_are_cfa_exact_flips_of_the_mosaic(sample_root, tmp_path):
    pairs = [p for p in manifest_pairs(sample_root / "pairs.csv") if p.split == "train"]
    ds = RawPairDataset(pairs, dm_cache(tmp_path), crop_size=12, train=True, repeat=3)
    torch.manual_seed(0)
    found = set()
    for index in range(len(ds)):
        item = ds[index]
        image = item["image"].numpy()
        noisy, clean = read(ds.pairs[index % 4].noisy), read(ds.pairs[index % 4].clean)
        mosaic, target = rggb_mosaic(noisy), rggb_mosaic(clean)
        row_off, row_spr = per_line(noise_vectors(noisy)[0])
        col_off, col_spr = per_line(noise_vectors(noisy)[1])
        matches = []
        h, w = mosaic.shape[0] // 2, mosaic.shape[1] // 2
        for hf, vf, tr in np.ndindex(2, 2, 2):
            for top in range(h - 12 - vf + 1):
                for left in range(w - 12 - hf + 1):
                    ys, xs = reference_indices(mosaic.shape, top, left, 12, hf, vf, tr)
                    if mosaic[ys[0, 0], xs[0, 0]] != image[0, 0, 0] or not np.array_equal(
                        pack_rggb(mosaic[ys, xs]), image
                    ):
                        continue
                    matches.append((top, left, hf, vf, tr))
                    np.testing.assert_array_equal(item["target"].numpy(), pack_rggb(target[ys, xs]))
                    # vectors follow their lines (noise_vectors index the lines of the phase-cropped mosaic)
                    rows, cols = (xs[:, 0], ys[0, :]) if tr else (ys[:, 0], xs[0, :])
                    r_off, r_spr, c_off, c_spr = (
                        (col_off, col_spr, row_off, row_spr) if tr else (row_off, row_spr, col_off, col_spr)
                    )
                    ref_row = np.stack(
                        [r_off[rows[0::2]], r_spr[rows[0::2]], r_off[rows[1::2]], r_spr[rows[1::2]]]
                    )
                    ref_col = np.stack(
                        [c_off[cols[0::2]], c_spr[cols[0::2]], c_off[cols[1::2]], c_spr[cols[1::2]]]
                    )
                    np.testing.assert_allclose(item["row"][:4].numpy(), ref_row * VECTOR_SCALE, rtol=1e-6)
                    np.testing.assert_allclose(item["col"][:4].numpy(), ref_col * VECTOR_SCALE, rtol=1e-6)
        assert len(matches) == 1, (index, matches)
        found.add(matches[0])
    flips = {m[2:] for m in found}
    assert len(flips) >= 4 and len({m[:2] for m in found}) >= 8  # varied flips and positions


def dm_cache(tmp_path):
    from isp.data.cache import DecodeCache

    return DecodeCache(tmp_path / "cache")


def test_files_are_decoded_once_and_later_epochs_never_read_them(sample_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(sample_root, root)
    dm = RawDataModule(
        root=str(root), source="sample", crop_size=16, batch_size=2, cache_dir=str(tmp_path / "c")
    )
    dm.prepare_data()
    assert dm.cache.decodes == 16  # 8 pairs, each file once
    dm.setup("fit")
    first = [b["target"] for b in dm.val_dataloader()]
    (root / "train").rename(tmp_path / "gone-train")  # sources gone: only the cache can answer
    (root / "val").rename(tmp_path / "gone-val")
    for _ in range(2):
        assert sum(b["image"].shape[0] for b in dm.train_dataloader()) == 4
    second = [b["target"] for b in dm.val_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))  # fixed, never random
    assert dm.cache.decodes == 16


def test_workers_use_spawn_and_persist(sample_root, tmp_path):
    dm = RawDataModule(
        root=str(sample_root),
        source="sample",
        crop_size=8,
        batch_size=2,
        num_workers=1,
        cache_dir=str(tmp_path / "c"),
    )
    loader = dm.train_dataloader()
    assert loader.multiprocessing_context.get_start_method() == "spawn" and loader.persistent_workers
    batch = next(iter(loader))
    assert batch["image"].shape == (2, 4, 8, 8) and batch["row"].shape == (2, 5, 8)


def test_missing_or_empty_root_and_missing_files_are_named(sample_root, tmp_path):
    with pytest.raises(MissingDataError, match="data.root.*nowhere"):
        RawDataModule(root=str(tmp_path / "nowhere"), source="pairs").setup()
    (tmp_path / "empty").mkdir()
    for source in ("synthetic", "pairs", "sid"):
        with pytest.raises(MissingDataError, match=r"`data.root` .*empty.* is empty"):
            RawDataModule(root=str(tmp_path / "empty"), source=source).setup()
    with pytest.raises(MissingDataError, match="isp.data.synth"):
        RawDataModule(root=str(tmp_path / "nosample"), source="sample", generate=False).setup()
    root = tmp_path / "copy"
    shutil.copytree(sample_root, root)
    (root / "val" / "clean" / "val0001.dng").unlink()
    with pytest.raises(MissingDataError, match=r"val0001\.dng"):
        RawDataModule(root=str(root), source="pairs").setup()


def test_sample_source_generates_missing_data(tmp_path):
    args = {"n_train": 1, "n_val": 1, "n_test": 0, "size": (32, 32)}
    dm = RawDataModule(
        root=str(tmp_path / "gen"), source="sample", sample_args=args, cache_dir=str(tmp_path / "c")
    )
    dm.prepare_data()
    assert (tmp_path / "gen" / "pairs.csv").is_file() and dm.cache.decodes == 4
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    (pair,) = dm.datasets["val"].pairs
    assert batch["image"].shape == (1, *pack_rggb(rggb_mosaic(read(pair.noisy))).shape)
    with pytest.raises(MissingDataError, match="'test' split"):
        dm.test_dataloader()


def test_synthetic_noise_is_new_each_draw_fixed_for_val_and_reproducible(sample_root, tmp_path):
    noise = SyntheticNoise(iso_range=(400, 6400))
    dm = RawDataModule(
        root=str(sample_root), source="synthetic", manifest="pairs.csv", noise=noise, crop_size=None,
        augment=False, cache_dir=str(tmp_path / "c"),
    )  # fmt: skip
    dm.prepare_data()
    dm.setup("fit")
    train, val = dm.datasets["train"], dm.datasets["val"]
    assert len(train) == 4 and all(p.noisy is None and "/clean/" in p.clean for p in train.pairs)
    whole = RawPairDataset(train.pairs[:1], dm.cache, crop_size=None, noise=noise, augment=False)
    torch.manual_seed(3)
    a, b = whole[0], whole[0]  # the whole frame twice: same scene, new noise
    assert torch.equal(a["target"], b["target"]) and not torch.equal(a["image"], b["image"])
    for item in (a, b):
        iso = item["iso"].item()
        assert 400 <= iso <= 6400 and item["scalar"][0].item() == pytest.approx(np.log2(iso / 100), abs=1e-5)
        assert item["row"][4].min() == 1 and item["row"][0].abs().max() > 0  # noisy margins measured
        assert 0 < (item["image"] - item["target"]).std() < 0.2
    torch.manual_seed(3)
    fresh = RawPairDataset(train.pairs[:1], dm.cache, crop_size=None, noise=noise, augment=False)
    assert torch.equal(fresh[0]["image"], a["image"])  # same torch seed, same draws
    torch.manual_seed(4)
    assert not torch.equal(fresh[0]["image"], a["image"])
    other_rank = RawPairDataset(train.pairs[:1], dm.cache, crop_size=None, noise=noise, augment=False)
    other_rank.rank = 1
    torch.manual_seed(3)
    assert not torch.equal(other_rank[0]["image"], a["image"])  # DDP ranks draw differently
    assert torch.equal(val[1]["image"], val[1]["image"])  # validation noise is fixed per item
    assert dm.cache.decodes == 8  # the clean files only, once each (planes and frame together)


def test_crop_sizes_are_fitted_to_the_split_at_setup(sample_root, tmp_path):
    cache = str(tmp_path / "c")
    dm = RawDataModule(
        root=str(sample_root), source="sample", crop_size=16, eval_crop_size=40, cache_dir=cache
    )
    dm.setup()
    # eval crops larger than a frame shrink to what every frame of the split has (64x96 mosaics)
    assert dm.datasets["train"].crop_size == 16
    h, w = dm.datasets["val"].crop_size
    assert h in (31, 32) and w == 40
    assert next(iter(dm.val_dataloader()))["image"].shape[2:] == (h, w)
    with pytest.raises(
        ValueError, match=r"`crop_size` 32 .* smallest packed size in the 'train' split is 31x"
    ):
        RawDataModule(
            root=str(sample_root), source="sample", crop_size=32, cache_dir=cache
        ).train_dataloader()
