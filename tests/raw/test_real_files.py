"""Real camera files (``../shared/realraws``): every Bayer file reads, every trap is refused, fuzzing.

The folder is not part of the repository (MANIFEST.tsv there says where each file comes from);
every test here skips with the reason where it is absent, as in a user's clone.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from isp.raw import RawError, RawReadError, UnsupportedRawError, read

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "realraws"
pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} (real camera files) is absent")

NON_BAYER = ("kodak_c330_YRGB_nonCFA.raw", "canon_eos_6d_linear_lossy_nonCFA.dng")


def bayer_files() -> list[Path]:
    if not SHARED.is_dir():
        return []
    return sorted(
        p
        for p in SHARED.iterdir()
        if p.is_file() and p.suffix.lower() not in (".md", ".tsv") and p.name not in NON_BAYER
    )


def reject_files() -> list[Path]:
    return sorted((SHARED / "reject").iterdir()) if (SHARED / "reject").is_dir() else []


def sane(frame) -> None:
    """What a good file's frame satisfies (the checks the fuzz test applies to whatever decodes)."""
    h, w = frame.visible_shape
    top, left, bottom, right = frame.active_area
    assert 0 <= top < bottom <= frame.sensor.shape[0] and 0 <= left < right <= frame.sensor.shape[1]
    assert np.all(np.isfinite(frame.black_level)) and frame.white_level > frame.black_level.max() >= 0
    assert frame.white_level <= 65535
    visible = frame.sensor[top:bottom, left:right]
    zero_rows = np.count_nonzero(visible.max(axis=1) == 0)
    assert zero_rows <= h / 2, zero_rows
    assert np.isfinite(frame.mosaic).all() and frame.mosaic.shape == (h, w)


@pytest.mark.parametrize("path", bayer_files(), ids=lambda p: p.name)
def test_every_bayer_file_reads_and_is_sane(path, recwarn):
    frame = read(path)
    sane(frame)
    assert frame.cfa in ("RGGB", "BGGR", "GRBG", "GBRG")


@pytest.mark.parametrize("name", NON_BAYER)
def test_the_non_bayer_files_are_refused_naming_them(name):
    with pytest.raises(UnsupportedRawError, match=name):
        read(SHARED / name)


@pytest.mark.parametrize("path", reject_files(), ids=lambda p: p.name)
def test_every_reject_is_refused_with_a_reason_naming_it(path, capfd):
    with pytest.raises(RawError, match=path.name) as info:
        read(path)
    if "TRUNCATED" in path.name:
        assert "truncated" in str(info.value), str(info.value)
    err = capfd.readouterr().err  # LibRaw's own messages are in the reason, not on the terminal
    assert err == "", err


def test_the_two_silent_traps_are_refused_as_truncated():
    for name in ("panasonic_lx3_TRUNCATED_decodes_garbage.rw2", "canon_350d_TRUNCATED_decodes_zeros.dng"):
        with pytest.raises(RawReadError, match=r"the file is truncated: its header declares a \d+ x \d+ raw"):
            read(SHARED / "reject" / name)


# -- fuzzing in child processes, in the spirit of rawspeed's and LibRaw's (OSS-Fuzz) fuzzers ----------

CHILD = r"""
import json, sys, warnings
import numpy as np
sys.path.insert(0, sys.argv[2])
from isp.raw import RawError, read
warnings.simplefilter("ignore")
try:
    f = read(sys.argv[1])
except RawError as err:
    print(json.dumps({"refused": str(err)}))
else:
    top, left, bottom, right = f.active_area
    v = f.sensor[top:bottom, left:right]
    print(json.dumps({"decoded": {
        "shape": list(f.sensor.shape), "area": [top, left, bottom, right],
        "black": f.black_level.ravel().tolist(), "white": f.white_level,
        "zero_rows": int(np.count_nonzero(v.max(axis=1) == 0)),
        "finite": bool(np.isfinite(f.mosaic).all())}}))
"""


def mutations(seed: int, n: int) -> list[tuple[str, str, int, int]]:
    """``n`` seeded (file, kind, position, value) mutations: truncations and byte flips."""
    rng = random.Random(seed)
    files = bayer_files()
    out = []
    for _ in range(n):
        path = rng.choice(files)
        size = path.stat().st_size
        kind = rng.choice(["truncate", "flip", "flip_header"])
        pos = rng.randrange(64, size) if kind != "flip_header" else rng.randrange(0, min(size, 4096))
        out.append((path.name, kind, pos, rng.randrange(1, 256)))
    return out


def mutate(src: Path, dst: Path, kind: str, pos: int, value: int) -> None:
    data = bytearray(src.read_bytes())
    if kind == "truncate":
        del data[pos:]
    else:
        for i in range(pos, min(pos + 8, len(data))):
            data[i] ^= value
    dst.write_bytes(bytes(data))


def _fuzz(cases, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    for i, (name, kind, pos, value) in enumerate(cases):
        dst = tmp_path / f"case{i}{Path(name).suffix}"
        mutate(SHARED / name, dst, kind, pos, value)
        label = f"{name} {kind} at {pos} (^{value})"
        try:
            run = subprocess.run(
                [sys.executable, "-c", CHILD, str(dst), str(ROOT)],
                capture_output=True,
                text=True,
                timeout=60,
                env=env,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"{label}: read() hung for 60 s")
        assert run.returncode == 0, f"{label}: the reader crashed ({run.returncode}): {run.stderr[-800:]}"
        result = json.loads(run.stdout.strip().splitlines()[-1])
        if "refused" in result:
            assert dst.name in result["refused"], (label, result)
            continue
        d = result["decoded"]
        top, left, bottom, right = d["area"]
        assert 0 <= top < bottom <= d["shape"][0] and 0 <= left < right <= d["shape"][1], (label, d)
        assert max(d["black"]) < d["white"] <= 65535 and d["finite"], (label, d)
        assert d["zero_rows"] <= (bottom - top) / 2, (label, d)
        if kind == "truncate":  # whatever decodes from a cut file must at least be plausible in size
            assert pos >= (d["shape"][0] * d["shape"][1]) / 64, (label, d)
        dst.unlink()


def test_fuzz_small_seeded_subset(tmp_path):
    _fuzz(mutations(seed=14, n=12), tmp_path)


@pytest.mark.slow
def test_fuzz_hundreds_of_mutations(tmp_path):
    _fuzz(mutations(seed=2026, n=200), tmp_path)


def test_a_camera_auto_white_balance_is_dcraws_auto_white_balance(recwarn):
    # The D30 records "auto" without its multipliers (LibRaw: camera white balance [-1, ...]);
    # LibRaw's own rendering with the camera balance then applies dcraw's automatic one: the ratio
    # of its channel sums to those of a rendering with unit multipliers is the balance it used.
    import rawpy

    path = SHARED / "canon_eos_d30_CRW.CRW"
    with rawpy.imread(str(path)) as raw:
        assert raw.camera_whitebalance[0] == -1
    kw = {
        "output_color": rawpy.ColorSpace.raw,
        "gamma": (1, 1),
        "no_auto_bright": True,
        "output_bps": 16,
        "half_size": True,
        "user_flip": 0,
        "highlight_mode": rawpy.HighlightMode.Ignore,
    }
    renders = []
    for wb in ({"use_camera_wb": True}, {"user_wb": [1, 1, 1, 1]}):
        with rawpy.imread(str(path)) as raw:
            renders.append(raw.postprocess(**wb, **kw).reshape(-1, 3).astype(np.float64))
    unclipped = (renders[0].max(axis=1) < 60000) & (renders[1].max(axis=1) < 60000)
    used = renders[0][unclipped].sum(axis=0) / renders[1][unclipped].sum(axis=0)
    np.testing.assert_allclose(read(path).metadata.wb, used / used[1], rtol=0.02)
