"""The shipped default denoiser and the loading of checkpoints for prediction.

``default.pt`` is a weights-only ``state_dict`` of an :class:`isp.models.UNet`; ``default.json``
beside it holds the architecture (``model``: ``class_path`` + ``init_args``), the data settings
the network was trained with (``data``), the command that trained it and its validation PSNR.

:func:`load_model` reads that pair, a ``.pt``/``.pth`` state dict with a ``.json`` of the same
stem, or a Lightning ``.ckpt`` written by ``train.py`` (its ``hyper_parameters`` hold the ``net``
config as LightningCLI saved it). Every file is read with ``torch.load(weights_only=True)``, which
executes no pickled code; only :class:`isp.models.UNet` architectures are built.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["DEFAULT_CONFIG", "DEFAULT_WEIGHTS", "CheckpointError", "LoadedModel", "load_model"]

DEFAULT_WEIGHTS = Path(__file__).with_name("default.pt")
DEFAULT_CONFIG = Path(__file__).with_name("default.json")

#: Architectures a checkpoint may name (no arbitrary imports from a file's contents).
ALLOWED_CLASSES = {"isp.models.UNet": "UNet", "isp.models.unet.UNet": "UNet"}


class CheckpointError(ValueError):
    """A checkpoint cannot be used: unreadable, unsafe, unknown or mismatched architecture."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason.rstrip(".")
        super().__init__(f"Checkpoint {self.path!r}: {self.reason}.")


@dataclass
class LoadedModel:
    """A network ready for prediction and where it came from.

    Attributes:
        net: the network in eval mode.
        model: ``{"class_path": ..., "init_args": {...}}`` it was built from.
        data: the data settings it was trained with (e.g. ``vector_scale``); may be empty.
        source: the file its weights came from.
        info: anything else the config records (training command, metrics).
    """

    net: nn.Module
    model: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    info: dict[str, Any] = field(default_factory=dict)


def _load(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure to unpickle safely is the file's problem
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(path, f"cannot be read with torch.load(weights_only=True): {first}") from err


def _model_config(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict) and isinstance(value.get("class_path"), str):
        return {"class_path": value["class_path"], "init_args": dict(value.get("init_args") or {})}
    return None


def _split_lightning(path: Path, ckpt: dict) -> tuple[dict, dict | None, dict]:
    """State dict of the ``net`` attribute, its config and data settings from a Lightning checkpoint."""
    state = ckpt["state_dict"]
    prefix = "net."
    if not any(k.startswith(prefix) for k in state):
        raise CheckpointError(path, "its state_dict has no `net.` entries (not a DenoiseModule checkpoint)")
    net_state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    hparams = ckpt.get("hyper_parameters") or {}
    model = _model_config(hparams.get("net"))
    data = dict(ckpt.get("datamodule_hyper_parameters") or {})
    return net_state, model, data


def _build(path: Path, model: dict[str, Any], state: dict[str, torch.Tensor]) -> nn.Module:
    class_path = model["class_path"]
    if class_path not in ALLOWED_CLASSES:
        raise CheckpointError(
            path,
            f"architecture {class_path!r} is not one predict builds (expected {sorted(ALLOWED_CLASSES)})",
        )
    from isp import models

    cls = getattr(models, ALLOWED_CLASSES[class_path])
    try:
        net = cls(**model["init_args"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(path, f"cannot build {class_path} from {model['init_args']}: {err}") from err
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("reshaped", mismatched)):
            if keys:
                parts.append(f"{len(keys)} {what} (e.g. {', '.join(keys[:2])})")
        raise CheckpointError(
            path, f"its weights do not fit {class_path}({_args(model)}): parameters {'; '.join(parts)}"
        )
    net.load_state_dict(state)
    return net.eval()


def _args(model: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in model["init_args"].items())


def load_model(path: str | os.PathLike | None = None) -> LoadedModel:
    """Load a denoiser for prediction (on the CPU, in eval mode).

    Args:
        path: ``None`` for the shipped default model; a Lightning ``.ckpt`` from ``train.py``;
            or a state dict (``.pt``/``.pth``) with a JSON config of the same stem beside it.

    Returns:
        The :class:`LoadedModel`.

    Raises:
        CheckpointError: the file is missing, cannot be read with ``weights_only=True``, names
            no or an unsupported architecture, or its weights do not fit the architecture (the
            message names the file and the mismatch).

    Example:
        >>> loaded = load_model()  # the shipped default model
        >>> loaded.model["class_path"], loaded.net.training
        ('isp.models.UNet', False)
    """
    if path is None:
        path, config_path = DEFAULT_WEIGHTS, DEFAULT_CONFIG
    else:
        path = Path(path)
        config_path = path.with_suffix(".json")
    obj = _load(path)
    if not isinstance(obj, dict):
        found = type(obj).__name__
        raise CheckpointError(path, f"expected a state dict or a Lightning checkpoint, found {found}")
    config: dict[str, Any] = {}
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text())
        except (OSError, ValueError) as err:
            raise CheckpointError(path, f"its config {str(config_path)!r} is not valid JSON: {err}") from err
    if "state_dict" in obj and isinstance(obj["state_dict"], dict):
        state, model, data = _split_lightning(path, obj)
    else:
        state, model, data = obj, None, {}
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(path, "expected a state dict of tensors")
    model = _model_config(config.get("model")) or model
    if model is None:
        raise CheckpointError(
            path,
            f"it does not say which architecture it holds: expected Lightning hyper_parameters with "
            f"`net` or a config {str(config_path)!r} with a `model` entry",
        )
    data = {**data, **(config.get("data") or {})}
    net = _build(path, model, state)
    info = {k: v for k, v in config.items() if k not in ("model", "data")}
    return LoadedModel(net=net, model=model, data=data, source=os.fspath(path), info=info)
