"""Data for raw denoising: scalars, sources, the decode cache, crops, the Dataset and DataModule.

Importing :mod:`isp.data` is cheap: the submodules (and torch, rawpy, Lightning behind them) load
on first use of a name, e.g. ``from isp.data import RawDataModule``.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "scalars": "scalars",
    "SCALAR_CHANNELS": "scalars",
    "SCALAR_NAMES": "scalars",
    "CropParams": "transforms",
    "crop_and_flip": "transforms",
    "random_crop_params": "transforms",
    "center_crop_params": "transforms",
    "CachedRaw": "cache",
    "DecodeCache": "cache",
    "MissingDataError": "cache",
    "Pair": "sources",
    "sid_pairs": "sources",
    "manifest_pairs": "sources",
    "clean_files": "sources",
    "VECTOR_SCALE": "inputs",
    "RawPairDataset": "dataset",
    "exposure_gain": "dataset",
    "RawDataModule": "datamodule",
    "frame_window": "window",
    "SceneMix": "scenes",
    "SceneDataset": "scenes",
    "model_inputs": "inputs",
    "model_inputs_v1": "inputs",
    "ModelInputs": "inputs",
}

__all__ = [  # noqa: F822 (loaded lazily by __getattr__)
    "CachedRaw",
    "CropParams",
    "DecodeCache",
    "MissingDataError",
    "Pair",
    "RawDataModule",
    "ModelInputs",
    "RawPairDataset",
    "SceneDataset",
    "SceneMix",
    "SCALAR_CHANNELS",
    "SCALAR_NAMES",
    "VECTOR_SCALE",
    "center_crop_params",
    "clean_files",
    "crop_and_flip",
    "exposure_gain",
    "frame_window",
    "manifest_pairs",
    "model_inputs",
    "model_inputs_v1",
    "random_crop_params",
    "scalars",
    "sid_pairs",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'isp.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"isp.data.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
