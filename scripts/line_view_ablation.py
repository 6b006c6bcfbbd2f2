"""Write a copy of a line-view model with the whole-line inputs cut, to measure what they add.

The line view (``isp.models.UNet(line_features=...)``) reads row and column means of the decoder
features through ``line_conv``'s row and column weights. Zeroing those two weights leaves the
same network with everything else as trained (its local 3x3 residual conv included): the
difference between the two on the development set is what the whole-line information adds::

    python scripts/line_view_ablation.py runs/production_line/checkpoints/last.ckpt /tmp/cut.pt
    python ../shared/devset/score.py --ckpt /tmp/cut.pt
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from isp.weights import load_model  # noqa: E402


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt", help="a line-view model: train.py .ckpt, or .pt with its .json")
    parser.add_argument("out", type=Path, help="where to write the cut model (.pt; its .json beside it)")
    args = parser.parse_args(argv)
    if args.out.suffix != ".pt":
        parser.error(f"Expected `out` to end in .pt. Got {str(args.out)!r}.")
    loaded = load_model(args.ckpt)
    conv = getattr(loaded.net, "line_conv", None)
    if conv is None:
        parser.error(f"Expected a model with a line view (line_features > 0) in {args.ckpt!r}. Got none.")
    with torch.no_grad():
        for name in ("row_weight", "col_weight"):
            weight = getattr(conv.conv, name, None)
            if weight is None:
                parser.error(f"Expected msconv conditioning in {args.ckpt!r} (line_conv has no {name}).")
            weight.zero_()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(loaded.net.state_dict(), args.out)
    card = {"model": loaded.model, "data": loaded.data, "ablation": f"line view cut from {args.ckpt}"}
    args.out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    print(args.out)
    return args.out


if __name__ == "__main__":
    main()
