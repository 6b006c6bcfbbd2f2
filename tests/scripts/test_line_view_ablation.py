"""scripts/line_view_ablation.py: the whole-line inputs cut, everything else kept."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from isp.models import UNet
from isp.weights import load_model

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import line_view_ablation  # noqa: E402


def _save(net: UNet, path: Path, init_args: dict) -> None:
    torch.save(net.state_dict(), path)
    path.with_suffix(".json").write_text(
        json.dumps({"model": {"class_path": "isp.models.UNet", "init_args": init_args}})
    )


def test_the_cut_model_keeps_its_weights_and_loses_its_whole_line_view(tmp_path):
    args = {"base_width": 4, "depth": 1, "row_channels": 0, "col_channels": 0, "scalar_channels": 0}
    args["line_features"] = 2
    torch.manual_seed(0)
    net = UNet(**args)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape) * 0.3)
    _save(net, tmp_path / "line.pt", args)
    cut = load_model(line_view_ablation.main([str(tmp_path / "line.pt"), str(tmp_path / "cut.pt")])).net
    for name, value in net.state_dict().items():
        if name.endswith(("line_conv.conv.row_weight", "line_conv.conv.col_weight")):
            assert not cut.state_dict()[name].any()
        else:
            assert torch.equal(cut.state_dict()[name], value), name
    # a pixel 50 columns away in the same row reached the output through the line view; now it does not
    x = torch.rand(1, 4, 64, 64)
    moved = x.clone()
    moved[0, :, 2, 60] += 1.0
    with torch.no_grad():
        assert (net(moved)[0, :, 2, 2] - net(x)[0, :, 2, 2]).abs().max() > 1e-4
        assert torch.equal(cut(moved)[0, :, 2, 2], cut(x)[0, :, 2, 2])


def test_a_model_without_a_line_view_is_refused(tmp_path):
    args = {"base_width": 4, "depth": 1}
    _save(UNet(**args), tmp_path / "plain.pt", args)
    with pytest.raises(SystemExit):
        line_view_ablation.main([str(tmp_path / "plain.pt"), str(tmp_path / "cut.pt")])
