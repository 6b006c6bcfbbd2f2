"""scripts/pack_training_set.py: a tiny pack of the shared data, read back through SceneMix."""

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from isp.data.scenes import SceneDataset, SceneMix, decimated_mosaic, load_mosaic
from isp.noise.camera import CameraNoise

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
CONTENT, REALRAWS = SHARED / "content", SHARED / "realraws"
DEVSET_RAWS = (
    "canon_eos_d30_CRW.CRW",
    "canon_powershot_s30_RAW_CANON_S30.CRW",
    "canon_powershot_s40_CRW_0117.CRW",
    "canon_550d_magiclantern_colorchart.dng",
)
BUDGET_MIB = 6.6  # the 11 training raws take ~5.6 MiB: little is left for the photographs

needs_shared = pytest.mark.skipif(
    not (CONTENT.is_dir() and REALRAWS.is_dir()),
    reason="../shared/content or ../shared/realraws is absent (a user's clone)",
)


def _script():
    spec = importlib.util.spec_from_file_location(
        "pack_training_set", ROOT / "scripts" / "pack_training_set.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    out = tmp_path_factory.mktemp("pack") / "packed"
    manifest = _script().pack(
        out,
        content=CONTENT,
        realraws=REALRAWS,
        config=ROOT / "configs" / "production.yaml",
        budget_mib=BUDGET_MIB,
        max_photos=3,
    )
    return out, manifest


@needs_shared
def test_the_pack_fits_its_budget_and_its_manifest_describes_every_file(packed):
    out, manifest = packed
    files = [p for p in out.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= BUDGET_MIB * 2**20
    assert json.loads((out / "MANIFEST.json").read_text()) == manifest
    listed = manifest["photos"]["files"] + manifest["raws"]["files"]
    assert sorted(e["file"] for e in listed) == sorted(
        p.relative_to(out).as_posix() for p in files if p.name != "MANIFEST.json"
    )
    for e in listed:
        data = (out / e["file"]).read_bytes()
        assert len(data) == e["bytes"] and hashlib.sha256(data).hexdigest() == e["sha256"]
    assert manifest["photos"]["count"] == 3 and manifest["raws"]["count"] == 11
    # the budget was binding: the photographs were cropped, never below the smallest side
    assert manifest["photos"]["crop_fraction"] < 1
    for e in manifest["photos"]["files"]:
        w, h = (round(int(v) / 1.25) for v in e["source_size"].split("x"))
        assert min(h, 200) <= e["box"][2] <= h and min(w, 200) <= e["box"][3] <= w


@needs_shared
def test_licences_and_provenance_travel_into_the_manifest(packed):
    _, manifest = packed
    for e in manifest["photos"]["files"]:
        assert e["licence"] and e["source_repo"] and e["commit"] and len(e["source_sha256"]) == 64
    for name, s in manifest["photos"]["sets"].items():
        assert s["licences"], name
    assert "non-commercial" in manifest["terms"]
    for e in manifest["raws"]["files"]:
        assert e["source_repo"] and e["licence"] and len(e["source_sha256"]) == 64


@needs_shared
def test_no_development_set_or_excluded_file_is_packed(packed):
    out, manifest = packed
    exclude = manifest["excluded_by_config"]
    assert {"canon_eos_d30_CRW", "CRW_0117", "colorchart", "reject"} <= set(exclude)
    for p in out.rglob("*"):
        assert not any(e in p.name for e in exclude), p
    sources = [e["source"] for e in manifest["raws"]["files"]]
    assert not set(DEVSET_RAWS) & set(sources)
    skipped = {s["source"] for s in manifest["raws"]["skipped"]}
    assert set(DEVSET_RAWS) <= skipped and any(s.startswith("reject/") for s in skipped)


@needs_shared
def test_scenemix_reads_the_pack_and_makes_items(packed):
    out, manifest = packed
    mix = SceneMix(images=[out / "photos"], raws=[out / "raws"], downscale=manifest["scene_mix"]["downscale"])
    assert len(mix.images) == 3 and len(mix.raws) == 11
    raw = next(e for e in manifest["raws"]["files"] if e["source"] == "kodak_dc50_RAW_KODAK_DC50.KDC")
    np.testing.assert_allclose(
        load_mosaic(out / raw["file"]), decimated_mosaic(REALRAWS / raw["source"]), rtol=2**-10, atol=1e-7
    )
    for weights in ((1, 0, 0), (0, 1, 0)):
        mix.weights = np.array(weights, dtype=np.float64)
        ds = SceneDataset(mix, CameraNoise(), crop_size=64, length=2, train=False)
        item = ds[0]
        assert item["image"].shape == item["target"].shape == (4, 64, 64)
        assert torch.isfinite(item["image"]).all() and item["target"].std() > 0


@needs_shared
def test_the_pack_is_deterministic(packed, tmp_path):
    _, manifest = packed
    again = _script().pack(
        tmp_path / "again",
        content=CONTENT,
        realraws=REALRAWS,
        config=ROOT / "configs" / "production.yaml",
        budget_mib=BUDGET_MIB,
        max_photos=3,
    )
    assert again["sha256"] == manifest["sha256"]


def test_a_missing_content_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="photographs folder .*nowhere.* is missing"):
        _script().main(["--content", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")])


def test_the_gpu_config_reads_the_pack_at_the_packers_scale():
    import inspect

    import yaml

    def scenes(name):
        return yaml.safe_load((ROOT / "configs" / name).read_text())["data"]["scenes"]["init_args"]

    gpu, cpu = scenes("production_gpu.yaml"), scenes("production.yaml")
    assert gpu["images"] == ["data/packed/photos"] and gpu["raws"] == ["data/packed/raws"]
    assert gpu["exclude"] == cpu["exclude"] and gpu["weights"] == cpu["weights"]
    scale = inspect.signature(_script().pack).parameters["scale"].default
    assert gpu["downscale"] == pytest.approx([1.0, 2.0 / scale])  # the sources' 1-2x, as in production
