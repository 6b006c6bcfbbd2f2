"""Sample data: procedural dead-leaves scenes written as clean/noisy pairs of real DNG files.

``python -m isp.data.synth --out data/sample`` (or :func:`generate`) writes::

    OUT/pairs.csv                      columns noisy,clean,split (paths relative to OUT)
    OUT/synth.json                     the arguments it was made with (idempotency check)
    OUT/{train,val,test}/clean/NAME.dng   the scene at ISO 100, no noise (rounded to DN)
    OUT/{train,val,test}/noisy/NAME.dng   the same scene at ISO 100..25600 through isp.noise

Scenes follow the dead-leaves model (Lee, Mumford & Huang, IJCV 2001; used as a natural-image
proxy by e.g. Cao et al. and the IEEE P1858 texture chart): occluding discs, ellipses and
rectangles with power-law sizes (density ~ r^-3), each with a colour, a linear shading gradient
and sometimes a grating texture, under a smooth illumination falloff and a mild optical blur.
They are drawn in white-balanced linear camera RGB, divided by the as-shot white balance and
sampled through a Bayer CFA. Every pair gets a virtual camera (noise profile, levels, colour
matrix) and a CFA pattern in turn, so the set exercises all four Bayer phases, uniform and
per-channel black levels and several noise calibrations. The sensor has masked optical-black
margins (8 rows on top, 16 columns on the left) that carry the synthetic row noise.

Exposure is consistent: the clean file is ISO 100 at ``t`` seconds; the noisy file is the same
brightness in DN at ISO ``s`` and ``t * 100 / s`` seconds (fewer photons, more gain).
Each pair's randomness comes from ``SeedSequence([seed, split, index])``, so a pair does not
change when the number of pairs does.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from isp.noise import black_map, synthesize
from isp.raw import RawMetadata, write_dng

__all__ = ["CAMERAS", "CFAS", "VirtualCamera", "dead_leaves", "generate", "main", "mosaic_from_rgb"]

SPLITS = ("train", "val", "test")
CFAS = ("RGGB", "BGGR", "GRBG", "GBRG")
MARGIN_TOP = 8
MARGIN_LEFT = 16
BASE_ISO = 100
ISOS = tuple(100 * 2**k for k in range(9))  # 100 .. 25600
FORMAT_VERSION = 1


@dataclass(frozen=True)
class VirtualCamera:
    """Levels, colour and noise calibration of one simulated camera."""

    make: str
    model: str
    profile: str
    black_level: tuple[tuple[int, int], tuple[int, int]]
    white_level: int
    cam_to_srgb: tuple[tuple[float, float, float], ...]


CAMERAS = (
    VirtualCamera(
        "isp-synth",
        "SonyA7S2-like",
        "SonyA7S2",
        ((512, 512), (512, 512)),
        16383,
        ((1.80, -0.65, -0.15), (-0.20, 1.55, -0.35), (0.05, -0.55, 1.50)),
    ),
    VirtualCamera(
        "isp-synth",
        "NikonD850-like",
        "NikonD850",
        ((400, 400), (400, 400)),
        15520,
        ((1.65, -0.50, -0.15), (-0.15, 1.45, -0.30), (0.02, -0.45, 1.43)),
    ),
    VirtualCamera(
        "isp-synth",
        "CanonEOS70D-like",
        "CanonEOS70D",
        ((2046, 2049), (2048, 2051)),
        15000,
        ((1.90, -0.80, -0.10), (-0.25, 1.60, -0.35), (0.03, -0.60, 1.57)),
    ),
)


def _smooth_field(shape: tuple[int, int], rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    """A smooth positive field (random plane plus a radial falloff) scaled into [lo, hi]."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy /= max(h - 1, 1)
    xx /= max(w - 1, 1)
    a, b = rng.uniform(-1, 1, 2)
    cy, cx = rng.uniform(0.2, 0.8, 2)
    f = a * xx + b * yy - 1.5 * ((xx - cx) ** 2 + (yy - cy) ** 2)
    f -= f.min()
    f /= max(float(f.max()), 1e-6)
    return (lo + (hi - lo) * f).astype(np.float32)


def _leaf_colours(rng: np.random.Generator, n: int) -> np.ndarray:
    """``(n, 3)`` colours: log-uniform grey 0.03..0.9 times a mild random chroma."""
    grey = np.exp(rng.uniform(math.log(0.03), math.log(0.9), n))
    chroma = rng.normal(0.0, 0.25, (n, 3))
    chroma -= chroma.mean(axis=1, keepdims=True)
    return np.clip(grey[:, None] * (1.0 + chroma), 0.005, 1.0).astype(np.float32)


def dead_leaves(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    n_leaves: int | None = None,
    r_min: float = 5.0,
    r_max: float | None = None,
) -> np.ndarray:
    """A dead-leaves scene in white-balanced linear camera RGB: ``(H, W, 3)`` float32 in [0, 1].

    Leaves (discs, ellipses, rotated rectangles) are painted back to front with anti-aliased
    edges; radii follow ``p(r) ~ r^-3`` on ``[r_min, r_max]``; each leaf has a colour, a linear
    shading gradient and, one time in three, a sinusoidal grating. A smooth illumination field
    and a 3x3 binomial blur (optics) finish the image.

    >>> img = dead_leaves((32, 48), np.random.default_rng(0))
    >>> img.shape, img.dtype, bool(0.0 <= img.min() and img.max() <= 1.0)
    ((32, 48, 3), dtype('float32'), True)
    """
    h, w = (int(v) for v in shape)
    if h < 2 or w < 2:
        raise ValueError(f"Expected `shape` of at least 2x2. Got {shape!r}.")
    if r_max is None:
        r_max = max(r_min + 1.0, 0.5 * min(h, w))
    if n_leaves is None:
        mean_area = math.pi * 2 * r_min**2 * math.log(r_max / r_min)
        n_leaves = int(min(20000, max(50, 5.0 * h * w / mean_area)))
    img = np.empty((h, w, 3), np.float32)
    img[:] = _leaf_colours(rng, 1)[0] * _smooth_field((h, w), rng, 0.6, 1.0)[..., None]
    # every leaf's parameters in one draw (per-leaf rng calls cost more than the painting)
    a, b = r_min**-2, r_max**-2
    radii = (a - rng.random(n_leaves) * (a - b)) ** -0.5
    cys = rng.uniform(-radii, h + radii)
    cxs = rng.uniform(-radii, w + radii)
    kinds = rng.integers(0, 3, n_leaves)  # 0 disc, 1 ellipse, 2 rectangle
    thetas = rng.uniform(0, math.pi, n_leaves)
    aspects = np.where(kinds == 0, 1.0, rng.uniform(0.35, 1.0, n_leaves))
    colours = _leaf_colours(rng, n_leaves)
    grads = rng.normal(0.0, 0.25, (n_leaves, 2)) / radii[:, None]
    textured = rng.random(n_leaves) < 1.0 / 3.0
    freqs = rng.uniform(0.08, 0.35, n_leaves)
    phis = rng.uniform(0, math.pi, n_leaves)
    amps = rng.uniform(0.1, 0.35, n_leaves)
    for i in range(n_leaves):
        r, cy, cx, kind, aspect = (
            float(radii[i]),
            float(cys[i]),
            float(cxs[i]),
            int(kinds[i]),
            float(aspects[i]),
        )
        y0, y1 = max(0, int(cy - r - 1.0)), min(h, int(cy + r + 1.0) + 1)
        x0, x1 = max(0, int(cx - r - 1.0)), min(w, int(cx + r + 1.0) + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
        dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
        c, s = math.cos(thetas[i]), math.sin(thetas[i])
        u, v = c * dx + s * dy, c * dy - s * dx
        if kind == 2:  # rectangle: signed distance to the box (outside > 0)
            dist = np.maximum(np.abs(u) - r, np.abs(v) - r * aspect)
        else:  # disc / ellipse: approximate signed distance in pixels
            dist = (np.sqrt(u * u + (v / aspect) ** 2) - r) * aspect
        alpha = np.clip(0.5 - dist, 0.0, 1.0)  # anti-aliased edge, one pixel wide
        shade = np.clip(1.0 + grads[i, 0] * dx + grads[i, 1] * dy, 0.3, 1.7)
        if textured[i]:
            phase = (2 * math.pi * freqs[i]) * (math.cos(phis[i]) * dx + math.sin(phis[i]) * dy)
            shade = shade * (1.0 + amps[i] * np.sin(phase))
        patch = img[y0:y1, x0:x1]
        patch += alpha[..., None] * (shade[..., None] * colours[i] - patch)
    img *= _smooth_field((h, w), rng, 0.55, 1.0)[..., None]
    # 3x3 binomial blur, edge-replicated (optics: no perfectly sharp edges at the pixel level)
    p = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")
    img = (p[:-2] + 2 * p[1:-1] + p[2:]) / 4
    img = (img[:, :-2] + 2 * img[:, 1:-1] + img[:, 2:]) / 4
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def mosaic_from_rgb(rgb: np.ndarray, cfa: str) -> np.ndarray:
    """Sample an ``(H, W, 3)`` image through a Bayer CFA: ``-> (H, W)``.

    ``cfa`` names the top-left 2x2 row-major ("RGGB", "BGGR", "GRBG", "GBRG").

    >>> rgb = np.stack([np.full((2, 2), v) for v in (1.0, 2.0, 3.0)], -1)
    >>> mosaic_from_rgb(rgb, "GRBG")
    array([[2., 1.],
           [3., 2.]])
    """
    if cfa not in CFAS:
        raise ValueError(f"Expected `cfa` to be one of {CFAS}. Got {cfa!r}.")
    idx = np.array(["RGB".index(ch) for ch in cfa]).reshape(2, 2)
    h, w = rgb.shape[:2]
    ch = idx[np.arange(h)[:, None] % 2, np.arange(w)[None, :] % 2]
    return np.take_along_axis(rgb, ch[..., None], axis=2)[..., 0]


def _pair_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), SPLITS.index(split), int(index)]))


def _make_pair(
    dirs: dict[str, Path], split: str, index: int, size: tuple[int, int], seed: int
) -> tuple[str, str]:
    """Write one clean/noisy pair; returns their paths relative to the output root."""
    rng = _pair_rng(seed, split, index)
    order = {"train": 0, "val": 1, "test": 2}[split] * 100003 + index
    cam = CAMERAS[order % len(CAMERAS)]  # 3 cameras x 4 CFA phases: all 12 pairings every 12 files
    cfa = CFAS[order % len(CFAS)]
    iso = int(ISOS[int(rng.integers(len(ISOS)))])
    h, w = size
    hs, ws = h + MARGIN_TOP, w + MARGIN_LEFT
    area = (MARGIN_TOP, MARGIN_LEFT, hs, ws)

    scene = dead_leaves((h, w), rng)
    wb = np.array([rng.uniform(1.6, 2.5), 1.0, rng.uniform(1.3, 2.1)])
    mosaic = mosaic_from_rgb(scene / wb.astype(np.float32), cfa)
    level = math.exp(rng.uniform(math.log(0.04), math.log(0.3)))  # mean exposure, fraction of white
    mosaic = np.minimum(mosaic * np.float32(level / max(float(mosaic.mean()), 1e-6)), 1.0)

    bl = np.array(cam.black_level, dtype=np.float64)
    black = black_map((hs, ws), bl, area)
    clean = black.copy()
    vis_black = black[MARGIN_TOP:, MARGIN_LEFT:]
    clean[MARGIN_TOP:, MARGIN_LEFT:] = vis_black + mosaic * (np.float32(cam.white_level) - vis_black)
    noisy = synthesize(
        clean,
        iso=iso,
        black_level=bl,
        white_level=cam.white_level,
        active_area=area,
        rng=rng,
        profile=cam.profile,
    )
    clean_u16 = np.rint(clean).astype(np.uint16)

    exposure = float(2.0 ** rng.uniform(-8, 1))  # clean shot at ISO 100: 1/256 .. 2 s
    f_number = float(rng.choice([1.8, 2.8, 4.0, 5.6, 8.0]))
    focal = float(rng.choice([24.0, 35.0, 50.0, 85.0]))
    when = datetime(2024, 1, 1, 12, 0, 0) + timedelta(minutes=order)
    common = dict(
        f_number=f_number,
        focal_length=focal,
        make=cam.make,
        model=cam.model,
        timestamp=when,
        wb=wb,
        cam_to_srgb=np.array(cam.cam_to_srgb),
    )
    name = f"{split}{index:04d}"
    levels = dict(cfa=cfa, black_level=bl, white_level=cam.white_level, active_area=area)
    out = []
    for kind, data, shot_iso, t in (
        ("noisy", noisy, iso, exposure * BASE_ISO / iso),
        ("clean", clean_u16, BASE_ISO, exposure),
    ):
        path = dirs[kind] / f"{name}.dng"
        write_dng(path, data, metadata=RawMetadata(iso=float(shot_iso), exposure_time=t, **common), **levels)
        out.append(f"{split}/{kind}/{name}.dng")
    return out[0], out[1]


def _arguments(n_train: int, n_val: int, n_test: int, size: tuple[int, int], seed: int) -> dict:
    return {
        "generator": "isp.data.synth",
        "format_version": FORMAT_VERSION,
        "n_train": n_train,
        "n_val": n_val,
        "n_test": n_test,
        "size": [int(size[0]), int(size[1])],
        "seed": seed,
    }


def _read_manifest(out: Path) -> dict | None:
    try:
        return json.loads((out / "synth.json").read_text())
    except (OSError, ValueError):
        return None


def generate(
    out: str | os.PathLike = "data/sample",
    *,
    n_train: int = 48,
    n_val: int = 8,
    n_test: int = 8,
    size: tuple[int, int] = (256, 384),
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write the sample dataset into ``out`` (deterministic in its arguments); returns ``out``.

    Idempotent: when ``out/synth.json`` records the same arguments the call returns at once.
    An existing ``out`` made with other arguments (or not by this generator) raises
    :class:`FileExistsError` unless ``overwrite=True``. The set is written to a temporary
    sibling folder and renamed into place, so ``out`` is either complete or absent, also when
    several processes call this at once.

    Args:
        out: output folder.
        n_train: pairs in the train split.
        n_val: pairs in the val split.
        n_test: pairs in the test split.
        size: ``(H, W)`` of the visible mosaic (the sensor adds 8 masked rows on top and 16
            masked columns at the left).
        seed: random seed.
        overwrite: replace an ``out`` made with other arguments.
    """
    counts = {"train": n_train, "val": n_val, "test": n_test}
    for key, n in counts.items():
        if not (isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0):
            raise ValueError(f"Expected `n_{key}` to be an integer >= 0. Got {n!r}.")
    if sum(counts.values()) == 0:
        raise ValueError("Expected at least one pair in `n_train`, `n_val` or `n_test`. Got 0 in all.")
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"Expected `size` to be (H, W). Got {size!r}.") from None
    if h < 32 or w < 32 or h % 2 or w % 2:  # LibRaw rejects images under 22 pixels a side
        raise ValueError(f"Expected `size` (H, W) of even numbers >= 32. Got {size!r}.")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"Expected `seed` to be an integer >= 0. Got {seed!r}.")
    out = Path(out)
    args = _arguments(int(n_train), int(n_val), int(n_test), (h, w), int(seed))
    if out.exists():
        if _read_manifest(out) == args:
            return out
        if not overwrite:
            raise FileExistsError(
                f"Expected `out` {str(out)!r} to be absent or made with the same arguments; it exists "
                f"and differs (pass overwrite=True / --overwrite to replace it)."
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        rows = []
        for split in SPLITS:
            dirs = {kind: tmp / split / kind for kind in ("clean", "noisy")}
            for d in dirs.values():
                d.mkdir(parents=True)
            for i in range(counts[split]):
                noisy, clean = _make_pair(dirs, split, i, (h, w), int(seed))
                rows.append((noisy, clean, split))
        with open(tmp / "pairs.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["noisy", "clean", "split"])
            writer.writerows(rows)
        (tmp / "synth.json").write_text(json.dumps(args, indent=2) + "\n")
        if out.exists():  # overwrite (checked above), or another process finished first
            if _read_manifest(out) == args:
                return out
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(out, old)
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(tmp, out)
        except OSError:
            if _read_manifest(out) != args:  # lost a race to a different request: report it
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def parse_size(text: str) -> tuple[int, int]:
    """``"HxW"`` -> ``(H, W)`` for argparse (``ArgumentTypeError`` otherwise)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 256x384, got {text!r}") from None
    return h, w


def main(argv: list[str] | None = None) -> Path:
    """Command line: ``python -m isp.data.synth --out data/sample [--n-train 48 ...]``."""
    parser = argparse.ArgumentParser(
        prog="python -m isp.data.synth",
        description="Write the procedural clean/noisy DNG sample dataset (dead-leaves scenes, "
        "calibrated noise at ISO 100..25600, masked optical-black margins, four CFA phases).",
    )
    parser.add_argument("--out", default="data/sample", help="output folder (default: data/sample)")
    parser.add_argument("--n-train", type=int, default=48, help="train pairs (default 48)")
    parser.add_argument("--n-val", type=int, default=8, help="val pairs (default 8)")
    parser.add_argument("--n-test", type=int, default=8, help="test pairs (default 8)")
    parser.add_argument("--size", type=parse_size, default=(256, 384), help="visible HxW (default 256x384)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an output made with other arguments"
    )
    a = parser.parse_args(argv)
    try:
        out = generate(
            a.out,
            n_train=a.n_train,
            n_val=a.n_val,
            n_test=a.n_test,
            size=a.size,
            seed=a.seed,
            overwrite=a.overwrite,
        )
    except (ValueError, FileExistsError) as e:
        parser.error(str(e))
    print(f"sample data ready: {out / 'pairs.csv'}")
    return out


if __name__ == "__main__":
    main()
