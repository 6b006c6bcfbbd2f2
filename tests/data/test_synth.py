import csv
import filecmp
import json
import math

import numpy as np
import pytest
import rawpy

from isp.data.synth import CFAS, dead_leaves, generate, main, mosaic_from_rgb
from isp.raw import read

TINY = {"n_train": 1, "n_val": 0, "n_test": 0, "size": (32, 32), "seed": 0}


def _rows(root):
    with open(root / "pairs.csv", newline="") as f:
        return list(csv.DictReader(f))


def _raw(path):
    with rawpy.imread(str(path)) as r:
        return {
            "sensor": r.raw_image.copy(),
            "visible": r.raw_image_visible.copy(),
            "iso": r.other.iso_speed,
            "exposure": r.other.shutter_speed,
            "pattern": r.raw_pattern.tolist(),
            "white": r.white_level,
        }


def test_layout_and_manifest(sample_root):
    rows = _rows(sample_root)
    assert [r["split"] for r in rows] == ["train"] * 4 + ["val"] * 2 + ["test"] * 2
    for r in rows:
        assert r["noisy"] == f"{r['split']}/noisy/{r['noisy'].split('/')[-1]}"
        assert r["clean"] == r["noisy"].replace("/noisy/", "/clean/")
        assert (sample_root / r["noisy"]).is_file() and (sample_root / r["clean"]).is_file()
    files = sorted(p.relative_to(sample_root).as_posix() for p in sample_root.rglob("*.dng"))
    assert files == sorted([r["noisy"] for r in rows] + [r["clean"] for r in rows])
    assert json.loads((sample_root / "synth.json").read_text())["size"] == [64, 96]


def test_pairs_are_consistent_real_dngs(sample_root):
    isos, patterns, blacks = set(), set(), set()
    for r in _rows(sample_root):
        noisy, clean = _raw(sample_root / r["noisy"]), _raw(sample_root / r["clean"])
        assert noisy["sensor"].shape == clean["sensor"].shape == (64 + 8, 96 + 16)
        assert noisy["visible"].shape == (64, 96)
        assert noisy["pattern"] == clean["pattern"]
        assert clean["iso"] == 100 and 100 <= noisy["iso"] <= 25600
        # same brightness: exposure x ISO is constant (EXIF rationals: small rounding)
        assert noisy["exposure"] * noisy["iso"] == pytest.approx(clean["exposure"] * 100, rel=1e-3)
        isos.add(noisy["iso"])
        patterns.add(str(noisy["pattern"]))
        f_noisy, f_clean = read(sample_root / r["noisy"]), read(sample_root / r["clean"])
        blacks.add(tuple(f_clean.black_level.ravel()))
        np.testing.assert_array_equal(f_noisy.black_level, f_clean.black_level)
        # the noisy mosaic is the clean one plus zero-mean noise
        diff = f_noisy.mosaic.astype(np.float64) - f_clean.mosaic
        assert abs(diff.mean()) < 4 * diff.std() / math.sqrt(diff.size) + 2e-4
        # clean masked pixels hold the black level exactly; noisy ones carry noise
        assert np.all(f_clean.optical_black.left == 0) and np.all(f_clean.optical_black.top == 0)
        assert f_noisy.optical_black.left.shape == (64, 16) and f_noisy.optical_black.left.std() > 0
    assert len(isos) >= 3 and len(patterns) >= 3
    assert any(len(set(b)) > 1 for b in blacks)  # per-position black levels somewhere


def test_noise_strength_follows_iso(sample_root):
    by_iso = []
    for r in _rows(sample_root):
        f_noisy = read(sample_root / r["noisy"])
        dark = (f_noisy.optical_black.left * (f_noisy.white_level - f_noisy.black_level.mean())).std()
        by_iso.append((f_noisy.metadata.iso, dark, f_noisy.metadata.model))
    # within a virtual camera, the dark (masked) noise grows with ISO
    for model in {m for _, _, m in by_iso}:
        pts = sorted((i, d) for i, d, m in by_iso if m == model)
        for (i0, d0), (i1, d1) in zip(pts[:-1], pts[1:], strict=True):
            if i1 > i0:
                assert d1 > d0


def test_generate_is_deterministic_and_pairs_do_not_depend_on_counts(tmp_path):
    a = generate(tmp_path / "a", **TINY)
    b = generate(tmp_path / "b", **{**TINY, "n_train": 2})
    for kind in ("clean", "noisy"):
        assert filecmp.cmp(
            a / f"train/{kind}/train0000.dng", b / f"train/{kind}/train0000.dng", shallow=False
        )
    assert not filecmp.cmp(b / "train/noisy/train0000.dng", b / "train/noisy/train0001.dng", shallow=False)


def test_generate_is_idempotent_and_refuses_other_arguments(tmp_path):
    out = generate(tmp_path / "s", **TINY)
    stamp = (out / "pairs.csv").stat().st_mtime_ns
    assert generate(tmp_path / "s", **TINY) == out
    assert (out / "pairs.csv").stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="overwrite"):
        generate(tmp_path / "s", **{**TINY, "seed": 1})
    generate(tmp_path / "s", **{**TINY, "seed": 1, "n_val": 1}, overwrite=True)
    assert [r["split"] for r in _rows(out)] == ["train", "val"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left
    (tmp_path / "other").mkdir()
    with pytest.raises(FileExistsError):
        generate(tmp_path / "other", **TINY)


def test_generate_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="`size`"):
        generate(tmp_path / "x", **{**TINY, "size": (31, 32)})
    with pytest.raises(ValueError, match="`n_train`"):
        generate(tmp_path / "x", **{**TINY, "n_train": -1})
    with pytest.raises(ValueError, match="at least one pair"):
        generate(tmp_path / "x", **{**TINY, "n_train": 0})
    assert not (tmp_path / "x").exists()


def test_cli(tmp_path, capsys):
    out = main(
        ["--out", str(tmp_path / "c"), "--n-train", "1", "--n-val", "1", "--n-test", "0", "--size", "32x32"]
    )
    assert len(_rows(out)) == 2 and "pairs.csv" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "d"), "--size", "32by32"])
    with pytest.raises(SystemExit):  # exists with other arguments, no --overwrite
        main(["--out", str(out), "--n-train", "2", "--size", "32x32"])


def test_mosaic_from_rgb_samples_the_named_colour():
    rgb = np.random.default_rng(0).random((4, 6, 3))
    for cfa in CFAS:
        m = mosaic_from_rgb(rgb, cfa)
        for i in range(2):
            for j in range(2):
                c = "RGB".index(cfa[2 * i + j])
                np.testing.assert_array_equal(m[i::2, j::2], rgb[i::2, j::2, c])
    with pytest.raises(ValueError, match="`cfa`"):
        mosaic_from_rgb(rgb, "RGBG")


def test_dead_leaves_scene_statistics():
    a = dead_leaves((128, 192), np.random.default_rng(1))
    np.testing.assert_array_equal(a, dead_leaves((128, 192), np.random.default_rng(1)))
    assert a.shape == (128, 192, 3) and a.min() >= 0 and a.max() <= 1
    # natural-like: large flat regions (most gradients small) and sharp edges (a heavy tail)
    g = np.abs(np.diff(a.mean(axis=2), axis=1))
    assert np.percentile(g, 99) > 10 * np.median(g)
    # colourful but not saturated everywhere; brightness varies over more than a decade
    lum = a.mean(axis=2)
    assert np.percentile(lum, 95) > 8 * np.percentile(lum, 5)
    assert a.std(axis=2).mean() > 0.01
