"""``RawDataModule``: the LightningDataModule of raw denoising (sources, cache, crops, loaders).

Choose the data with ``root`` and ``source`` (LightningCLI: ``--data.root``, ``--data.source``)::

    source: sample     root: data/sample   the generated set (isp.data.synth); made if missing
    source: pairs      root: DIR           DIR/<manifest> (default pairs.csv): noisy,clean[,split]
    source: sid        root: SID folder    SID list files (default Sony_{train,val,test}_list.txt);
                                           input x min(EXIF exposure ratio, max_gain)
    source: synthetic  root: DIR           clean raws under DIR (or DIR/<manifest>'s clean column)
                                           + isp.noise.SyntheticNoise (`noise`) at a random ISO
    source: scenes     (root unused)       photos / clean raws / dead leaves (`scenes`, an
                                           isp.data.SceneMix) + a random camera (`camera`, an
                                           isp.noise.CameraNoise), drawn afresh every item

Every raw file is decoded once into ``cache_dir`` (see :mod:`isp.data.cache`) by
``prepare_data``; training reads memory-mapped planes only. DataLoader workers use the
``spawn`` (or ``forkserver``) start method, as rawpy/OpenMP is not fork-safe, and persist across
epochs. Batches follow ``docs/CONTRACTS.md`` (see :mod:`isp.data.dataset`).

Example (YAML for ``train.py``)::

    data:
      root: data/sample
      source: sample
      crop_size: 64        # packed pixels: 128x128 mosaic pixels
      batch_size: 8
      num_workers: 2
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import lightning as L
from torch.utils.data import DataLoader

from isp.data.cache import DecodeCache, MissingDataError
from isp.data.dataset import VECTOR_SCALE, RawPairDataset
from isp.data.scenes import SceneDataset, SceneMix
from isp.data.sources import SID_LISTS, SPLITS, Pair, check_root, clean_files, manifest_pairs, sid_pairs
from isp.noise import SyntheticNoise
from isp.noise.camera import CameraNoise
from isp.data.transforms import crop_shape

__all__ = ["RawDataModule"]

Source = Literal["sample", "pairs", "sid", "synthetic", "scenes"]


class RawDataModule(L.LightningDataModule):
    """Raw noisy/clean pairs for training, validation, test and prediction.

    Args:
        root: the data folder (``data.root``); see the module docstring for each source.
        source: "sample", "pairs", "sid" or "synthetic".
        manifest: manifest file relative to ``root`` (``pairs``: default "pairs.csv";
            ``synthetic``: optional, its ``clean`` column lists the clean raws; ``sample``: unused).
        lists: SID list files relative to ``root`` (``sid`` only).
        noise: synthetic noise for ``source: synthetic`` (default ``SyntheticNoise()``: SonyA7S2
            calibration, ISO log-uniform in 100..25600).
        amplify: ``pairs``: multiply the input by the clean/noisy EXIF exposure ratio like SID
            (``sid`` always does; ``sample`` and ``synthetic`` never need to).
        max_gain: cap on that ratio (SID: 300).
        crop_size: training crop side in packed pixels (the network sees ``(4, crop_size,
            crop_size)``; ``2 * crop_size`` mosaic pixels), or ``(height, width)`` (wide crops
            show the network long rows, see ``UNet(line_features=...)``); ``None`` trains on
            whole frames.
        eval_crop_size: centre crop for validation / test / predict in packed pixels; ``None``
            (default) uses whole frames. Whole frames (for training too) and evaluation crops
            larger than a frame are cut to the largest packed size that all frames of the split
            share, so that they batch (the packed size depends on the CFA phase too: ``pack``
            drops a row / column to reach RGGB). A training ``crop_size`` larger than a frame is
            an error (raised by ``train_dataloader``).
        batch_size: training batch size.
        eval_batch_size: validation / test / predict batch size (default ``batch_size``).
        num_workers: DataLoader worker processes (0: load in the main process).
        multiprocessing_context: worker start method, "spawn" or "forkserver" (never fork: rawpy).
        cache_dir: decode cache folder (default "cache", relative to the working directory).
        augment: CFA-exact random flips and transposes of training crops.
        vector_scale: factor on the noise-vector offsets / spreads, after the gain (see
            :mod:`isp.data.dataset`): 1024 (default) for unamplified data, about 8 for SID.
        train_repeat: random crops per training pair per epoch.
        seed: base seed of crops, flips and synthetic noise.
        generate: ``sample``: generate the set into ``root`` when it is missing.
        scenes: ``scenes``: the clean scenes (:class:`isp.data.scenes.SceneMix`).
        camera: ``scenes``: the camera/noise sampler (default ``CameraNoise()``).
        epoch_size: ``scenes``: training items per epoch.
        eval_size: ``scenes``: fixed validation / test items.
        reference_noise: ``scenes``: share of scenes whose target keeps a base-ISO residual noise
            (see :class:`isp.data.scenes.SceneDataset`).
        reference_a: ``scenes``: ``(low, high)`` of that residual noise's shot slope (log-uniform).
        reference_b: ``scenes``: ``(low, high)`` of its read variance (log-uniform).
        sample_args: ``sample``: keyword arguments of ``isp.data.synth.generate`` (``n_train``,
            ``n_val``, ``n_test``, ``size``, ``seed``) used when generating; its defaults otherwise.

    Raises:
        MissingDataError: (from ``prepare_data`` / ``setup``) naming the missing or empty
            ``data.root``, manifest, list file or raw file.
    """

    def __init__(
        self,
        root: str = "data/sample",
        source: Source = "sample",
        manifest: str | None = None,
        lists: list[str] | None = None,
        noise: SyntheticNoise | None = None,
        amplify: bool = False,
        max_gain: float = 300.0,
        crop_size: int | tuple[int, int] | None = 128,
        eval_crop_size: int | None = None,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        multiprocessing_context: Literal["spawn", "forkserver"] = "spawn",
        cache_dir: str = "cache",
        augment: bool = True,
        vector_scale: float = VECTOR_SCALE,
        train_repeat: int = 1,
        seed: int = 0,
        generate: bool = True,
        sample_args: dict[str, Any] | None = None,
        scenes: SceneMix | None = None,
        camera: CameraNoise | None = None,
        epoch_size: int = 2000,
        eval_size: int = 64,
        reference_noise: float = 0.0,
        reference_a: tuple[float, float] = (5e-6, 8e-5),
        reference_b: tuple[float, float] = (1e-8, 5e-6),
    ) -> None:
        super().__init__()
        if source not in ("sample", "pairs", "sid", "synthetic", "scenes"):
            raise ValueError(
                f"Expected `source` to be 'sample', 'pairs', 'sid', 'synthetic' or 'scenes'. Got {source!r}."
            )
        if source == "scenes" and scenes is None:
            raise ValueError("Expected `scenes` (an isp.data.SceneMix) with source 'scenes'. Got None.")
        if multiprocessing_context not in ("spawn", "forkserver"):
            raise ValueError(
                f"Expected `multiprocessing_context` to be 'spawn' or 'forkserver' (rawpy is not "
                f"fork-safe). Got {multiprocessing_context!r}."
            )
        for name, value in (("batch_size", batch_size), ("train_repeat", train_repeat)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Expected `{name}` to be a positive int. Got {value!r}.")
        if eval_batch_size is not None and (not isinstance(eval_batch_size, int) or eval_batch_size < 1):
            raise ValueError(
                f"Expected `eval_batch_size` to be a positive int or None. Got {eval_batch_size!r}."
            )
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"Expected `num_workers` to be an int >= 0. Got {num_workers!r}.")
        if crop_size is not None:
            shape = crop_shape(crop_size)
            crop_size = crop_size if isinstance(crop_size, int) else shape  # a YAML list: a pair
        if eval_crop_size is not None and (not isinstance(eval_crop_size, int) or isinstance(eval_crop_size, bool)):
            raise ValueError(
                f"Expected `eval_crop_size` to be a positive int (packed pixels) or None. Got {eval_crop_size!r}."
            )
        if eval_crop_size is not None:
            crop_shape(eval_crop_size, name="eval_crop_size")
        if source != "synthetic" and noise is not None:
            raise ValueError(f"Expected `noise` only with source 'synthetic'. Got source {source!r}.")
        self.save_hyperparameters(ignore=["noise", "scenes", "camera"])
        self.scenes = scenes
        self.camera = camera if camera is not None else CameraNoise()
        self.epoch_size = epoch_size
        self.eval_size = eval_size
        self.reference_noise = reference_noise
        self.reference_a, self.reference_b = tuple(reference_a), tuple(reference_b)
        self.root = root
        self.source = source
        self.manifest = manifest
        self.lists = list(lists) if lists is not None else list(SID_LISTS)
        self.noise = noise if noise is not None or source != "synthetic" else SyntheticNoise()
        self.amplify = amplify
        self.max_gain = float(max_gain)
        self.crop_size = crop_size
        self.eval_crop_size = eval_crop_size
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.multiprocessing_context = multiprocessing_context
        self.cache = DecodeCache(cache_dir)
        self.augment = augment
        self.vector_scale = float(vector_scale)
        self.train_repeat = train_repeat
        self.seed = seed
        self.generate = generate
        self.sample_args = dict(sample_args or {})
        self.datasets: dict[str, RawPairDataset] = {}
        self._crop_error: str | None = None

    # data discovery ---------------------------------------------------------------------------
    def _generate_sample(self) -> None:
        manifest = Path(self.root) / "pairs.csv"
        if manifest.is_file():
            return
        if not self.generate:
            raise MissingDataError(
                f"Expected the sample data at `data.root` {self.root!r} ({manifest} is missing); "
                f"run `python -m isp.data.synth --out {self.root}` or set `data.generate: true`."
            )
        from isp.data import synth  # lazily: only the sample source needs the generator

        synth.generate(self.root, **self.sample_args)

    def pairs(self) -> list[Pair]:
        """Every pair of the configured source (all splits), files checked to exist."""
        root = Path(self.root)
        if self.source == "sample":
            self._generate_sample()
            return manifest_pairs(root / "pairs.csv")
        if self.source == "sid":
            return sid_pairs(root, self.lists)
        if self.source == "synthetic":
            return clean_files(root, self.manifest)
        check_root(root)
        return manifest_pairs(root / (self.manifest or "pairs.csv"), amplify=self.amplify)

    def _dataset(self, pairs: list[Pair], split: str, *, fit_sizes: bool = False) -> RawPairDataset:
        train = split == "train"
        dataset = RawPairDataset(
            [p for p in pairs if p.split == split],
            self.cache,
            crop_size=self.crop_size if train else self.eval_crop_size,
            train=train,
            augment=self.augment,
            vector_scale=self.vector_scale,
            max_gain=self.max_gain,
            noise=self.noise,
            seed=self.seed,
            repeat=self.train_repeat if train else 1,
        )
        if fit_sizes and dataset.pairs:
            dataset.crop_size = self._fitted_crop(dataset, split)
        return dataset

    def _fitted_crop(self, dataset: RawPairDataset, split: str) -> int | tuple[int, int]:
        """The crop every frame of the split allows (all items of a batch must have one size)."""
        h, w = dataset.common_shape()
        crop = dataset.crop_size
        if crop is None:
            return h, w
        ch, cw = (crop, crop) if isinstance(crop, int) else crop
        if not dataset.train:
            return min(ch, h), min(cw, w)
        if ch > h or cw > w:  # raised when training starts, so that `validate` / `test` still run
            self._crop_error = (
                f"Expected `crop_size` {crop} (packed pixels) to fit every training frame; the smallest "
                f"packed size in the {split!r} split is {h}x{w} (a non-RGGB CFA phase costs a row / column)."
            )
        return crop

    # Lightning hooks --------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Generate the sample set if needed and decode every file into the cache (one process)."""
        if self.source == "scenes":
            return
        pairs = self.pairs()
        for split in SPLITS:
            self._dataset(pairs, split).fill_cache()

    def setup(self, stage: str | None = None) -> None:
        """Build the train / val / test datasets (cache keys taken here; files must exist)."""
        if self.datasets:
            return
        if self.source == "scenes":
            crop = self.crop_size or 64
            self.datasets = {
                split: SceneDataset(
                    self.scenes,
                    self.camera,
                    crop_size=crop if split == "train" else (self.eval_crop_size or crop),
                    length=self.epoch_size if split == "train" else self.eval_size,
                    train=split == "train",
                    seed=self.seed + i,
                    vector_scale=self.vector_scale,
                    reference_noise=self.reference_noise,
                    reference_a=self.reference_a,
                    reference_b=self.reference_b,
                )
                for i, split in enumerate(SPLITS)
            }
            return
        pairs = self.pairs()
        self.datasets = {split: self._dataset(pairs, split, fit_sizes=True) for split in SPLITS}

    def _loader(self, split: str, *, shuffle: bool) -> DataLoader:
        if not self.datasets:
            self.setup()
        dataset = self.datasets[split]
        if len(dataset) == 0:
            raise MissingDataError(
                f"Expected pairs in the {split!r} split of `data.root` {self.root!r} "
                f"(source {self.source!r}). Found none."
            )
        trainer = getattr(self, "trainer", None)
        dataset.rank = int(trainer.global_rank) if trainer is not None else 0
        workers = self.num_workers
        return DataLoader(
            dataset,
            batch_size=self.batch_size if split == "train" else self.eval_batch_size,
            shuffle=shuffle,
            drop_last=shuffle and len(dataset) >= self.batch_size,
            num_workers=workers,
            multiprocessing_context=self.multiprocessing_context if workers > 0 else None,
            persistent_workers=workers > 0,
            pin_memory=False,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled random crops of the train split."""
        if not self.datasets:
            self.setup()
        if self._crop_error:
            raise ValueError(self._crop_error)
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """The val split: whole frames or fixed centre crops, in order."""
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """The test split: whole frames or fixed centre crops, in order."""
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """The test split, for ``train.py predict``."""
        return self._loader("test", shuffle=False)

    def __repr__(self) -> str:
        return f"RawDataModule(root={os.fspath(self.root)!r}, source={self.source!r}, cache={self.cache!r})"

    # LightningDataModule.__str__ builds every DataLoader (reading the data): describe instead.
    __str__ = __repr__
