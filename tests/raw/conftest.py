"""Fixtures for the isp.raw tests: small real DNG files written with isp.raw.write_dng."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from isp.raw import RawMetadata

# A plausible camera -> sRGB matrix (rows sum to 1), independent of the code under test.
CAM_TO_SRGB = np.array([[1.72, -0.55, -0.17], [-0.21, 1.46, -0.25], [0.03, -0.48, 1.45]])


@pytest.fixture
def metadata() -> RawMetadata:
    return RawMetadata(
        iso=3200.0,
        exposure_time=1 / 250,
        f_number=2.8,
        focal_length=35.0,
        make="Acme",
        model="Sensor 64",
        timestamp=dt.datetime(2024, 5, 6, 7, 8, 9),
        wb=np.array([2.1, 1.0, 1.5]),
        cam_to_srgb=CAM_TO_SRGB,
    )


@pytest.fixture
def sensor() -> np.ndarray:
    """uint16 (76, 110): a 64 x 96 visible area at (6, 8) with masked margins of 6/6 rows, 8/6 cols."""
    rng = np.random.default_rng(1)
    return rng.integers(0, 4096, size=(76, 110), dtype=np.uint16)


ACTIVE = (6, 8, 70, 104)
