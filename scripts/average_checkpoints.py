"""Average the weights of several train.py checkpoints of one run (stochastic weight averaging, post hoc).

Checkpoints of the last epochs of a run at a low learning rate lie in one basin; their mean
is a network of the same architecture whose function varies less from one epoch to the next
(Izmailov et al., "Averaging weights leads to wider optima and better generalization", UAI 2018).
The output is a Lightning checkpoint like the first input (hyper-parameters, data settings; the
``global_step`` and loop counters of the last one; no optimizer state) with the averaged
``state_dict``, so that ``score.py --ckpt``, ``predict.py --ckpt`` and
``scripts/export_default_model.py`` take it as they take any other::

    python scripts/average_checkpoints.py runs/production_overstated/snapshots/*.ckpt --out /tmp/avg.ckpt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def average(paths: list[Path]) -> dict:
    """The first checkpoint with every floating-point ``state_dict`` entry replaced by the mean over all."""
    if len(paths) < 2:
        raise ValueError(f"Expected at least two checkpoints to average. Got {len(paths)}.")
    ckpts = [torch.load(p, map_location="cpu", weights_only=True) for p in paths]  # as load_model reads them
    first = ckpts[0]
    for path, ckpt in zip(paths, ckpts, strict=True):
        if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
            raise ValueError(f"{str(path)!r}: expected a train.py (Lightning) checkpoint with a state_dict.")
        if ckpt["state_dict"].keys() != first["state_dict"].keys() or any(
            v.shape != first["state_dict"][k].shape for k, v in ckpt["state_dict"].items()
        ):
            raise ValueError(f"{str(path)!r}: its weights do not match those of {str(paths[0])!r}.")
        if ckpt.get("hyper_parameters", {}).get("net") != first.get("hyper_parameters", {}).get("net"):
            raise ValueError(f"{str(path)!r}: another network than {str(paths[0])!r}.")
    state = {}
    for key, value in first["state_dict"].items():
        if value.is_floating_point():
            stacked = torch.stack([c["state_dict"][key].to(torch.float64) for c in ckpts])
            state[key] = stacked.mean(0).to(value.dtype)
        else:
            state[key] = value
    last = max(ckpts, key=lambda c: c.get("global_step", 0))
    out = {k: v for k, v in first.items() if k not in ("optimizer_states", "lr_schedulers", "callbacks")}
    out["state_dict"] = state
    out["global_step"], out["epoch"] = last.get("global_step", 0), last.get("epoch", 0)
    if "loops" in last:  # the progress counters of the last one (the model card counts its epochs)
        out["loops"] = last["loops"]
    out["averaged_from"] = [str(p) for p in paths]
    return out


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpts", nargs="+", type=Path, help="train.py checkpoints of one run")
    parser.add_argument("--out", type=Path, required=True, help="where to write the averaged .ckpt")
    args = parser.parse_args(argv)
    if args.out.resolve() in {p.resolve() for p in args.ckpts}:
        parser.error(f"Expected `--out` to be a new file, not one of the inputs. Got {str(args.out)!r}.")
    try:
        ckpt = average(args.ckpts)
    except (ValueError, OSError) as err:
        parser.error(str(err))
    tmp = args.out.with_name(args.out.name + ".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(args.out)
    print(f"{args.out}: the mean of {len(args.ckpts)} checkpoints, step {ckpt['global_step']}")
    return args.out


if __name__ == "__main__":
    main()
