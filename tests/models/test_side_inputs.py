"""isp.models.side_inputs: the input variants of the conditioning study."""

from pathlib import Path

import pytest
import torch
import yaml

from isp.models import SideInputs, UNet
from isp.models.side_inputs import side_inputs

EXPERIMENTS = Path(__file__).resolve().parents[2] / "configs" / "experiment"


def test_side_inputs_variants():
    row, col = torch.rand(2, 5, 6), torch.rand(2, 5, 4)
    scalar = torch.rand(2, 5)
    assert side_inputs(row, col, scalar, "full") == (row, col, scalar)
    assert side_inputs(row, col, scalar, "scalars") == (None, None, scalar)
    r, c, s = side_inputs(row, col, scalar, "flat")
    assert r is None and c is None
    torch.testing.assert_close(s, torch.cat([scalar, row.mean(-1), col.mean(-1)], 1))
    with pytest.raises(ValueError, match="`inputs`"):
        side_inputs(row, col, scalar, "rows")
    with pytest.raises(ValueError, match="`inputs`"):
        SideInputs(torch.nn.Identity(), "rows")


def _variant(name):
    """The network of configs/experiment/<name>.yaml (merged over study.yaml), small."""
    base = yaml.safe_load((EXPERIMENTS / "study.yaml").read_text())["model"]["net"]["init_args"]
    over = yaml.safe_load((EXPERIMENTS / f"{name}.yaml").read_text())["model"]["net"]["init_args"]
    unet = {**base["net"]["init_args"], **over["net"]["init_args"], "base_width": 4, "depth": 1}
    return SideInputs(UNet(**unet), over["inputs"]), unet["conditioning"], over["inputs"]


@pytest.mark.parametrize("name", ["msconv", "tile_concat", "film", "none", "msconv_scalars", "msconv_flat"])
def test_every_study_variant_builds_and_only_reads_its_inputs(name):
    x, row, col, scalar = torch.rand(2, 4, 8, 8), torch.rand(2, 5, 8), torch.rand(2, 5, 8), torch.rand(2, 5)
    torch.manual_seed(0)
    net, conditioning, inputs = _variant(name)
    for p in net.parameters():  # a non-zero head, so the side inputs can show in the output
        torch.nn.init.normal_(p, std=0.3)
    y = net(x, row, col, scalar)
    reads_row = not torch.allclose(y, net(x, row + 1.0, col, scalar))
    reads_scalar = not torch.allclose(y, net(x, row, col, scalar + 1.0))
    assert reads_row == (inputs in ("full", "flat") and conditioning != "none")
    assert reads_scalar == (conditioning != "none")
