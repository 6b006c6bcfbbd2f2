"""Export a train.py checkpoint as the shipped default model (``isp/weights/default.pt`` + ``.json``).

The default model is the quickstart's network, trained by the README's main job::

    bash scripts/quickstart.sh    # or: python train.py fit --config configs/quickstart.yaml
    python scripts/export_default_model.py runs/quickstart/checkpoints/last.ckpt

The checkpoint is read with ``torch.load(weights_only=True)`` (:func:`isp.weights.load_model`), the
network validated on the whole val frames of the sample set, and written as a weights-only
``state_dict`` plus a JSON with its architecture, data settings, how it was trained and the
validation PSNR of the noisy input and of the output.
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
from isp.lit import DenoiseModule  # noqa: E402
from isp.models import count_parameters  # noqa: E402
from isp.weights import load_model  # noqa: E402

TRAINING = (
    "python train.py fit --config configs/quickstart.yaml  (bash scripts/quickstart.sh); then "
    "python scripts/export_default_model.py runs/quickstart/checkpoints/last.ckpt"
)


def _epochs_trained(ckpt: dict) -> int:
    """Epochs whose training ran to the end: the fit loop's count of processed epochs (the
    checkpoint's ``epoch`` is the 0-based index of the epoch it was saved in, 99 after 100)."""
    return ckpt["loops"]["fit_loop"]["epoch_progress"]["total"]["processed"]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("ckpt", type=Path, help="a train.py checkpoint (.ckpt)")
    p.add_argument("--root", default="data/sample", help="sample set to validate on (generated if missing)")
    p.add_argument("--out", type=Path, default=ROOT / "isp" / "weights")
    args = p.parse_args(argv)

    loaded = load_model(args.ckpt)
    vector_scale = loaded.data.get("vector_scale")
    dm_args = {} if vector_scale is None else {"vector_scale": vector_scale}
    dm = RawDataModule(root=args.root, source="sample", eval_crop_size=None, eval_batch_size=1,
                       num_workers=0, cache_dir="cache", **dm_args)
    module = DenoiseModule(loaded.net, num_previews=0)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    metrics = trainer.validate(module, datamodule=dm, verbose=False)[0]

    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / "default.pt"
    state = {k: v.detach().clone().contiguous() for k, v in loaded.net.state_dict().items()}
    tmp = weights.with_suffix(".pt.tmp")
    torch.save(state, tmp)
    os.replace(tmp, weights)
    ckpt = torch.load(args.ckpt, map_location="cpu", weights_only=True)
    config = {
        "model": loaded.model,
        "data": {"vector_scale": dm.vector_scale},
        "training": {
            "command": TRAINING,
            "config": "configs/quickstart.yaml",
            "epochs": _epochs_trained(ckpt),
            "steps": ckpt.get("global_step"),
            "torch": torch.__version__,
            "lightning": L.__version__,
        },
        "metrics": {
            "split": "val (whole frames)",
            "val_input_raw_psnr": round(float(metrics["val/input_raw_psnr"]), 3),
            "val_raw_psnr": round(float(metrics["val/raw_psnr"]), 3),
            "val_input_srgb_psnr": round(float(metrics["val/input_srgb_psnr"]), 3),
            "val_srgb_psnr": round(float(metrics["val/srgb_psnr"]), 3),
        },
        "parameters": count_parameters(loaded.net),
        "size_bytes": weights.stat().st_size,
    }
    (args.out / "default.json").write_text(json.dumps(config, indent=2) + "\n")
    print(json.dumps(config["metrics"]))
    return config


if __name__ == "__main__":
    main()
