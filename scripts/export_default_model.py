"""Export a train.py checkpoint as the shipped default model (``isp/weights/default.pt`` + ``.json``).

The default model is the production recipe's network::

    python train.py fit --config configs/production.yaml
    python train.py fit --config configs/production.yaml --config configs/production_finetune.yaml
    python train.py fit --config configs/production.yaml --config configs/production_finetune.yaml \
        --config configs/production_line.yaml
    python scripts/export_default_model.py runs/production_line/checkpoints/last.ckpt \
        --config configs/production.yaml --config configs/production_finetune.yaml \
        --config configs/production_line.yaml --init-steps 18000 --devset ../shared/devset

The checkpoint is read with ``torch.load(weights_only=True)`` (:func:`isp.weights.load_model`), the
network validated through ``predict.py``'s own path (read, model inputs, tiles, unpack) on the
whole val frames of the sample set, and written as a weights-only ``state_dict`` plus a JSON
model card: architecture, data settings and input contract, how it was trained, the validation
PSNR, and with ``--devset`` the development-set results of ``../shared/devset/score.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import lightning as L
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from isp.data import RawDataModule  # noqa: E402
from isp.models import count_parameters  # noqa: E402
from isp.weights import load_model  # noqa: E402


def _psnr(x, y) -> float:
    import numpy as np

    return float(-10 * np.log10(np.mean((np.clip(x, 0, 1) - np.clip(y, 0, 1)) ** 2)))


def _validate(loaded, root: str) -> dict:
    """Raw PSNR of input and output on the sample set's val frames, through predict's path."""
    import numpy as np

    from isp.data.sources import manifest_pairs
    from isp.predict import denoise_frame
    from isp.raw import read

    dm = RawDataModule(root=root, source="sample")
    dm.prepare_data()
    noisy, denoised = [], []
    for pair in manifest_pairs(Path(root) / "pairs.csv"):
        if pair.split != "val":
            continue
        frame, clean = read(pair.noisy), read(pair.clean).mosaic
        out = denoise_frame(loaded.net, frame, data=loaded.data, tile=512, overlap=64)
        noisy.append(_psnr(frame.mosaic, clean))
        denoised.append(_psnr(out, clean))
    return {
        "split": "sample set val (whole frames, predict path)",
        "val_input_raw_psnr": round(float(np.mean(noisy)), 3),
        "val_raw_psnr": round(float(np.mean(denoised)), 3),
    }


LICENCES = {
    "Kodak24": "Kodak Lossless True Color Image Suite: released for unrestricted use",
    "CBSD68": "Berkeley Segmentation Dataset: non-commercial research and education",
    "CBSD432": "Berkeley Segmentation Dataset (rest of BSDS500): non-commercial research and education",
    "McMaster18": "research benchmark (Zhang et al. 2011), no explicit licence",
    "Urban100-half": "research benchmark (Huang et al. CVPR 2015, Flickr images), no licence file",
}


def _card(config_paths: list[Path]) -> dict:
    """Training data (with licences) and noise model of a ``source: scenes`` recipe, for the card.

    The ``data`` sections of a composed recipe are merged in order (a later stage's keys win), so
    the card shows what the last stage trained on.
    """
    import yaml

    data: dict = {}
    for path in config_paths:
        data.update((yaml.safe_load(path.read_text()) or {}).get("data", {}))
    if data.get("source") != "scenes":
        return {}
    scenes = data.get("scenes", {}).get("init_args", {})
    camera = (data.get("camera") or {}).get("init_args", {})
    return {
        "training_data": {
            "photographs": scenes.get("images"),
            "photograph_sets_and_licences": LICENCES,
            "clean_raws": scenes.get("raws"),
            "excluded": scenes.get("exclude"),
            "weights_photos_raws_dead_leaves": scenes.get("weights"),
            "terms": "inherits the research-use terms of BSDS, McMaster and Urban100: not for commercial use",
        },
        "noise_model": {
            "class": "isp.noise.camera.CameraNoise",
            "summary": "full well 10k-200k e- at ISO 100, ISO 50-32000, 10/12/14 bit, black 0-2048, "
            "Poisson shot, 1-8 e- pre-gain read (Gaussian or Tukey-lambda), post-gain read "
            "1e-4..6e-4 of the range, banding on 60% up to 1.5 read std, EXIF ISO 2-32x "
            "overstated on 25%, rounding and clipping (the defaults; the last stage's changes in "
            "`camera`)",
            "camera": camera,
            "reference_noise": data.get("reference_noise", 0.0),
            "reference_a": data.get("reference_a"),
            "crop_size": data.get("crop_size"),
            "batch_size": data.get("batch_size"),
        },
    }


def _devset(devset: Path) -> dict:
    """Run ../shared/devset/score.py on the weights just written; per-cell and overall means."""
    import subprocess
    import tempfile
    from collections import defaultdict

    import numpy as np

    results = {}
    for name in ("physical", "iso-overstated"):
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "rows.json"
            subprocess.run(
                [sys.executable, str(devset / "score.py"), "--set", name, "--json", str(out)],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            rows = json.loads(out.read_text())
        cells = defaultdict(list)
        for r in rows:
            cells[f"iso{r['iso']}_{'band' if r['banding'] else 'plain'}"].append(r)
        gain = [r["denoised"] - r["noisy"] for r in rows]
        results[name] = {
            "views": 2,  # predict.py's default, which score.py runs (isp.predict.ensemble)
            "cases": len(rows),
            "noisy": round(float(np.mean([r["noisy"] for r in rows])), 2),
            "bm3d_gat_oracle": round(float(np.nanmean([r["bm3d_gat"] for r in rows])), 2),
            "isp": round(float(np.mean([r["denoised"] for r in rows])), 2),
            "mean_gain": round(float(np.mean(gain)), 2),
            "worst_gain": round(float(np.min(gain)), 2),
            "cells": {
                k: {
                    "noisy": round(float(np.mean([r["noisy"] for r in v])), 2),
                    "bm3d_gat_oracle": round(float(np.nanmean([r["bm3d_gat"] for r in v])), 2),
                    "isp": round(float(np.mean([r["denoised"] for r in v])), 2),
                }
                for k, v in sorted(cells.items())
            },
        }
    return results


def _epochs_trained(ckpt: dict) -> int:
    """Epochs whose training ran to the end: the fit loop's count of processed epochs (the
    checkpoint's ``epoch`` is the 0-based index of the epoch it was saved in, 99 after 100)."""
    return ckpt["loops"]["fit_loop"]["epoch_progress"]["total"]["processed"]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("ckpt", type=Path, help="a train.py checkpoint (.ckpt)")
    p.add_argument("--root", default="data/sample", help="sample set to validate on (generated if missing)")
    p.add_argument("--out", type=Path, default=ROOT / "isp" / "weights")
    p.add_argument(
        "--config",
        action="append",
        default=None,
        help="the recipe the checkpoint came from (repeat for a composed recipe, e.g. a fine-tune stage)",
    )
    p.add_argument(
        "--init-steps", type=int, default=0, help="steps of the run the checkpoint was initialised from"
    )
    p.add_argument("--devset", type=Path, default=None, help="score on this devset folder (../shared/devset)")
    p.add_argument("--wall", default=None, help="training wall time and hardware, for the model card")
    args = p.parse_args(argv)
    args.config = args.config or ["configs/production.yaml"]

    from isp.predict import inputs_version

    loaded = load_model(args.ckpt)
    loaded.data["inputs_version"] = inputs_version(loaded.net, loaded.data)
    metrics = _validate(loaded, args.root)

    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / "default.pt"
    state = {k: v.detach().clone().contiguous() for k, v in loaded.net.state_dict().items()}
    tmp = weights.with_suffix(".pt.tmp")
    torch.save(state, tmp)
    os.replace(tmp, weights)
    ckpt = torch.load(args.ckpt, map_location="cpu", weights_only=True)
    data = {
        "vector_scale": float(loaded.data.get("vector_scale", 1024.0)),
        "inputs_version": loaded.data["inputs_version"],
    }
    flags = " ".join(f"--config {c}" for c in args.config)
    # stage i composes the first i configs (each stage's config names the previous checkpoint)
    stages = [
        "python train.py fit " + " ".join(f"--config {c}" for c in args.config[: i + 1])
        for i in range(len(args.config))
    ]
    config = {
        "model": loaded.model,
        "data": data,
        "training": {
            "command": "; ".join(stages)
            + f"; then python scripts/export_default_model.py {args.ckpt} {flags}"
            + (f" --init-steps {args.init_steps}" if args.init_steps else ""),
            "config": args.config if len(args.config) > 1 else args.config[0],
            "epochs": _epochs_trained(ckpt),
            "steps": (ckpt.get("global_step") or 0) + args.init_steps,
            "wall_time_and_hardware": args.wall,
            "torch": torch.__version__,
            "lightning": L.__version__,
        },
        "metrics": metrics,
        "parameters": count_parameters(loaded.net),
        "size_bytes": weights.stat().st_size,
    }
    config.update(_card([ROOT / c for c in args.config]))
    card = args.out / "default.json"
    card.write_text(json.dumps(config, indent=2) + "\n")
    if args.devset is not None:
        config["devset"] = _devset(args.devset)
        card.write_text(json.dumps(config, indent=2) + "\n")
    print(json.dumps({k: config[k] for k in ("metrics", "devset") if k in config}, indent=1))
    return config


if __name__ == "__main__":
    main()
