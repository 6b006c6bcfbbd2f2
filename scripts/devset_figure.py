"""The picture a photographer looks at: noisy | BM3D* | isp | clean crops from the dev set, in sRGB.

    python scripts/devset_figure.py [--scene s40_print_6D] [--ckpt PATH] [--out docs/devset_crops.png]

Rows: ISO 800, 6400, 25600, each plain and band; columns: the noisy file, BM3D after a generalised
Anscombe transform given the TRUE noise parameters (an oracle; white noise only, so banding stays),
the network (the shipped model or ``--ckpt``, through predict's own path on the whole file), the
clean scene. One crop per row at the same place; every tile rendered from the packed raw with the
file's white balance and colour matrix (``isp.models.render.raw_to_srgb``), the PSNR of the crop on it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from isp.baselines import GaussianPoissonNoise, bm3d_vst  # noqa: E402
from isp.models.render import raw_to_srgb  # noqa: E402
from isp.predict import denoise_frame  # noqa: E402
from isp.raw import pack, read  # noqa: E402
from isp.weights import load_model  # noqa: E402


def _srgb(planes: np.ndarray, frame) -> np.ndarray:
    wb = torch.as_tensor(np.asarray(frame.metadata.wb), dtype=torch.float32)[None]
    m = torch.as_tensor(np.asarray(frame.metadata.cam_to_srgb), dtype=torch.float32)[None]
    gain = 0.35 / max(float(np.mean(planes[1:3])), 1e-4)  # expose the crop to a mid grey
    rgb = raw_to_srgb(torch.from_numpy(np.clip(planes * gain, 0, 1)).float()[None], wb, m)[0]
    return (rgb.clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)


def _psnr(x: np.ndarray, y: np.ndarray) -> float:
    return float(-10 * np.log10(np.mean((np.clip(x, 0, 1) - y) ** 2)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--devset", type=Path, default=ROOT.parent / "shared" / "devset" / "physical")
    p.add_argument("--scene", default="s40_print_6D", help="case-name prefix: scene and camera")
    p.add_argument("--ckpt", type=Path, default=None)
    p.add_argument("--crop", type=int, default=128, help="crop side in packed pixels")
    p.add_argument("--at", type=int, nargs=2, default=(80, 150), help="crop top-left (packed)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "devset_crops.png")
    args = p.parse_args(argv)
    cases = {c["name"]: c for c in json.loads((args.devset / "cases.json").read_text())}
    loaded = load_model(args.ckpt)
    top, left, c = args.at[0], args.at[1], args.crop
    tiles, labels = [], []
    for iso in (800, 6400, 25600):
        for kind in ("plain", "band"):
            name = f"{args.scene}_iso{iso}_{kind}"
            case = cases[name]
            frame = read(args.devset / f"{name}.dng")
            noisy, info = pack(frame)
            clean, _ = pack(np.load(args.devset / f"{case['scene']}.clean.npy"), frame.cfa)
            ours, _ = pack(denoise_frame(loaded.net, frame, data=loaded.data), frame.cfa)
            window = (slice(None), slice(top, top + c), slice(left, left + c))
            noise = GaussianPoissonNoise(float(case["a"]), float(np.sqrt(case["b"])))
            bm3d = bm3d_vst(noisy[window], noise, row_aware=False)
            row = [(noisy[window], "noisy"), (bm3d, "BM3D*"), (ours[window], "isp"), (clean[window], "clean")]
            tiles.append(
                [
                    (
                        _srgb(x, frame),
                        f"{lab} {_psnr(x, clean[window]):.1f} dB" if lab != "clean" else f"ISO {iso} {kind}",
                    )
                    for x, lab in row
                ]
            )
            labels.append(name)
            print(name, " ".join(t[1] for t in tiles[-1]))
    scale, pad = 1, 4
    side = c * scale
    sheet = Image.new("RGB", (4 * (side + pad) + pad, len(tiles) * (side + pad + 14) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(tiles):
        for k, (img, text) in enumerate(row):
            x0, y0 = pad + k * (side + pad), pad + r * (side + pad + 14)
            sheet.paste(Image.fromarray(img).resize((side, side), Image.NEAREST), (x0, y0 + 14))
            draw.text((x0, y0), text, fill="black")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
