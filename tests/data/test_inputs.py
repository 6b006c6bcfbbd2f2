import numpy as np
import pytest

from isp.data.inputs import (
    ISO_RANGE,
    ROW_CHANNELS,
    SCALAR_CHANNELS,
    crop_inputs,
    model_inputs,
    noise_from_scalars,
)
from isp.noise.camera import SensorModel, synthesize_sensor
from isp.raw import RawMetadata, frame_from_sensor, noise_vectors, pack


def _frame(row_dn=0.0, masked=16, iso=1600.0, seed=0, size=(256, 384), cfa="GRBG"):
    m = SensorModel(
        bits=14,
        black=512,
        white=16383,
        gain=4.0,
        read_e=3.0,
        post_dn=4.0,
        tukey_lambda=None,
        row_dn=row_dn,
        iso=1600.0,
        exif_iso=iso,
        exposure_time=0.01,
        masked_columns=masked,
    )
    y, x = np.mgrid[0 : size[0], 0 : size[1]]
    clean = 0.1 + 0.05 * np.sin(x / 11.0) * np.cos(y / 7.0)
    sensor = synthesize_sensor(clean, m, np.random.default_rng(seed))
    meta = RawMetadata(iso=iso, exposure_time=0.01)
    frame = frame_from_sensor(
        sensor,
        cfa=cfa,
        black_level=512,
        white_level=16383,
        active_area=(0, masked, size[0], masked + size[1]),
        metadata=meta,
    )
    return frame, m, pack(clean.astype(np.float32), cfa)[0]


def test_channels_and_measured_noise():
    frame, m, _ = _frame()
    x = model_inputs(frame)
    h, w = x.image.shape[1:]
    assert x.row.shape == (ROW_CHANNELS, h) and x.col.shape == (5, w) and x.scalar.shape == (SCALAR_CHANNELS,)
    row5, col5 = noise_vectors(frame)
    np.testing.assert_allclose(x.row[4], row5[4])
    np.testing.assert_allclose(x.row[:4], row5[:4] * 1024, rtol=1e-6)
    a, b = noise_from_scalars(x.scalar)
    assert a == pytest.approx(m.a, rel=0.15) and b == pytest.approx(x.noise.b, rel=1e-5)
    assert np.sqrt(b) == pytest.approx(m.read_dn / m.dn_range, rel=0.1)
    assert x.scalar[0] == pytest.approx(np.log2(16)) and x.noise.source == "image+ob"


def test_banding_is_estimated_and_subtracted():
    frame, m, clean = _frame(row_dn=60.0)
    x = model_inputs(frame)
    plain = model_inputs(frame, destripe=False)
    err = lambda img: float(np.sqrt(np.mean((img.mean(axis=2) - clean.mean(axis=2)) ** 2)))  # noqa: E731
    assert err(x.image) < 0.4 * err(plain.image)
    np.testing.assert_allclose(x.row[5:7], x.banding * 1024, rtol=1e-6)
    assert not plain.row[5:7].any()


def test_gain_scales_image_vectors_and_noise():
    frame, _, _ = _frame()
    x1, x4 = model_inputs(frame), model_inputs(frame, gain=4.0)
    np.testing.assert_allclose(x4.image, 4 * x1.image, rtol=1e-5, atol=1e-7)
    a1, b1 = noise_from_scalars(x1.scalar)
    a4, b4 = noise_from_scalars(x4.scalar)
    assert a4 == pytest.approx(4 * a1, rel=1e-5) and b4 == pytest.approx(16 * b1, rel=1e-5)


def test_absurd_metadata_is_read_as_unknown_with_a_warning():
    frame, _, _ = _frame(iso=1e8)
    assert 1e8 > ISO_RANGE[1]
    with pytest.warns(UserWarning, match="iso"):
        x = model_inputs(frame)
    assert x.scalar[0] == 0 and x.scalar[3] == 0  # log2 ISO and its "known" flag


def test_no_masked_pixels_falls_back_to_the_image():
    frame, m, _ = _frame(masked=0)
    x = model_inputs(frame)
    assert x.noise.source == "image" and x.row[4].max() == 0
    assert noise_from_scalars(x.scalar)[0] == pytest.approx(m.a, rel=0.2)


def test_crop_inputs_cuts_rows_and_columns():
    frame, _, _ = _frame()
    x = model_inputs(frame)
    c = crop_inputs(x, 10, 20, 32, 48)
    np.testing.assert_array_equal(c["image"], x.image[:, 10:42, 20:68])
    np.testing.assert_array_equal(c["row"], x.row[:, 10:42])
    np.testing.assert_array_equal(c["col"], x.col[:, 20:68])


def test_refuses_what_is_not_a_frame():
    with pytest.raises(TypeError, match="RawFrame"):
        model_inputs(np.zeros((8, 8)))
