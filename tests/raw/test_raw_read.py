import datetime as dt
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from conftest import ACTIVE, CAM_TO_SRGB

from isp.raw import (
    BAYER_PATTERNS,
    RawError,
    RawMetadata,
    RawReadError,
    UnsupportedRawError,
    pack,
    read,
    unpack,
    write_dng,
)

BLACK = np.array([[100.0, 200.0], [300.0, 400.0]])  # per position: different for each channel
WHITE = 4095.0


def _expected(sensor, r0, r1, c0, c1, top, left):
    """Independent reference: per-pixel (x - black[(r-top)%2, (c-left)%2]) / (white - black), float64."""
    rows = np.arange(r0, r1)[:, None]
    cols = np.arange(c0, c1)[None, :]
    black = BLACK[(rows - top) % 2, (cols - left) % 2]
    return (sensor[r0:r1, c0:c1].astype(np.float64) - black) / (WHITE - black)


@pytest.mark.parametrize("cfa", BAYER_PATTERNS)
def test_round_trip_every_cfa(tmp_path, sensor, metadata, cfa):
    path = write_dng(
        tmp_path / f"{cfa}.dng",
        sensor,
        cfa=cfa,
        black_level=BLACK,
        white_level=WHITE,
        active_area=ACTIVE,
        metadata=metadata,
    )
    frame = read(path)
    top, left, bottom, right = ACTIVE
    assert frame.path == str(path)
    assert frame.cfa == cfa
    assert frame.active_area == ACTIVE
    np.testing.assert_array_equal(frame.black_level, BLACK)
    assert frame.white_level == WHITE
    assert frame.sensor.dtype == np.uint16 and np.array_equal(frame.sensor, sensor)
    assert frame.mosaic.dtype == np.float32 and frame.mosaic.shape == (64, 96)
    np.testing.assert_allclose(
        frame.mosaic, _expected(sensor, top, bottom, left, right, top, left), rtol=1e-6, atol=1e-7
    )
    ob = frame.optical_black
    np.testing.assert_allclose(
        ob.left, _expected(sensor, top, bottom, 0, left, top, left), rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(
        ob.right, _expected(sensor, top, bottom, right, 110, top, left), rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(
        ob.top, _expected(sensor, 0, top, left, right, top, left), rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(
        ob.bottom, _expected(sensor, bottom, 76, left, right, top, left), rtol=1e-6, atol=1e-7
    )
    # write -> read -> pack -> unpack
    planes, info = pack(frame)
    np.testing.assert_array_equal(unpack(planes, info), frame.mosaic)
    # and the frame writes back to the same file content
    again = read(
        write_dng(
            tmp_path / "again.dng",
            frame.sensor,
            cfa=frame.cfa,
            black_level=frame.black_level,
            white_level=frame.white_level,
            active_area=frame.active_area,
            metadata=frame.metadata,
        )
    )
    np.testing.assert_array_equal(again.mosaic, frame.mosaic)
    np.testing.assert_allclose(again.metadata.cam_to_srgb, frame.metadata.cam_to_srgb, atol=1e-6)


def test_metadata_equals_what_was_written(tmp_path, sensor, metadata):
    m = read(
        write_dng(
            tmp_path / "m.dng",
            sensor,
            cfa="RGGB",
            black_level=BLACK,
            white_level=WHITE,
            active_area=ACTIVE,
            metadata=metadata,
        )
    ).metadata
    assert m.iso == 3200.0
    assert m.exposure_time == pytest.approx(1 / 250, rel=1e-6)
    assert m.f_number == pytest.approx(2.8, rel=1e-6)
    assert m.focal_length == pytest.approx(35.0)
    assert (m.make, m.model) == ("Acme", "Sensor 64")
    assert m.timestamp == dt.datetime(2024, 5, 6, 7, 8, 9)
    np.testing.assert_allclose(m.wb, [2.1, 1.0, 1.5], rtol=1e-6)
    np.testing.assert_allclose(m.cam_to_srgb, CAM_TO_SRGB, atol=1e-6)
    np.testing.assert_allclose(m.cam_to_srgb.sum(axis=1), 1.0, atol=1e-6)


def test_missing_metadata_is_none_not_zero(tmp_path, sensor):
    frame = read(write_dng(tmp_path / "bare.dng", sensor, cfa="BGGR", black_level=64, white_level=WHITE))
    m = frame.metadata
    assert m.iso is None and m.exposure_time is None and m.f_number is None and m.focal_length is None
    assert m.timestamp is None
    assert (m.make, m.model) == ("", "")
    np.testing.assert_array_equal(m.wb, [1.0, 1.0, 1.0])
    np.testing.assert_allclose(m.cam_to_srgb, np.eye(3), atol=1e-6)
    ob = frame.optical_black
    assert ob.left is None and ob.right is None and ob.top is None and ob.bottom is None


def test_per_position_black_gives_zero_mosaic(tmp_path):
    # every pixel sits exactly at its own position's black level -> the mosaic is exactly 0
    sensor = np.tile(BLACK.astype(np.uint16), (20, 24))
    frame = read(write_dng(tmp_path / "b.dng", sensor, cfa="GRBG", black_level=BLACK, white_level=WHITE))
    assert np.all(frame.mosaic == 0.0)
    # one DN above black is 1 / (white - black) of the position
    frame = read(write_dng(tmp_path / "b1.dng", sensor + 1, cfa="GRBG", black_level=BLACK, white_level=WHITE))
    np.testing.assert_allclose(frame.mosaic[:2, :2], 1.0 / (WHITE - BLACK), rtol=1e-6)


def test_high_iso_beyond_short(tmp_path, sensor):
    frame = read(
        write_dng(
            tmp_path / "h.dng",
            sensor,
            cfa="RGGB",
            black_level=0,
            white_level=WHITE,
            metadata=RawMetadata(iso=204800),
        )
    )
    assert frame.metadata.iso == 204800


# --- bad inputs ----------------------------------------------------------------------------------


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(RawReadError, match=r"nope\.dng.*does not exist"):
        read(tmp_path / "nope.dng")
    with pytest.raises(RawReadError, match="not a regular file"):
        read(tmp_path)
    assert issubclass(RawReadError, RawError) and issubclass(RawError, ValueError)


@pytest.mark.parametrize("content", [b"", b"hello, not a raw file\n" * 10, bytes(range(256)) * 40])
def test_not_a_raw_file(tmp_path, content):
    path = tmp_path / "junk.nef"
    path.write_bytes(content)
    with pytest.raises(RawReadError, match=r"junk\.nef"):
        read(path)


def test_corrupt_dng_header(tmp_path, sensor):
    path = write_dng(tmp_path / "c.dng", sensor, cfa="RGGB", black_level=0, white_level=WHITE)
    data = bytearray(path.read_bytes())
    data[4:8] = struct.pack("<I", len(data) + 1000)  # IFD0 offset beyond the end
    path.write_bytes(bytes(data))
    with pytest.raises(RawReadError, match=r"c\.dng.*corrupt"):
        read(path)


def test_truncated_dngs_raise_and_never_crash(tmp_path, sensor, metadata):
    """Cut a DNG at many points; read each in a child process so a segfault is a failure, not a crash."""
    path = write_dng(
        tmp_path / "full.dng",
        sensor,
        cfa="RGGB",
        black_level=BLACK,
        white_level=WHITE,
        active_area=ACTIVE,
        metadata=metadata,
    )
    data = path.read_bytes()
    strip = tifffile.TiffFile(path).pages.first.dataoffsets[0]
    cuts = sorted({8, 100, strip - 1, strip + 10, strip + len(data) // 3, len(data) - 400})
    names = []
    for cut in cuts:
        p = tmp_path / f"cut{cut}.dng"
        p.write_bytes(data[:cut])
        names.append(str(p))
    code = (
        "import json, sys\nfrom isp.raw import read, RawReadError\nout = {}\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n        read(p); out[p] = 'ok'\n"
        "    except RawReadError as e:\n        out[p] = str(e)\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *names],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert proc.returncode == 0, f"child died with {proc.returncode}: {proc.stderr[-2000:]}"
    results = json.loads(proc.stdout)
    for name in names:
        assert results[name] != "ok", f"{name} read without error"
        assert name in results[name]


def _patch_photometric(path, value):
    with tifffile.TiffFile(path) as tif:
        at = tif.pages.first.tags[262].valueoffset
    with open(path, "r+b") as fh:
        fh.seek(at)
        fh.write(struct.pack("<H", value))


def _plain_dng(path, data, photometric, extra=()):
    base = [
        (50706, 1, 4, bytes((1, 4, 0, 0)), True),
        (50708, 2, 0, "Test cam", True),
        (50717, 4, 1, 4095, True),
    ]
    tifffile.imwrite(path, data, photometric=photometric, extratags=base + list(extra), metadata=None)
    return path


def test_xtrans_is_unsupported(tmp_path):
    xtrans = np.array(
        [
            [1, 1, 0, 1, 1, 2],
            [1, 1, 2, 1, 1, 0],
            [2, 0, 1, 0, 2, 1],
            [1, 1, 2, 1, 1, 0],
            [1, 1, 0, 1, 1, 2],
            [0, 2, 1, 2, 0, 1],
        ],
        np.uint8,
    )
    path = _plain_dng(
        tmp_path / "xtrans.dng",
        np.zeros((60, 60), np.uint16),
        32803,
        [(33421, 3, 2, (6, 6), True), (33422, 1, 36, bytes(xtrans.ravel()), True)],
    )
    with pytest.raises(UnsupportedRawError, match=r"xtrans\.dng.*X-Trans"):
        read(path)


def test_linear_dng_is_unsupported(tmp_path):
    path = _plain_dng(tmp_path / "linear.dng", np.zeros((60, 60, 3), np.uint16), 34892)
    with pytest.raises(UnsupportedRawError, match=r"linear\.dng.*stacked"):
        read(path)


def test_monochrome_is_unsupported(tmp_path):
    path = _plain_dng(tmp_path / "mono.dng", np.zeros((60, 60), np.uint16), "minisblack")
    _patch_photometric(path, 34892)  # LinearRaw with one sample: a monochrome DNG
    with pytest.raises(UnsupportedRawError, match=r"mono\.dng.*monochrome"):
        read(path)


def test_known_camera_keeps_the_files_own_colour_matrix(tmp_path, sensor, metadata):
    # LibRaw swaps a DNG's ColorMatrix for its built-in table when it knows the camera
    # (rgb_xyz_matrix); read must still return the matrix written in the file.
    import dataclasses

    canon = dataclasses.replace(metadata, make="Canon", model="EOS 5D")
    frame = read(
        write_dng(
            tmp_path / "k.dng", sensor, cfa="RGGB", black_level=BLACK, white_level=WHITE, metadata=canon
        )
    )
    np.testing.assert_allclose(frame.metadata.cam_to_srgb, CAM_TO_SRGB, atol=1e-6)
    assert (frame.metadata.make, frame.metadata.model) == ("Canon", "EOS 5D")
    np.testing.assert_array_equal(frame.black_level, BLACK)
    assert frame.white_level == WHITE


def test_read_leaves_the_mosaic_lazy_and_computes_it_on_access(tmp_path, sensor):
    frame = read(
        write_dng(
            tmp_path / "l.dng", sensor, cfa="GRBG", black_level=BLACK, white_level=WHITE, active_area=ACTIVE
        )
    )
    assert not frame.mosaic_ready
    assert frame.visible_shape == (64, 96)
    top, left, bottom, right = ACTIVE
    np.testing.assert_allclose(
        frame.mosaic, _expected(sensor, top, bottom, left, right, top, left), rtol=1e-6, atol=1e-7
    )
    assert frame.mosaic_ready


def test_plain_tiff_is_not_a_raw(tmp_path):
    # LibRaw itself decodes a 16-bit greyscale TIFF as a Bayer raw; read refuses it.
    tifffile.imwrite(tmp_path / "grey.tif", np.zeros((64, 64), np.uint16))
    with pytest.raises(UnsupportedRawError, match=r"grey\.tif.*plain TIFF"):
        read(tmp_path / "grey.tif")
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((64, 64, 3), np.uint8), photometric="rgb")
    with pytest.raises(RawError, match=r"rgb\.tif"):
        read(tmp_path / "rgb.tif")
