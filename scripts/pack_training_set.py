"""Pack the production recipe's training scenes into a compact, git-ignored folder (default 40 MiB).

A GPU machine gets a copy of the checkout only, and at most 64 MiB of it; ``../shared`` stays
behind. This writes what ``isp.data.SceneMix`` needs from ``../shared`` into ``data/packed``::

    python scripts/pack_training_set.py                       # ../shared -> data/packed
    python scripts/pack_training_set.py --budget-mib 30 --overwrite

    data/packed/photos/<set>/<name>.png   one crop of each photograph, downscaled by --scale
    data/packed/raws/<name>.npy           each clean real raw decimated 2x per plane, float16
    data/packed/MANIFEST.json             sources, licences, geometry, sizes, sha256 of each file

Photographs: every image of ``--content`` (each must be listed in the folder's ``MANIFEST.tsv``
with its sha256, or its source's for a derived file, and its licence note, which travels into
MANIFEST.json) is downscaled by ``--scale``
(Lanczos, default 1.25: the recipe's ``SceneMix(downscale=(1, 2))`` becomes ``(1, 2 / 1.25)`` in
``configs/production_gpu.yaml``, the same 1.25-2x of the source; the 1-1.25x range, where the
sources' own JPEG and demosaicking artefacts are largest, is dropped), then cut to one crop per
image, each side ``min(side, max(--min-side, side * s))`` with one ``s`` for all images, the
largest whose PNGs fit the budget (each image's PNG bytes per pixel are measured first). The crop's
place is random, seeded by ``--seed`` and the file's name. ``--min-side`` (default 200) keeps
every crop larger than ``SceneDataset``'s photo window at crop 64: ``2 * ceil(64 * 1.5) + 4 = 196``
pixels before its random downscale (smaller would be upsampled, i.e. blurred).

Raws: the files of ``--realraws`` that ``configs/production.yaml`` does not exclude (the
development set's scenes, non-Bayer files, ``reject/``), decoded and decimated exactly as
``SceneMix`` does (:func:`isp.data.scenes.decimated_mosaic`) and stored as float16 ``.npy``
(relative error <= 2**-11, far below any simulated noise), which ``SceneMix`` reads as they are.

Deterministic: the same sources and arguments give the same bytes (MANIFEST.json's ``sha256`` is
the sha256 of the sorted ``<sha256>  <path>`` lines of the files). The folder is written beside
the target and renamed into place.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import shutil
import sys
import uuid
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from isp.data.scenes import IMAGE_EXTENSIONS, decimated_mosaic, find_files  # noqa: E402
from isp.raw import RAW_EXTENSIONS  # noqa: E402

MIB = 2**20
MANIFEST_ALLOWANCE = 512 * 1024  # bytes kept free for MANIFEST.json
TERMS = (
    "A model trained on these files inherits their terms: the BSDS (CBSD68, CBSD432), McMaster18 "
    "and Urban100 photographs are for non-commercial research use; Kodak24 is released for "
    "unrestricted use. The real raws' licences are those of their source repositories (not stated "
    "in ../shared/realraws/MANIFEST.tsv). Do not commit these files or redistribute the pack."
)


class PackError(ValueError):
    """The sources or arguments cannot give a pack (the message says why)."""


def _show(path: Path) -> str:
    """``path`` relative to the checkout where it is inside it or beside it (``../shared/...``)."""
    rel = os.path.relpath(Path(path).resolve(), ROOT)
    return Path(rel).as_posix() if not rel.startswith("../..") else Path(path).resolve().as_posix()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_tsv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _exclusions(config: Path) -> list[str]:
    """``data.scenes.init_args.exclude`` of a recipe (the dev-set scenes and rejects)."""
    import yaml

    data = (yaml.safe_load(config.read_text()) or {}).get("data", {})
    exclude = (data.get("scenes") or {}).get("init_args", {}).get("exclude")
    if not exclude:
        raise PackError(f"Expected `data.scenes.init_args.exclude` in {str(config)!r}. Found none.")
    return list(exclude)


def _png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=9)
    return buf.getvalue()


def _crop_shape(h: int, w: int, s: float, min_side: int) -> tuple[int, int]:
    """Crop of an ``h x w`` image at linear fraction ``s``, never below ``min_side`` (nor above h, w)."""
    return min(h, max(min_side, round(h * s))), min(w, max(min_side, round(w * s)))


def _fit_fraction(shapes: list[tuple[int, int]], bpp: list[float], budget: float, min_side: int) -> float:
    """The largest ``s`` in [0, 1] whose predicted PNG bytes ``sum(bpp * area)`` fit ``budget``."""

    def predicted(s: float) -> float:
        crops = (_crop_shape(h, w, s, min_side) for h, w in shapes)
        return sum(b * ch * cw for (ch, cw), b in zip(crops, bpp, strict=True))

    if predicted(1.0) <= budget:
        return 1.0
    if predicted(0.0) > budget:
        raise PackError(
            f"Expected the photographs to fit {budget / MIB:.1f} MiB at crops of at least `--min-side` "
            f"{min_side} pixels; they need {predicted(0.0) / MIB:.1f} MiB. Raise `--budget-mib` or "
            f"`--scale`, or lower `--min-side` or `--max-photos`."
        )
    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if predicted(mid) <= budget else (lo, mid)
    return lo


def _photos(content: Path, exclude: list[str], max_photos: int | None) -> tuple[list[Path], dict]:
    """The photographs to pack and their MANIFEST.tsv rows, keyed by path relative to ``content``."""
    manifest = content / "MANIFEST.tsv"
    if not manifest.is_file():
        raise PackError(f"Expected {str(manifest)!r}: every photograph's source and licence must be known.")
    rows = {f"{r['setname']}/{r['filename']}": r for r in _read_tsv(manifest)}
    files = [Path(f) for f in find_files([content], IMAGE_EXTENSIONS, exclude)]
    if max_photos is not None and max_photos < len(files):  # evenly spread over the sorted sets
        files = [files[i] for i in np.linspace(0, len(files) - 1, max_photos).round().astype(int)]
    for f in files:
        rel = f.relative_to(content.resolve()).as_posix()
        if rel not in rows:
            raise PackError(f"Expected {rel!r} to be listed in {str(manifest)!r} (source and licence).")
    return files, rows


def _pack_raws(realraws: Path | None, exclude: list[str], out: Path) -> tuple[list[dict], list[dict]]:
    """Decimated clean raws as float16 .npy under ``out``; returns (written, skipped) entries."""
    if realraws is None:
        return [], []
    rows = {}
    if (realraws / "MANIFEST.tsv").is_file():
        rows = {r["filename"]: r for r in _read_tsv(realraws / "MANIFEST.tsv")}
    written, skipped = [], []
    for path in find_files([realraws], RAW_EXTENSIONS, ()):
        path = Path(path)
        rel = path.relative_to(realraws.resolve()).as_posix()
        hit = [e for e in exclude if e in str(path)]
        if hit:
            skipped.append({"source": rel, "reason": f"excluded by the config ({hit[0]!r})"})
            continue
        from isp.raw import RawError

        try:
            mosaic = decimated_mosaic(path)
        except (RawError, ValueError, OSError) as e:  # SceneMix would skip it too
            skipped.append({"source": rel, "reason": f"cannot be read as a Bayer raw: {e}"})
            continue
        if float(mosaic.max()) > 60000:
            raise PackError(f"Expected white-normalised values in {rel!r}. Got a maximum {mosaic.max()}.")
        buf = io.BytesIO()
        np.save(buf, mosaic.astype(np.float16), allow_pickle=False)
        data = buf.getvalue()
        target = out / "raws" / (path.stem + ".npy")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            raise PackError(f"Expected raw file names to be unique without extension. Got {rel!r} twice.")
        target.write_bytes(data)
        row = rows.get(rel, {})
        source_sha = _sha256(path.read_bytes())
        if row.get("sha256") and not source_sha.startswith(row["sha256"]):
            raise PackError(f"Expected {rel!r} to match the sha256 in realraws/MANIFEST.tsv.")
        written.append(
            {
                "file": target.relative_to(out).as_posix(),
                "source": rel,
                "source_sha256": source_sha,
                "source_repo": row.get("source_repo"),
                "path_in_repo": row.get("path_in_repo"),
                "commit": row.get("commit"),
                "camera": " ".join(x for x in (row.get("make"), row.get("model")) if x) or None,
                "licence": "not stated in realraws/MANIFEST.tsv; that of the source repository",
                "shape": list(mosaic.shape),
                "dtype": "float16",
                "bytes": len(data),
                "sha256": _sha256(data),
            }
        )
    return written, skipped


def pack(
    out: Path,
    *,
    content: Path,
    realraws: Path | None,
    config: Path,
    budget_mib: float = 40.0,
    scale: float = 1.25,
    min_side: int = 200,
    seed: int = 0,
    max_photos: int | None = None,
    overwrite: bool = False,
) -> dict:
    """Write the packed set to ``out`` (see the module docstring); returns the manifest.

    Raises:
        FileNotFoundError: ``content`` (or a given ``realraws`` / ``config``) is missing.
        FileExistsError: ``out`` exists and ``overwrite`` is False.
        PackError: the budget is too small, or a source has no known provenance.
    """
    from PIL import Image

    content, out = Path(content), Path(out)
    if not content.is_dir():
        raise FileNotFoundError(
            f"Expected the photographs folder {str(content)!r} (../shared/content: 314 photographs with "
            f"their MANIFEST.tsv). It is missing: pass --content DIR (a user's clone has no ../shared)."
        )
    if realraws is not None and not Path(realraws).is_dir():
        raise FileNotFoundError(
            f"Expected the clean raws folder {str(realraws)!r} (../shared/realraws); pass --realraws DIR "
            f"or --no-raws."
        )
    if not scale >= 1.0:
        raise PackError(f"Expected `scale` >= 1 (a downscale factor). Got {scale!r}.")
    if not (isinstance(min_side, int) and min_side >= 8):
        raise PackError(f"Expected `min_side` to be an int >= 8 (pixels). Got {min_side!r}.")
    if out.exists() and not overwrite:
        raise FileExistsError(f"Expected {str(out)!r} not to exist; pass --overwrite to replace it.")
    exclude = _exclusions(Path(config))
    budget = int(budget_mib * MIB)
    files, rows = _photos(content, exclude, max_photos)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        raws, skipped = _pack_raws(Path(realraws) if realraws is not None else None, exclude, tmp)
        photo_budget = budget - sum(r["bytes"] for r in raws) - MANIFEST_ALLOWANCE
        images, bpp = [], []
        for f in files:
            with Image.open(f) as im:
                data = f.read_bytes()
                im = im.convert("RGB")
                if scale != 1.0:
                    size = (max(1, round(im.width / scale)), max(1, round(im.height / scale)))
                    im = im.resize(size, Image.LANCZOS)
                images.append((f, im, _sha256(data)))
                bpp.append(len(_png(im)) / (im.width * im.height))
        shapes = [(im.height, im.width) for _, im, _ in images]
        s = _fit_fraction(shapes, bpp, photo_budget, min_side)
        for _ in range(6):
            entries, total = [], 0
            for (f, im, source_sha), (h, w) in zip(images, shapes, strict=True):
                rel = f.relative_to(content.resolve()).as_posix()
                ch, cw = _crop_shape(h, w, s, min_side)
                rng = np.random.default_rng([seed, zlib.crc32(rel.encode())])
                y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
                data = _png(im.crop((x, y, x + cw, y + ch)))
                row = rows[rel]
                listed = row["sha256"].strip()
                # a derived file (Urban100-half: "downscaled 2x from the source") lists its source's hash
                if source_sha != listed and "from the source" not in row.get("notes", ""):
                    raise PackError(f"Expected {rel!r} to match the sha256 in content/MANIFEST.tsv.")
                total += len(data)
                entries.append(
                    (
                        data,
                        {
                            "file": f"photos/{rel.rsplit('.', 1)[0]}.png",
                            "source": rel,
                            "source_sha256": source_sha,
                            "manifest_sha256": listed,
                            "manifest_notes": row.get("notes") or None,
                            "source_repo": row["source_repo"],
                            "path_in_repo": row["path_in_repo"],
                            "commit": row["commit"],
                            "licence": row["licence_note"],
                            "source_size": row["width_x_height"],
                            # the crop's box in the downscaled image: top, left, height, width
                            "box": [y, x, ch, cw],
                            "bytes": len(data),
                            "sha256": _sha256(data),
                        },
                    )
                )
            if total <= photo_budget:
                break
            s *= math.sqrt(photo_budget / total) * 0.99
        else:
            raise PackError(f"Expected the photographs to fit {photo_budget / MIB:.1f} MiB; they did not.")
        for data, entry in entries:
            target = tmp / entry["file"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        photos = [e for _, e in entries]
        sets: dict[str, dict] = {}
        for e in photos:
            d = sets.setdefault(e["source"].split("/")[0], {"count": 0, "bytes": 0, "licences": []})
            d["count"] += 1
            d["bytes"] += e["bytes"]
            if e["licence"] not in d["licences"]:
                d["licences"].append(e["licence"])
        listing = sorted(f"{e['sha256']}  {e['file']}" for e in photos + raws)
        data_bytes = sum(e["bytes"] for e in photos + raws)
        manifest = {
            "format": "isp packed training set, version 1 (scripts/pack_training_set.py)",
            "arguments": {
                "content": _show(content),
                "realraws": None if realraws is None else _show(realraws),
                "config": _show(config),
                "budget_mib": budget_mib,
                "scale": scale,
                "min_side": min_side,
                "seed": seed,
                "max_photos": max_photos,
            },
            "scene_mix": {
                "images": [f"{_show(out)}/photos"],
                "raws": [f"{_show(out)}/raws"] if raws else [],
                "downscale": [1.0, round(2.0 / scale, 6)],
                "note": "the recipe's SceneMix downscale (1, 2) of the sources is (1, 2 / scale) here",
            },
            "terms": TERMS,
            "content_readme_sha256": _sha256((content / "README.md").read_bytes())
            if (content / "README.md").is_file()
            else None,
            "excluded_by_config": exclude,
            "photos": {
                "source": _show(content),
                "count": len(photos),
                "crop_fraction": round(s, 4),
                "pixels": sum(e["box"][2] * e["box"][3] for e in photos),
                "bytes": sum(e["bytes"] for e in photos),
                "sets": sets,
                "files": photos,
            },
            "raws": {
                "source": None if realraws is None else _show(realraws),
                "count": len(raws),
                "bytes": sum(e["bytes"] for e in raws),
                "files": raws,
                "skipped": skipped,
            },
            "budget_bytes": budget,
            "data_bytes": data_bytes,
            "sha256": _sha256("\n".join(listing).encode() + b"\n"),
        }
        text = json.dumps(manifest, indent=1) + "\n"
        (tmp / "MANIFEST.json").write_text(text)
        total = data_bytes + len(text.encode())
        if total > budget:
            raise PackError(f"Expected the pack within {budget} bytes. Got {total}.")
        if out.exists():
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def main(argv: list[str] | None = None) -> dict:
    shared = ROOT.parent / "shared"
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "data" / "packed")
    p.add_argument("--content", type=Path, default=shared / "content", help="photographs + MANIFEST.tsv")
    p.add_argument("--realraws", type=Path, default=shared / "realraws", help="clean real raws")
    p.add_argument("--no-raws", action="store_true", help="pack photographs only")
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "production.yaml", help="exclusions")
    p.add_argument("--budget-mib", type=float, default=40.0, help="whole pack, manifest included")
    p.add_argument("--scale", type=float, default=1.25, help="downscale of the photographs (>= 1)")
    p.add_argument("--min-side", type=int, default=200, help="smallest crop side, pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-photos", type=int, default=None, help="a spread subset (tests)")
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    try:
        manifest = pack(
            a.out,
            content=a.content,
            realraws=None if a.no_raws else a.realraws,
            config=a.config,
            budget_mib=a.budget_mib,
            scale=a.scale,
            min_side=a.min_side,
            seed=a.seed,
            max_photos=a.max_photos,
            overwrite=a.overwrite,
        )
    except (FileNotFoundError, FileExistsError, PackError) as e:
        sys.exit(f"pack_training_set.py: error: {e}")
    ph, rw = manifest["photos"], manifest["raws"]
    summary = {
        "out": str(a.out),
        "photos": ph["count"],
        "photo_mib": round(ph["bytes"] / MIB, 2),
        "crop_fraction": ph["crop_fraction"],
        "raws": rw["count"],
        "raw_mib": round(rw["bytes"] / MIB, 2),
        "total_mib": round(manifest["data_bytes"] / MIB, 2),
        "sha256": manifest["sha256"],
    }
    print(json.dumps(summary))
    return manifest


if __name__ == "__main__":
    main()
