import os
import shutil
import subprocess

import numpy as np
import pytest
import rawpy
from conftest import ACTIVE, CAM_TO_SRGB

from isp.raw import BAYER_PATTERNS, RawMetadata, write_dng
from isp.raw.color import SRGB_TO_XYZ

BLACK = np.array([[100.0, 200.0], [300.0, 400.0]])


def _camera_to_srgb_like_dcraw(xyz_to_cam):
    """Independent reference: dcraw's cam_xyz_coeff written out step by step."""
    cam_rgb = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            cam_rgb[i, j] = sum(xyz_to_cam[i, k] * SRGB_TO_XYZ[k, j] for k in range(3))
    for i in range(3):
        cam_rgb[i] /= cam_rgb[i].sum()
    return np.linalg.inv(cam_rgb)


@pytest.mark.parametrize("cfa", BAYER_PATTERNS)
def test_rawpy_reads_back_what_was_written(tmp_path, sensor, metadata, cfa):
    path = write_dng(
        tmp_path / "a.dng",
        sensor,
        cfa=cfa,
        black_level=BLACK,
        white_level=4095,
        active_area=ACTIVE,
        metadata=metadata,
    )
    letters = "RGBG"
    with rawpy.imread(str(path)) as raw:
        assert np.array_equal(raw.raw_image, sensor)
        assert raw.raw_image.dtype == np.uint16
        pattern = raw.raw_pattern
        assert "".join(letters[c] for c in pattern.ravel()) == cfa
        per_position = np.asarray(raw.black_level_per_channel)[pattern]
        np.testing.assert_array_equal(per_position, BLACK)
        assert raw.white_level == 4095
        s = raw.sizes
        assert (s.top_margin, s.left_margin, s.top_margin + s.height, s.left_margin + s.width) == ACTIVE
        o = raw.other
        assert o.iso_speed == 3200
        assert o.shutter_speed == pytest.approx(1 / 250, rel=1e-6)
        assert o.aperture == pytest.approx(2.8, rel=1e-6)
        assert o.focal_length == pytest.approx(35.0)
        assert o.timestamp == metadata.timestamp
        wb = np.asarray(raw.camera_whitebalance[:3])
        np.testing.assert_allclose(wb / wb[1], metadata.wb, rtol=1e-6)
        # LibRaw's own camera -> sRGB (rgb_cam), computed from ColorMatrix1 with its own constants.
        np.testing.assert_allclose(np.asarray(raw.color_matrix)[:, :3], CAM_TO_SRGB, atol=2e-4)


def test_color_matrix_tag_inverts_to_cam_to_srgb(tmp_path, metadata):
    import tifffile

    path = write_dng(
        tmp_path / "c.dng",
        np.zeros((40, 40), np.uint16),
        cfa="RGGB",
        black_level=0,
        white_level=1023,
        metadata=metadata,
    )
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages.first.tags
        v = np.asarray(tags["ColorMatrix1"].value, dtype=float)
        illuminant = tags["CalibrationIlluminant1"].value
    assert illuminant == 21  # D65
    xyz_to_cam = (v[0::2] / v[1::2]).reshape(3, 3)
    np.testing.assert_allclose(_camera_to_srgb_like_dcraw(xyz_to_cam), CAM_TO_SRGB, atol=1e-6)
    # DNG convention: D65 white (XYZ of sRGB white) gives a largest camera value of 1.
    assert (xyz_to_cam @ SRGB_TO_XYZ.sum(axis=1)).max() == pytest.approx(1.0, abs=1e-6)


def test_odd_visible_size_round_trips(tmp_path, metadata):
    sensor = np.random.default_rng(2).integers(0, 1023, size=(71, 101), dtype=np.uint16)
    path = write_dng(
        tmp_path / "odd.dng", sensor, cfa="GBRG", black_level=64, white_level=1023, active_area=(4, 6, 67, 99)
    )
    with rawpy.imread(str(path)) as raw:
        assert np.array_equal(raw.raw_image, sensor)
        assert (raw.sizes.height, raw.sizes.width) == (63, 93)
        assert raw.other.iso_speed == 0  # no ISO written: LibRaw's "missing" is 0


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed (apt install exiftool)")
def test_exiftool_validates(tmp_path, sensor, metadata):
    path = write_dng(
        tmp_path / "v.dng",
        sensor,
        cfa="RGGB",
        black_level=BLACK,
        white_level=4095,
        active_area=ACTIVE,
        metadata=metadata,
    )
    out = subprocess.run(
        ["exiftool", "-validate", "-warning", "-a", str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert out.split(":", 1)[0].strip() == "Validate" and out.split(":", 1)[1].strip() == "OK", out
    tags = subprocess.run(
        [
            "exiftool",
            "-s",
            "-ISO",
            "-ExposureTime",
            "-FNumber",
            "-Make",
            "-Model",
            "-DateTimeOriginal",
            "-FocalLength",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "ISO                             : 3200" in tags
    assert "ExposureTime                    : 1/250" in tags
    assert "DateTimeOriginal                : 2024:05:06 07:08:09" in tags
    assert "Make                            : Acme" in tags


@pytest.mark.skipif(shutil.which("dcraw") is None, reason="dcraw not installed")
def test_dcraw_identifies(tmp_path, sensor, metadata):
    path = write_dng(
        tmp_path / "d.dng",
        sensor,
        cfa="GRBG",
        black_level=BLACK,
        white_level=4095,
        active_area=ACTIVE,
        metadata=metadata,
    )
    out = subprocess.run(["dcraw", "-i", "-v", str(path)], capture_output=True, text=True).stdout
    assert "Camera: Acme Sensor 64" in out
    assert "ISO speed: 3200" in out
    assert "Number of raw images: 1" in out
    assert "Filter pattern: GR/BG" in out


def test_refuses_to_overwrite_and_leaves_no_temporary(tmp_path, sensor):
    path = tmp_path / "x.dng"
    write_dng(path, sensor, cfa="RGGB", black_level=0, white_level=4095)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_dng(path, sensor + 1, cfa="RGGB", black_level=0, white_level=4095)
    assert path.read_bytes() == before
    write_dng(path, sensor // 2, cfa="RGGB", black_level=0, white_level=4095, overwrite=True)
    with rawpy.imread(str(path)) as raw:
        assert np.array_equal(raw.raw_image, sensor // 2)
    assert sorted(os.listdir(tmp_path)) == ["x.dng"]


def test_failed_write_leaves_nothing(tmp_path, sensor):
    with pytest.raises(ValueError, match="cam_to_srgb"):
        write_dng(
            tmp_path / "bad.dng",
            sensor,
            cfa="RGGB",
            black_level=0,
            white_level=4095,
            metadata=RawMetadata(cam_to_srgb=np.zeros((3, 3))),
        )
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"cfa": "RGBG"}, ValueError, "`cfa`"),
        ({"sensor": np.zeros((40, 40), np.float32)}, ValueError, "uint16"),
        ({"sensor": [[1, 2]]}, TypeError, "numpy.ndarray"),
        ({"active_area": (1, 0, 40, 40)}, ValueError, "even row"),
        ({"active_area": (0, 0, 50, 40)}, ValueError, "inside the sensor"),
        ({"active_area": (0, 0, 20, 40)}, ValueError, "22 x 22"),
        ({"black_level": -1}, ValueError, "`black_level`"),
        ({"black_level": [1, 2, 3]}, ValueError, "`black_level`"),
        ({"black_level": [[0.5, 1], [2, 3]]}, ValueError, "whole-DN"),
        ({"white_level": 10, "black_level": 64}, ValueError, "`white_level`"),
        ({"white_level": 1000.5}, ValueError, "whole number"),
        ({"metadata": {"iso": 100}}, TypeError, "RawMetadata"),
        ({"metadata": RawMetadata(wb=np.array([1.0, 0.0, 1.0]))}, ValueError, "wb"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, error, match):
    args = {"sensor": np.zeros((40, 40), np.uint16), "cfa": "RGGB", "black_level": 0, "white_level": 1023}
    args.update(kwargs)
    sensor = args.pop("sensor")
    with pytest.raises(error, match=match):
        write_dng(tmp_path / "e.dng", sensor, **args)
    assert os.listdir(tmp_path) == []
