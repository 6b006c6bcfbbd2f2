"""The shipped default denoiser and the loading of checkpoints for prediction.

``default.pt`` is a weights-only ``state_dict`` of an :class:`isp.models.UNet`; ``default.json``
beside it holds the architecture (``model``: ``class_path`` + ``init_args``), the data settings
the network was trained with (``data``), the command that trained it and its validation PSNR.

:func:`load_model` reads that pair, a ``.pt``/``.pth`` state dict with a ``.json`` of the same
stem, or a Lightning ``.ckpt`` written by ``train.py`` (its ``hyper_parameters`` hold the ``net``
config as LightningCLI saved it). Every file is read with ``torch.load(weights_only=True)``, which
executes no pickled code; only :class:`isp.models.UNet` architectures are built.

What a checkpoint may say is checked before anything is built: ``init_args`` must be a mapping of
the architecture's own arguments with values of their types (finite numbers, integers at most
:data:`MAX_INT_ARG`, ``depth`` at most :data:`MAX_DEPTH`); ``device`` and ``dtype`` are ignored
(prediction builds float32 on the CPU and moves the net to ``--device``); the network is first
built on the ``meta`` device, so a config whose shapes do not match the file's tensors is refused
without allocating anything; every tensor and every number of the JSON must be finite. A JSON
beside a Lightning ``.ckpt`` may repeat the checkpoint's own architecture and data settings but not
contradict them.
"""

from __future__ import annotations

import inspect
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_WEIGHTS",
    "MAX_DEPTH",
    "MAX_INT_ARG",
    "CheckpointError",
    "LoadedModel",
    "load_model",
]

DEFAULT_WEIGHTS = Path(__file__).with_name("default.pt")
DEFAULT_CONFIG = Path(__file__).with_name("default.json")

#: Architectures a checkpoint may name (no arbitrary imports from a file's contents).
ALLOWED_CLASSES = {"isp.models.UNet": "UNet", "isp.models.unet.UNet": "UNet"}
#: Wrappers a checkpoint may name around one of :data:`ALLOWED_CLASSES` (the study's input variants).
WRAPPER_CLASSES = frozenset({"isp.models.SideInputs", "isp.models.side_inputs.SideInputs"})

#: Largest integer architecture argument a checkpoint may give (channels, widths).
MAX_INT_ARG = 4096
#: Largest ``depth`` (number of 2x downsamplings) a checkpoint may give.
MAX_DEPTH = 12
#: Constructor arguments that say where/how to allocate, not what to build: ignored.
_PLACEMENT_ARGS = ("device", "dtype")


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


def _model_config(path: Path, value: Any, where: str) -> dict[str, Any] | None:
    """``{"class_path", "init_args"}`` from a config entry; None when it names no class."""
    if not (isinstance(value, dict) and isinstance(value.get("class_path"), str)):
        return None
    init_args = value.get("init_args")
    if init_args is None:
        init_args = {}
    if not isinstance(init_args, dict):
        raise CheckpointError(
            path,
            f"{where} `init_args` must be a mapping of argument names to values, got "
            f"{type(init_args).__name__} {_short(init_args)}",
        )
    return {"class_path": value["class_path"], "init_args": dict(init_args)}


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reject_constant(name: str) -> float:
    raise ValueError(f"it holds {name}, not a finite number")


def _check_init_args(path: Path, cls: type, model: dict[str, Any]) -> dict[str, Any]:
    """The init_args to build ``cls`` with: known names, types of the defaults, finite, capped."""
    params = inspect.signature(cls).parameters
    args: dict[str, Any] = {}
    for name, value in model["init_args"].items():
        if name in _PLACEMENT_ARGS:
            continue  # where the checkpoint was built; prediction decides (float32, --device)
        if name not in params:
            known = [p for p in params if p not in _PLACEMENT_ARGS]
            raise CheckpointError(
                path, f"init_args has an unknown argument {name!r} (expected some of {known})"
            )
        default = params[name].default
        bad = None
        if isinstance(default, bool):
            bad = None if isinstance(value, bool) else "true or false"
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                bad = "an integer"
            elif not 0 <= value <= (MAX_DEPTH if name == "depth" else MAX_INT_ARG):
                bad = f"an integer in [0, {MAX_DEPTH if name == 'depth' else MAX_INT_ARG}]"
        elif isinstance(default, float):
            ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
            bad = None if ok else "a finite number"
        elif isinstance(default, str):
            bad = None if isinstance(value, str) else "a string"
        if bad is not None:
            raise CheckpointError(path, f"init_args.{name} must be {bad}, got {_short(value)}")
        args[name] = value
    return args


def _full_args(cls: type, args: dict[str, Any]) -> dict[str, Any]:
    """``args`` with the constructor's defaults filled in (device/dtype left out): for comparisons."""
    params = inspect.signature(cls).parameters
    full = {k: p.default for k, p in params.items() if k not in _PLACEMENT_ARGS}
    return {**full, **args}


def _split_lightning(path: Path, ckpt: dict) -> tuple[dict, dict | None, dict]:
    """State dict of the ``net`` attribute, its config and data settings from a Lightning checkpoint."""
    state = ckpt["state_dict"]
    prefix = "net."
    if not any(k.startswith(prefix) for k in state):
        raise CheckpointError(path, "its state_dict has no `net.` entries (not a DenoiseModule checkpoint)")
    net_state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    hparams = ckpt.get("hyper_parameters") or {}
    model = _model_config(
        path, hparams.get("net") if isinstance(hparams, dict) else None, "its hyper_parameters'"
    )
    data = ckpt.get("datamodule_hyper_parameters") or {}
    data = dict(data) if isinstance(data, dict) else {}
    return net_state, model, data


def _build_wrapper(path: Path, model: dict[str, Any], state: dict[str, torch.Tensor]) -> nn.Module:
    """:class:`isp.models.SideInputs` around a network of :data:`ALLOWED_CLASSES` (one level only)."""
    from isp.models import SideInputs
    from isp.models.side_inputs import INPUTS

    args = model["init_args"]
    unknown = sorted(set(args) - {"net", "inputs"})
    if unknown:
        raise CheckpointError(
            path, f"init_args has an unknown argument {unknown[0]!r} (expected some of ['net', 'inputs'])"
        )
    inputs = args.get("inputs", "full")
    if inputs not in INPUTS:
        raise CheckpointError(path, f"init_args.inputs must be one of {list(INPUTS)}, got {_short(inputs)}")
    inner = _model_config(path, args.get("net"), "its wrapper's")
    if inner is None or inner["class_path"] not in ALLOWED_CLASSES:
        found = inner["class_path"] if inner else _short(args.get("net"))
        raise CheckpointError(
            path, f"{model['class_path']} must wrap one of {sorted(ALLOWED_CLASSES)}, found {found!r}"
        )
    outside = [k for k in state if not k.startswith("net.")]
    if outside:
        raise CheckpointError(
            path,
            f"its weights do not fit {model['class_path']}: {len(outside)} unexpected (e.g. {outside[0]})",
        )
    net = _build(path, inner, {k[len("net.") :]: v for k, v in state.items()})
    return SideInputs(net, inputs).eval()


def _build(path: Path, model: dict[str, Any], state: dict[str, torch.Tensor]) -> nn.Module:
    class_path = model["class_path"]
    if class_path in WRAPPER_CLASSES:
        return _build_wrapper(path, model, state)
    if class_path not in ALLOWED_CLASSES:
        expected = sorted(ALLOWED_CLASSES) + sorted(WRAPPER_CLASSES)
        raise CheckpointError(
            path, f"architecture {class_path!r} is not one predict builds (expected {expected})"
        )
    from isp import models

    cls = getattr(models, ALLOWED_CLASSES[class_path])
    args = _check_init_args(path, cls, model)
    try:
        with torch.device("meta"):  # shapes only: nothing is allocated for a config that does not fit
            expected = cls(**args).state_dict()
    except (TypeError, ValueError) as err:
        raise CheckpointError(path, f"cannot build {class_path} from {model['init_args']}: {err}") from err
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
    net = cls(**args)
    net.load_state_dict(state)
    return net.eval()


def _check_finite(path: Path, state: dict[str, torch.Tensor]) -> None:
    """Every floating-point tensor of ``state`` holds finite values only."""
    for key, value in state.items():
        if value.is_floating_point() or value.is_complex():
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                raise CheckpointError(
                    path,
                    f"tensor {key!r} holds {bad} non-finite value(s) (NaN or infinity) of "
                    f"{value.numel()}: the weights are corrupt",
                )


def _check_data(path: Path, data: dict[str, Any]) -> None:
    scale = data.get("vector_scale")
    if scale is not None and (
        isinstance(scale, bool)
        or not isinstance(scale, int | float)
        or not math.isfinite(scale)
        or scale <= 0
    ):
        raise CheckpointError(
            path, f"data.vector_scale must be a positive finite number, got {_short(scale)}"
        )


def _check_agree(
    path: Path,
    config_path: Path,
    ckpt_model: dict | None,
    json_model: dict | None,
    ckpt_data: dict,
    json_data: dict,
) -> None:
    """A JSON beside a Lightning checkpoint may repeat what the checkpoint says, not contradict it."""
    from isp import models

    if ckpt_model is not None and json_model is not None:
        names = [ALLOWED_CLASSES.get(m["class_path"], m["class_path"]) for m in (ckpt_model, json_model)]
        same = names[0] == names[1]
        if same and names[0] in WRAPPER_CLASSES:  # the wrapped net's arguments: as written, nothing else
            same = ckpt_model["init_args"] == json_model["init_args"]
            diff = {"init_args": (ckpt_model["init_args"], json_model["init_args"])}
        elif same and names[0] in ALLOWED_CLASSES.values():
            cls = getattr(models, names[0])
            a, b = (_full_args(cls, _check_init_args(path, cls, m)) for m in (ckpt_model, json_model))
            same = a == b
            diff = {k: (a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
        else:
            diff = {"class_path": (ckpt_model["class_path"], json_model["class_path"])}
        if not same:
            detail = ", ".join(
                f"{k}: {x!r} in the checkpoint, {y!r} in the JSON" for k, (x, y) in sorted(diff.items())
            )
            raise CheckpointError(
                path,
                f"the config {str(config_path)!r} beside it names another architecture than the "
                f"checkpoint's own hyper_parameters ({detail}); remove or correct that JSON",
            )
    for key in ckpt_data.keys() & json_data.keys():
        if ckpt_data[key] != json_data[key]:
            raise CheckpointError(
                path,
                f"the config {str(config_path)!r} beside it says data.{key}={json_data[key]!r} but the "
                f"checkpoint was trained with {ckpt_data[key]!r}; remove or correct that JSON",
            )


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
            no or an unsupported architecture, gives arguments of the wrong type or out of range,
            holds a non-finite tensor or number, contradicts the JSON beside it, or its weights do
            not fit the architecture (the message names the file and the mismatch).

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
            config = json.loads(config_path.read_text(), parse_constant=_reject_constant)
        except (OSError, ValueError) as err:
            raise CheckpointError(path, f"its config {str(config_path)!r} is not valid JSON: {err}") from err
        if not isinstance(config, dict):
            raise CheckpointError(
                path, f"its config {str(config_path)!r} must be a JSON object, got {type(config).__name__}"
            )
    json_model = _model_config(path, config.get("model"), f"its config {str(config_path)!r}:")
    json_data = config.get("data") or {}
    if not isinstance(json_data, dict):
        raise CheckpointError(path, f"its config's `data` must be an object, got {_short(json_data)}")
    if "state_dict" in obj and isinstance(obj["state_dict"], dict):
        state, model, data = _split_lightning(path, obj)
        _check_agree(path, config_path, model, json_model, data, json_data)
    else:
        state, model, data = obj, None, {}
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(path, "expected a state dict of tensors")
    _check_finite(path, state)
    model = model or json_model
    if model is None:
        raise CheckpointError(
            path,
            f"it does not say which architecture it holds: expected Lightning hyper_parameters with "
            f"`net` or a config {str(config_path)!r} with a `model` entry",
        )
    data = {**data, **json_data}
    _check_data(path, data)
    net = _build(path, model, state)
    info = {k: v for k, v in config.items() if k not in ("model", "data")}
    return LoadedModel(net=net, model=model, data=data, source=os.fspath(path), info=info)
