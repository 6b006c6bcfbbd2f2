"""predict.py end to end on generated DNGs: outputs, metadata, failures, absurd EXIF, real files.

No-clobber, interruption, output folders and input discovery: test_predict_cli_safety.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import rawpy
import tifffile
import torch
from PIL import Image
from torch import nn

from isp.cli import predict
from isp.models import UNet
from isp.predict import frame_inputs
from isp.raw import pad_to_rggb, read, unpack

ROOT = Path(__file__).resolve().parents[2]
TINY = {"class_path": "isp.models.UNet", "init_args": {"base_width": 4, "depth": 2}}


def _run(args, capfd=None):
    code = predict.main([str(a) for a in args])
    err = capfd.readouterr().err if capfd is not None else ""
    return code, err


def _reference_mosaic(ckpt, path, ensemble=2):
    """Untiled forward pass of the checkpoint's net on the frame, independent of the tiler.

    ``ensemble=2`` (predict.py's default) averages it with the pass on the frame turned by 180
    degrees (tests/predict/test_ensemble.py checks the turn).
    """
    from isp.predict import size_multiple
    from isp.predict.ensemble import ensemble_forward
    from isp.weights import load_model

    loaded = load_model(ckpt)
    frame = read(path)
    (h, w), (padded, (top, left, _, _)) = frame.visible_shape, pad_to_rggb(frame)  # every pixel denoised
    x = frame_inputs(padded, vector_scale=64.0)
    with torch.no_grad():
        xs = x["image"], x["row"], x["col"], x["scalar"]
        planes = ensemble_forward(loaded.net, *xs, views=ensemble, align=size_multiple(loaded.net))
    return unpack(planes[0].numpy(), x["info"])[top : top + h, left : left + w]


def test_dng_output_round_trips_with_metadata(tiny_ckpt, inputs, tmp_path, capfd):
    src = sorted(inputs.glob("*.dng"))[0]
    before = src.read_bytes()
    # float32, as the reference below (the default on an AMX CPU, bf16, is tested after this)
    code, err = _run([src, "--out-dir", tmp_path, "--ckpt", tiny_ckpt, "--precision", "fp32"], capfd)
    assert code == 0, err
    out = tmp_path / (src.stem + ".dng")
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temporary left
    a, b = read(src), read(out)
    assert src.read_bytes() == before
    for key in ("cfa", "white_level", "active_area"):
        assert getattr(b, key) == getattr(a, key), key
    assert b.sensor.shape == a.sensor.shape
    np.testing.assert_array_equal(b.black_level, a.black_level)
    for key in ("iso", "exposure_time", "f_number", "focal_length"):
        assert getattr(b.metadata, key) == pytest.approx(getattr(a.metadata, key), rel=1e-6), key
    for key in ("make", "model", "timestamp"):
        assert getattr(b.metadata, key) == getattr(a.metadata, key), key
    np.testing.assert_allclose(b.metadata.wb, a.metadata.wb, rtol=1e-5)
    np.testing.assert_allclose(b.metadata.cam_to_srgb, a.metadata.cam_to_srgb, atol=1e-5)
    top, left, bottom, right = a.active_area
    mask = np.ones(a.sensor.shape, bool)
    mask[top:bottom, left:right] = False
    np.testing.assert_array_equal(b.sensor[mask], a.sensor[mask])  # masked margins kept
    # the visible area is the network's output, quantised: compare with an untiled forward pass
    expected = _reference_mosaic(tiny_ckpt, src)
    assert np.abs(b.mosaic - expected).max() <= 0.51 / (a.white_level - a.black_level.max())
    assert np.abs(b.mosaic - a.mosaic).max() > 1e-3  # and it did change the image
    with rawpy.imread(str(out)) as raw:
        np.testing.assert_array_equal(raw.raw_image, b.sensor)
        assert raw.other.iso_speed == a.metadata.iso
    if shutil.which("exiftool"):
        cmd = ["exiftool", "-validate", "-warning", "-a", str(out)]
        v = subprocess.run(cmd, capture_output=True, text=True)
        assert v.stdout.split(":", 1)[1].strip() == "OK", v.stdout
    if shutil.which("dcraw"):
        r = subprocess.run(["dcraw", "-c", "-T", str(out)], capture_output=True)
        assert r.returncode == 0 and len(r.stdout) > a.mosaic.size, r.stderr


def test_default_precision_is_bf16_on_an_amx_cpu_and_close_to_float32(tiny_ckpt, inputs, tmp_path, capfd):
    from isp.predict.cores import amx_bf16

    src = sorted(inputs.glob("*.dng"))[0]
    common = [src, "--ckpt", tiny_ckpt, "--threads", "1"]
    assert _run([*common, "--out-dir", tmp_path / "auto"], capfd)[0] == 0
    assert _run([*common, "--out-dir", tmp_path / "fp32", "--precision", "fp32"], capfd)[0] == 0
    auto, full = (read(tmp_path / d / src.name) for d in ("auto", "fp32"))
    diff = np.abs(auto.mosaic - full.mosaic).max()
    if amx_bf16():  # bf16 ran: rounding differences (white = 1), far below a raw's noise
        assert 0 < diff < 2e-3
    else:
        assert diff == 0


def test_compile_epilogues_writes_what_the_eager_net_writes(tiny_ckpt, inputs, tmp_path, capfd):
    # the side terms and LeakyReLUs as compiled kernels (UNet.fuse_epilogues): the same function
    src = sorted(inputs.glob("*.dng"))[0]
    common = [src, "--ckpt", tiny_ckpt, "--threads", "1", "--precision", "fp32"]
    assert _run([*common, "--out-dir", tmp_path / "eager"], capfd)[0] == 0
    code, err = _run([*common, "--out-dir", tmp_path / "fused", "--fuse-epilogues"], capfd)
    assert code == 0, err
    eager, fused, noisy = (read(d / src.name) for d in (tmp_path / "eager", tmp_path / "fused", src.parent))
    diff = np.abs(fused.sensor.astype(np.int64) - eager.sensor)  # DN: float rounding may flip one
    assert diff.max() <= 1 and np.mean(diff > 0) < 0.01
    assert np.abs(fused.sensor.astype(np.int64) - noisy.sensor).mean() > 1  # the net did change the frame
    from isp.nn import _epilogue

    used = {"_rows_cols_act_", "_act_"}  # MSConv2d's rows and columns; the plain convs (float32: in place)
    assert used <= set(_epilogue._compiled) and not used & set(_epilogue._failed)  # compiled, ran


def test_corrupt_and_unsupported_files_are_skipped(tiny_ckpt, inputs, tmp_path, capfd):
    folder = tmp_path / "in"
    shutil.copytree(inputs, folder)
    good = sorted(folder.glob("*.dng"))
    (folder / "truncated.dng").write_bytes(good[0].read_bytes()[:3000])
    (folder / "notes.nef").write_text("not a raw file")
    out = tmp_path / "out"
    code, err = _run([folder, tmp_path / "missing.arw", "--out-dir", out, "--ckpt", tiny_ckpt], capfd)
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in good)
    flat = " ".join(err.split())
    for name in ("truncated.dng", "notes.nef", "missing.arw"):
        assert name in flat
    assert "no such file" in flat and "Cannot read raw file" in flat


def test_no_overwrite_without_flag_and_never_over_an_input(tiny_ckpt, inputs, tmp_path, capfd):
    src = sorted(inputs.glob("*.dng"))[0]
    args = [src, "--out-dir", tmp_path, "--ckpt", tiny_ckpt]
    assert _run(args, capfd)[0] == 0
    out = tmp_path / (src.stem + ".dng")
    out.write_bytes(b"keep me")
    code, err = _run(args, capfd)
    assert code == 1 and "--overwrite" in " ".join(err.split()) and out.read_bytes() == b"keep me"
    assert _run([*args, "--overwrite"], capfd)[0] == 0 and read(out).sensor.shape == read(src).sensor.shape
    # writing next to the inputs with the same name: refused even with --overwrite
    local = tmp_path / "local"
    local.mkdir()
    shutil.copy(src, local / src.name)
    before = (local / src.name).read_bytes()
    code, err = _run([local / src.name, "--out-dir", local, "--ckpt", tiny_ckpt, "--overwrite"], capfd)
    assert code == 1 and "input" in err and (local / src.name).read_bytes() == before


@pytest.mark.parametrize("fmt", ["tiff", "png"])
def test_srgb_outputs_are_libraw_renderings_of_the_denoised_dng(fmt, tiny_ckpt, inputs, tmp_path, capfd):
    src = sorted(inputs.glob("*.dng"))[1]
    assert _run([src, "--out-dir", tmp_path / "dng", "--ckpt", tiny_ckpt], capfd)[0] == 0
    assert _run([src, "--out-dir", tmp_path, "--ckpt", tiny_ckpt, "--format", fmt], capfd)[0] == 0
    out = tmp_path / f"{src.stem}.{fmt}"
    img = tifffile.imread(out) if fmt == "tiff" else np.asarray(Image.open(out))
    with rawpy.imread(str(tmp_path / "dng" / f"{src.stem}.dng")) as raw:  # independent: LibRaw on our DNG
        ref = raw.postprocess(use_camera_wb=True, output_bps=16 if fmt == "tiff" else 8)
    assert img.dtype == (np.uint16 if fmt == "tiff" else np.uint8) and img.shape == ref.shape
    assert img.shape[:2] == read(src).mosaic.shape
    np.testing.assert_array_equal(img, ref)


def test_bad_checkpoint_exits_2_naming_it(inputs, tmp_path, capfd):
    bad = tmp_path / "other.pt"
    torch.save(nn.Conv2d(4, 4, 3).state_dict(), bad)
    bad.with_suffix(".json").write_text(json.dumps({"model": TINY}))
    code, err = _run([inputs, "--out-dir", tmp_path / "out", "--ckpt", bad], capfd)
    assert code == 2 and "other.pt" in err and "do not fit" in " ".join(err.split())
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("tile", "overlap", "match"), [(511, 32, "even"), (64, 64, "smaller"), (16, 12, "align")]
)
def test_bad_tile_arguments_are_usage_errors(inputs, tmp_path, capfd, tile, overlap, match):
    with pytest.raises(SystemExit) as info:
        predict.main([str(inputs), "--out-dir", str(tmp_path), f"--tile={tile}", f"--overlap={overlap}"])
    assert info.value.code == 2 and match in capfd.readouterr().err


# -- non-finite weights and outputs (issue 14, item 1) ----------------------------------------------


def _state_ckpt(tmp_path, name, mutate, **init_args):
    torch.manual_seed(0)
    model = {**TINY, "init_args": {**TINY["init_args"], **init_args}}
    net = UNet(**model["init_args"])
    state = net.state_dict()
    mutate(state)
    path = tmp_path / name
    torch.save(state, path)
    path.with_suffix(".json").write_text(json.dumps({"model": model, "data": {"vector_scale": 64.0}}))
    return path


def test_nan_weights_or_config_exit_2_and_write_nothing(inputs, tmp_path, capfd):
    def nan(state):
        state["head.weight"].view(-1)[3] = float("nan")

    bad = _state_ckpt(tmp_path, "nan.pt", nan)
    code, err = _run([inputs, "--out-dir", tmp_path / "out", "--ckpt", bad], capfd)
    assert code == 2 and "nan.pt" in err and "non-finite" in err
    assert not (tmp_path / "out").exists()
    cfg = _state_ckpt(tmp_path, "cfg.pt", lambda state: None)
    cfg.with_suffix(".json").write_text(json.dumps({"model": TINY, "data": {"vector_scale": float("nan")}}))
    code, err = _run([inputs, "--out-dir", tmp_path / "out", "--ckpt", cfg], capfd)
    assert code == 2 and "cfg.pt" in err and "NaN" in err
    assert not (tmp_path / "out").exists()


def test_a_non_finite_network_output_is_never_written(inputs, tmp_path, capfd):
    # finite weights and settings whose output overflows float32: correction / 1e-40
    bad = _state_ckpt(tmp_path, "big.pt", lambda state: state["head.weight"].fill_(0.5), input_scale=1e-40)
    src = sorted(inputs.glob("*.dng"))[0]
    for fmt in ("dng", "tiff"):
        code, err = _run([src, "--out-dir", tmp_path / fmt, "--ckpt", bad, "--format", fmt], capfd)
        flat = " ".join(err.split())
        assert code == 1 and src.name in flat and "non-finite" in flat, err
        assert list((tmp_path / fmt).iterdir()) == []


# -- the input's own colour tags and orientation (issue 14, items 2 and 3) ----------------------------

SHARED = ROOT.parent / "shared" / "realraws"
COLOUR_TAGS = {
    274: "Orientation",
    50708: "UniqueCameraModel",
    50719: "DefaultCropOrigin",
    50720: "DefaultCropSize",
    50721: "ColorMatrix1",
    50722: "ColorMatrix2",
    50727: "AnalogBalance",
    50728: "AsShotNeutral",
    50730: "BaselineExposure",
    50731: "BaselineNoise",
    50732: "BaselineSharpness",
    50734: "LinearResponseLimit",
    50778: "CalibrationIlluminant1",
    50779: "CalibrationIlluminant2",
}


def _tags(path):
    """The colour and geometry tags of a DNG as stored (IFD0 and the raw IFD), read by tifffile."""
    out = {}
    with tifffile.TiffFile(path) as tif:
        pages = [tif.pages.first]
        for offset in tif.pages.first.subifds or ():
            tif.filehandle.seek(offset)
            pages.append(tifffile.TiffPage(tif, index=0))
        for page in pages:
            for tag in page.tags.values():
                if tag.code in COLOUR_TAGS and tag.code not in out:
                    value = tag.value
                    out[COLOUR_TAGS[tag.code]] = value.rstrip("\0") if isinstance(value, str) else value
    return out


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool writes the test input's DNG tags")
def test_dng_output_keeps_the_inputs_colour_tags_and_orientation(tiny_ckpt, inputs, tmp_path, capfd):
    src = tmp_path / "portrait.dng"
    shutil.copy(sorted(inputs.glob("*.dng"))[0], src)
    edit = [
        "-ColorMatrix2=0.9 -0.3 -0.1 -0.4 1.2 0.2 -0.1 0.2 0.6",
        "-CalibrationIlluminant1#=17",
        "-CalibrationIlluminant2#=21",
        "-AnalogBalance=1 1.01 1",
        "-BaselineExposure=0.35",
        "-BaselineNoise=0.8",
        "-BaselineSharpness=1.2",
        "-LinearResponseLimit=0.9",
        "-UniqueCameraModel=Acme Sensor 64 (test)",
        "-Orientation#=6",
    ]
    # exiftool is the independent writer of the test input
    subprocess.run(["exiftool", "-q", "-overwrite_original", *edit, str(src)], check=True)
    expected = _tags(src)
    assert expected["Orientation"] == 6 and len(expected) == 12  # all but DefaultCrop (not writable)
    code, err = _run([src, "--out-dir", tmp_path / "out", "--ckpt", tiny_ckpt], capfd)
    assert code == 0, err
    out = tmp_path / "out" / "portrait.dng"
    assert _tags(out) == expected
    v = subprocess.run(["exiftool", "-validate", "-warning", "-a", str(out)], capture_output=True, text=True)
    assert v.stdout.split(":", 1)[1].strip() == "OK", v.stdout
    with rawpy.imread(str(out)) as raw:
        assert raw.sizes.flip == 6  # LibRaw shows it upright, as the input


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} (real camera files) is absent")
def test_a_real_dng_keeps_all_its_own_colour_tags(tiny_ckpt, tmp_path, capfd):
    src = SHARED / "canon_550d_magiclantern_colorchart.dng"
    expected = _tags(src)
    assert {"ColorMatrix1", "DefaultCropSize", "BaselineExposure", "AnalogBalance"} <= expected.keys()
    code, err = _run([src, "--out-dir", tmp_path, "--ckpt", tiny_ckpt], capfd)
    assert code == 0, err
    assert _tags(tmp_path / src.name) == expected


# -- the output folder, checked before any network work; disk errors name the output (item 9) ------


@pytest.mark.parametrize(("field", "value"), [("iso", 1e7), ("exposure_time", 1e5)])
def test_absurd_exif_is_not_believed_and_the_output_is_no_worse(sample_root, tmp_path, capfd, field, value):
    import csv
    import dataclasses

    from isp.raw import write_dng

    rows = list(csv.DictReader((sample_root / "pairs.csv").open()))
    row = min(rows, key=lambda r: read(sample_root / r["noisy"]).metadata.iso)  # the least noisy: the hardest
    noisy, clean = read(sample_root / row["noisy"]), read(sample_root / row["clean"])
    src = tmp_path / "absurd.dng"
    meta = dataclasses.replace(noisy.metadata, **{field: value})
    write_dng(
        src,
        noisy.sensor,
        cfa=noisy.cfa,
        black_level=noisy.black_level,
        white_level=noisy.white_level,
        active_area=noisy.active_area,
        metadata=meta,
    )
    code, err = _run([src, "--out-dir", tmp_path / "out"], capfd)  # the shipped default model
    flat = " ".join(err.split())
    assert code == 0 and "warning" in flat and "absurd.dng" in flat and "outside the plausible range" in flat
    out = read(tmp_path / "out" / "absurd.dng")
    assert getattr(out.metadata, field) == pytest.approx(value, rel=1e-6)  # the file's own EXIF is kept

    def psnr(x):
        return -10 * np.log10(np.mean((x - clean.mosaic) ** 2))

    assert psnr(out.mosaic) >= psnr(noisy.mosaic)


# -- library messages with the file; control characters escaped (item 11) ---------------------------


def test_library_warnings_name_the_file_and_names_are_escaped(tiny_ckpt, inputs, tmp_path, capfd):
    import struct

    src = tmp_path / "bad\x1b[31mname\n.dng"
    shutil.copy(sorted(inputs.glob("*.dng"))[0], src)
    with tifffile.TiffFile(src) as tif:  # point UniqueCameraModel's value past the end of the file
        tag = tif.pages.first.tags[50708]
        offset, count = tag.offset, tag.count
    data = bytearray(src.read_bytes())
    struct.pack_into("<HHII", data, offset, 50708, 2, count, len(data) + 1000)
    src.write_bytes(bytes(data))
    code, err = _run([src, "--out-dir", tmp_path / "out", "--ckpt", tiny_ckpt], capfd)
    assert code == 0, err
    assert "\x1b" not in err and "bad\\x1b[31mname\\n.dng" in err
    warning = [line for line in err.splitlines() if line.startswith("warning")]
    assert len(warning) == 1 and "tifffile" in warning[0] and "invalid value offset" in warning[0], err
    assert "bad\\x1b[31mname\\n.dng" in warning[0]


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} (real camera files) is absent")
def test_every_real_bayer_file_is_denoised_and_written_back(tiny_ckpt, tmp_path, capfd):
    folder = tmp_path / "real"
    folder.mkdir()
    bayer = [
        p
        for p in SHARED.iterdir()
        if p.is_file() and p.suffix.lower() not in (".md", ".tsv") and "nonCFA" not in p.name
    ]
    for p in bayer:
        (folder / p.name).symlink_to(p)
    code, err = _run([folder, "--out-dir", tmp_path / "out", "--ckpt", tiny_ckpt, "--tile", "512"], capfd)
    assert code == 0, err
    for p in bayer:  # QTK, KDC, CRW and DNG: found in folder mode, read back with the input's geometry
        a, b = read(p), read(tmp_path / "out" / f"{p.stem}.dng")
        assert (b.cfa, b.active_area, b.sensor.shape) == (a.cfa, a.active_area, a.sensor.shape), p.name
        assert b.white_level == a.white_level and b.metadata.orientation == a.metadata.orientation


# ---------------------------------------------------------------- how the net runs


def _plan(*extra, cuda=False, bf16=True, cpu_bf16=False):
    args = predict.build_parser().parse_args(["x", "--out-dir", "y", *extra])
    return predict.execution_plan(args, cuda, bf16, cpu_bf16)


def test_execution_plan_cpu_precision_follows_amx():
    # a CPU with AMX tiles convolves bf16 6-8x as fast as fp32: auto picks bf16 there only
    assert _plan(cpu_bf16=True)["autocast_dtype"] is torch.bfloat16
    assert _plan(cpu_bf16=False)["autocast_dtype"] is None
    assert _plan("--precision", "fp32", cpu_bf16=True)["autocast_dtype"] is None
    assert _plan("--precision", "bf16", cpu_bf16=False)["autocast_dtype"] is torch.bfloat16
    assert _plan(cuda=True, bf16=False, cpu_bf16=True)["autocast_dtype"] is torch.float16  # CUDA's own


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="needs Linux /proc/cpuinfo")
def test_amx_bf16_agrees_with_the_cpu_flags():
    from isp.predict.cores import amx_bf16

    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags |= set(line.split(":", 1)[1].split())
    assert amx_bf16() == ({"amx_tile", "amx_bf16", "avx512_bf16"} <= flags)


def test_execution_plan_cpu_default_governs_torch_threads_between_tiles(monkeypatch):
    from isp.predict.cores import CoreGovernor

    monkeypatch.setattr(predict, "free_cores", lambda: 2)
    monkeypatch.setattr(predict, "affinity_cores", lambda: 2)
    plan = _plan()
    assert plan["device"].type == "cpu" and (plan["workers"], plan["threads"]) == (1, 2)
    assert isinstance(plan["governor"], CoreGovernor)
    assert (plan["governor"].cores, plan["governor"].threads) == (2, 2)
    assert plan["autocast_dtype"] is None and plan["channels_last"] is True  # CPU tiles too: 1.3x faster
    ops, tiles = _plan("--parallel", "ops"), _plan("--parallel", "tiles")
    assert (ops["workers"], ops["threads"], ops["governor"]) == (1, 2, None)
    assert (tiles["workers"], tiles["threads"], tiles["governor"]) == (2, 1, None)
    assert _plan("--parallel", "tiles", "--threads", "3")["workers"] == 3
    assert _plan("--threads", "1")["governor"].cores == 1  # --threads caps the governor
    assert _plan("--threads", "8")["governor"].cores == 2  # and so do the cores this process may use
    monkeypatch.setattr(predict, "free_cores", lambda: 1)  # the other core busy at the start
    plan = _plan()
    assert plan["threads"] == 1 and plan["governor"].threads == 1 and plan["governor"].cores == 2
    assert _plan("--parallel", "tiles")["workers"] == 1
    assert _plan("--precision", "bf16")["autocast_dtype"] is torch.bfloat16


def test_execution_plan_cuda_uses_autocast_and_channels_last():
    plan = _plan(cuda=True)
    assert plan["device"].type == "cuda" and plan["workers"] == 1 and plan["governor"] is None
    assert plan["autocast_dtype"] is torch.bfloat16 and plan["channels_last"] is True
    assert _plan(cuda=True, bf16=False)["autocast_dtype"] is torch.float16
    assert _plan("--precision", "fp32", cuda=True)["autocast_dtype"] is None
    assert _plan("--device", "cpu", cuda=True)["device"].type == "cpu"


def test_free_cores_is_between_one_and_the_affinity_mask(monkeypatch):
    from isp.predict import cores as inference

    monkeypatch.setattr(inference.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    for busy, expected in (({0: 0.05, 1: 0.1}, 2), ({0: 0.9, 1: 0.3}, 1), ({0: 1.0, 1: 1.0}, 1)):
        monkeypatch.setattr(inference, "cpu_busy", lambda window, busy=busy: busy)
        assert inference.free_cores() == expected
    # without /proc/stat the 1-minute load average stands in
    monkeypatch.setattr(inference, "cpu_busy", lambda window: None)
    for load, expected in ((0.1, 2), (1.2, 1), (7.0, 1)):
        monkeypatch.setattr(inference.os, "getloadavg", lambda load=load: (load, load, load))
        assert inference.free_cores() == expected


@pytest.mark.skipif(
    not Path("/proc/stat").is_file() or len(getattr(os, "sched_getaffinity", lambda pid: ())(0)) < 2,
    reason="needs Linux /proc/stat and 2 CPUs",
)
def test_cpu_busy_sees_a_real_busy_loop_on_its_core():
    import sys

    from isp.predict.cores import cpu_busy

    cpu = sorted(os.sched_getaffinity(0))[-1]
    pin = f"import os, time; os.sched_setaffinity(0, {{{cpu}}}); t = time.time() + 5\n"
    spin = pin + "while time.time() < t: pass"
    child = subprocess.Popen([sys.executable, "-c", spin])
    try:
        time.sleep(0.5)  # the child is pinned and spinning
        busy = cpu_busy([cpu], window=0.5)
    finally:
        child.kill()
        child.wait()
    assert busy is not None and busy[cpu] > 0.8


def test_autocast_channels_last_path_on_the_cpu_matches_float32(tiny_ckpt, inputs):
    # the path --device cuda takes (bf16 autocast, channels_last tiles), exercised on the CPU
    from isp.predict import denoise_frame
    from isp.weights import load_model

    loaded = load_model(tiny_ckpt)
    frame = read(sorted(inputs.glob("*.dng"))[0])
    kw = {"data": loaded.data, "tile": 24, "overlap": 8}
    ref = denoise_frame(loaded.net, frame, **kw)
    net_cl = loaded.net.to(memory_format=torch.channels_last)
    low = denoise_frame(net_cl, frame, autocast_dtype=torch.bfloat16, channels_last=True, workers=2, **kw)
    assert low.dtype == np.float32 and low.shape == ref.shape
    assert 0 < np.abs(low - ref).max() < 0.02  # bf16 rounding, not another result


def test_two_tile_workers_write_the_same_file_as_one(tiny_ckpt, inputs, tmp_path):
    src = sorted(inputs.glob("*.dng"))[0]
    common = [src, "--ckpt", tiny_ckpt, "--tile", "48", "--overlap", "16"]
    threads = torch.get_num_threads()
    try:
        assert predict.main([str(a) for a in [*common, "--out-dir", tmp_path / "one", "--threads", "1"]]) == 0
        two = [*common, "--out-dir", tmp_path / "two", "--threads", "2", "--parallel", "tiles"]
        assert predict.main([str(a) for a in two]) == 0
    finally:
        torch.set_num_threads(threads)
    assert (tmp_path / "one" / src.name).read_bytes() == (tmp_path / "two" / src.name).read_bytes()
