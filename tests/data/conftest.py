"""Fixtures of the isp.data tests: small real DNG files written with isp.raw.write_dng."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from isp.raw import RawMetadata, write_dng

CAM_TO_SRGB = np.array([[1.6, -0.4, -0.2], [-0.2, 1.5, -0.3], [0.0, -0.5, 1.5]])
BLACK, WHITE = 512, 16383
ACTIVE = (2, 8, 2 + 40, 8 + 56)  # 40x56 visible, 2 masked rows on top, 8 masked columns at the left
SENSOR_SHAPE = (44, 64)


def write_raw(
    path: Path, *, iso: float | None, exposure: float | None, seed: int, level: float = 2000.0
) -> Path:
    """A DNG with a random scene around ``level`` DN above black and masked margins at black."""
    rng = np.random.default_rng(seed)
    sensor = np.full(SENSOR_SHAPE, BLACK, dtype=np.float64) + rng.normal(0, 3, SENSOR_SHAPE)
    top, left, bottom, right = ACTIVE
    sensor[top:bottom, left:right] += rng.uniform(0, 2 * level, (bottom - top, right - left))
    meta = RawMetadata(
        iso=iso,
        exposure_time=exposure,
        make="Acme",
        model="Test",
        wb=np.array([2.0, 1.0, 1.6]),
        cam_to_srgb=CAM_TO_SRGB,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_dng(
        path,
        np.clip(sensor, 0, WHITE).astype(np.uint16),
        cfa="RGGB",
        black_level=BLACK,
        white_level=WHITE,
        active_area=ACTIVE,
        metadata=meta,
    )


@pytest.fixture
def raw_writer():
    """``write_raw(path, *, iso, exposure, seed, level=2000.0) -> Path``: writes a small DNG."""
    return write_raw


@pytest.fixture
def sid_root(tmp_path: Path) -> Path:
    """A SID-like folder whose file names lie about the exposure (the EXIF is what counts).

    Pairs (short EXIF exposure -> long): 00001 0.04 s -> 10 s (ratio 250), 10002 0.01 s -> 10 s
    (ratio 1000, capped at 300), 20003 0.1 s -> 10 s (ratio 100).
    """
    root = tmp_path / "SID"
    lines = {"train": [], "test": [], "val": []}
    for i, (ident, short_t, split) in enumerate(
        [("00001", 0.04, "train"), ("10002", 0.01, "test"), ("20003", 0.1, "val")]
    ):
        write_raw(
            root / "Sony" / "short" / f"{ident}_00_0.5s.dng", iso=3200, exposure=short_t, seed=2 * i, level=10
        )
        write_raw(root / "Sony" / "long" / f"{ident}_00_30s.dng", iso=100, exposure=10.0, seed=2 * i + 1)
        lines[split].append(f"./Sony/short/{ident}_00_0.5s.dng ./Sony/long/{ident}_00_30s.dng ISO3200 F8")
    for split, content in lines.items():
        (root / f"Sony_{split}_list.txt").write_text("\n".join(content) + "\n")
    return root
