import csv
import json
import math

import numpy as np
import pytest

from isp.data.cache import DecodeCache, MissingDataError
from isp.data.dataset import VECTOR_SCALE, RawPairDataset
from isp.data.sources import clean_files, manifest_pairs, sid_pairs
from isp.raw import noise_vectors, pack, read


def test_sid_lists_give_splits_from_the_id_and_gain_from_exif(sid_root, tmp_path):
    pairs = sid_pairs(sid_root)
    assert [(p.split, p.amplify) for p in pairs] == [("train", True), ("val", True), ("test", True)]
    cache = DecodeCache(tmp_path / "cache")
    expected_gain = {"00001": 250.0, "20003": 100.0, "10002": 300.0}  # 10 s / EXIF short, capped at 300
    for pair in pairs:
        ds = RawPairDataset([pair], cache, crop_size=None, train=False)
        item = ds[0]
        gain = expected_gain[pair.noisy.split("/")[-1][:5]]
        noisy = read(pair.noisy)
        np.testing.assert_allclose(item["image"].numpy(), pack(noisy)[0] * gain, rtol=1e-6)
        np.testing.assert_array_equal(item["target"].numpy(), pack(read(pair.clean))[0])
        row, col = noise_vectors(noisy)
        np.testing.assert_allclose(
            item["row"][:4].numpy(), row[:4] * gain * VECTOR_SCALE, rtol=1e-5, atol=1e-7
        )
        np.testing.assert_array_equal(item["row"][4].numpy(), row[4])  # validity unscaled
        assert row[4].all()  # the files have masked columns
        np.testing.assert_allclose(
            item["scalar"].numpy(),
            [5, math.log2(noisy.metadata.exposure_time), math.log2(gain), 1, 1],
            rtol=1e-5,
        )
        assert item["iso"].item() == 3200 and item["path"] == pair.noisy


def test_sid_missing_list_and_files_are_named(sid_root, tmp_path):
    with pytest.raises(MissingDataError, match="nope.txt"):
        sid_pairs(sid_root, ["nope.txt"])
    (sid_root / "Sony" / "long" / "00001_00_30s.dng").unlink()
    with pytest.raises(MissingDataError, match="00001_00_30s.dng"):
        sid_pairs(sid_root)
    with pytest.raises(MissingDataError, match="does not exist"):
        sid_pairs(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingDataError, match="empty"):
        sid_pairs(tmp_path / "empty")


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_manifest_resolves_relative_paths_and_names_missing_files(tmp_path, raw_writer, kind):
    for name in ("n0", "c0", "n1", "c1"):
        raw_writer(tmp_path / "raws" / f"{name}.dng", iso=100, exposure=0.1, seed=0)
    rows = [
        {"noisy": "raws/n0.dng", "clean": "raws/c0.dng", "split": "val"},
        {"noisy": "raws/n1.dng", "clean": "raws/c1.dng"},
    ]
    manifest = tmp_path / f"m.{kind}"
    if kind == "json":
        manifest.write_text(json.dumps({"pairs": rows}))
    else:
        with open(manifest, "w", newline="") as f:
            writer = csv.DictWriter(f, ["noisy", "clean", "split"])
            writer.writeheader()
            writer.writerows(rows)
    pairs = manifest_pairs(manifest)
    assert [(p.noisy, p.clean, p.split) for p in pairs] == [
        (str(tmp_path / "raws/n0.dng"), str(tmp_path / "raws/c0.dng"), "val"),
        (str(tmp_path / "raws/n1.dng"), str(tmp_path / "raws/c1.dng"), "train"),
    ]
    (tmp_path / "raws" / "c1.dng").unlink()
    with pytest.raises(MissingDataError, match=r"entry 2 references .*c1\.dng"):
        manifest_pairs(manifest)


def test_clean_files_split_from_folders_or_hash(tmp_path, raw_writer):
    for split in ("train", "val"):
        raw_writer(tmp_path / split / "a.dng", iso=100, exposure=0.1, seed=0)
    for i in range(40):
        (tmp_path / "loose").mkdir(exist_ok=True)
        (tmp_path / "loose" / f"{i}.DNG").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not a raw")
    pairs = clean_files(tmp_path)
    assert len(pairs) == 42 and all(p.noisy is None for p in pairs)
    by_name = {p.clean.split("/")[-2] + "/" + p.clean.split("/")[-1]: p.split for p in pairs}
    assert by_name["train/a.dng"] == "train" and by_name["val/a.dng"] == "val"
    loose = [s for k, s in by_name.items() if k.startswith("loose")]
    assert {"train", "val", "test"} <= set(loose) and loose.count("train") > 20
    assert clean_files(tmp_path) == pairs  # deterministic
