"""The Dataset: cached raw pairs -> crops -> the sample dict of ``docs/CONTRACTS.md``.

One item is a dict of tensors (default ``collate`` stacks them into the batch of the contract)::

    image        float32 (4, h, w)   noisy packed R, Gr, Gb, B planes, times ``gain``
    target       float32 (4, h, w)   clean planes (never amplified)
    row          float32 (5, h)      row noise vectors of the noisy file
    col          float32 (5, w)      column noise vectors
    scalar       float32 (5,)        isp.data.scalars(noisy metadata, gain)
    wb           float32 (3,)        as-shot white balance of the clean file
    cam_to_srgb  float32 (3, 3)      its camera -> linear sRGB matrix
    iso          float32 ()          the noisy file's ISO, 0 when unknown
    path         str                 the noisy file (the clean one for synthetic noise)

The network inputs (``image``, ``row``, ``col``, ``scalar``) are contract 1 of
:mod:`isp.data.inputs` (:func:`~isp.data.inputs.model_inputs_v1`), applied to the crop: the same
function builds them for prediction. SID-style amplified inputs (gain 100 .. 300) already carry a
large factor: use a ``vector_scale`` of about 8 there instead of :data:`VECTOR_SCALE`.

Training items are random crops at random positions with CFA-exact flips and transposes
(:mod:`isp.data.transforms`); validation and test items are the whole frame or a fixed centre
crop, with noise (for synthetic sources) fixed per item. Synthetic noise is drawn on the sensor
window under the crop only, masked margins included (:func:`isp.data.window.frame_window`), so
its cost does not grow with the frame. Randomness: training draws come from a
generator seeded by ``seed``, the DDP rank and ``torch.initial_seed()``, which PyTorch sets
differently in each DataLoader worker and each epoch (from the main process's seed, so
``seed_everything`` makes runs repeatable); evaluation draws from ``SeedSequence([seed, index])``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from isp.data.cache import CachedRaw, DecodeCache
from isp.data.inputs import VECTOR_SCALE, model_inputs_v1
from isp.data.sources import Pair
from isp.data.transforms import CropParams, center_crop_params, crop_and_flip, crop_shape, random_crop_params
from isp.data.window import frame_window

__all__ = ["VECTOR_SCALE", "RawPairDataset", "exposure_gain"]


def exposure_gain(noisy: CachedRaw, clean: CachedRaw, max_gain: float) -> float:
    """SID's amplification ratio: clean / noisy exposure time from EXIF, capped at ``max_gain``.

    Raises:
        ValueError: when either file does not record its exposure time.
    """
    for item, role in ((noisy, "noisy"), (clean, "clean")):
        if item.metadata.exposure_time is None:
            raise ValueError(
                f"Expected the {role} file {item.path!r} to record its exposure time (EXIF "
                f"ExposureTime) to compute the amplification ratio. It has none."
            )
    return float(min(clean.metadata.exposure_time / noisy.metadata.exposure_time, max_gain))


class RawPairDataset(Dataset):
    """Noisy/clean raw pairs read through a :class:`~isp.data.cache.DecodeCache`.

    Args:
        pairs: the examples (see :class:`~isp.data.sources.Pair`); every file must exist now
            (its cache key is taken here; afterwards only the cache is read).
        cache: the decode cache.
        crop_size: side of the square crop in packed pixels (``2 * crop_size`` mosaic pixels),
            or ``(height, width)``; ``None`` for whole frames (see :meth:`common_shape` to batch
            frames of different sizes).
        train: random crops and augmentation (else a fixed centre crop / the whole frame).
        augment: CFA-exact random flips and transposes when training.
        vector_scale: factor on noise-vector channels 0-3 (see the module docstring).
        max_gain: cap on the exposure-ratio amplification (SID uses 300).
        noise: an ``isp.noise.SyntheticNoise`` for pairs without a noisy file.
        seed: base seed of the random draws.
        repeat: each pair appears this many times per epoch (more random crops per epoch).

    Example:
        >>> RawPairDataset([], DecodeCache("cache"), crop_size=64)
        RawPairDataset(0 pairs, crop_size=64, train=True, synthetic=False)
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        cache: DecodeCache,
        *,
        crop_size: int | tuple[int, int] | None = 128,
        train: bool = True,
        augment: bool = True,
        vector_scale: float = VECTOR_SCALE,
        max_gain: float = 300.0,
        noise=None,
        seed: int = 0,
        repeat: int = 1,
    ) -> None:
        if crop_size is not None:
            crop_shape(crop_size)
        if not (isinstance(repeat, int) and repeat >= 1):
            raise ValueError(f"Expected `repeat` to be an int >= 1. Got {repeat!r}.")
        if not (math.isfinite(vector_scale) and vector_scale > 0):
            raise ValueError(f"Expected `vector_scale` to be a positive number. Got {vector_scale!r}.")
        if not (math.isfinite(max_gain) and max_gain >= 1):
            raise ValueError(f"Expected `max_gain` to be a number >= 1. Got {max_gain!r}.")
        if noise is None and any(p.noisy is None for p in pairs):
            raise ValueError(
                "Expected `noise` (an isp.noise.SyntheticNoise) for pairs without a noisy file. Got None."
            )
        self.pairs = list(pairs)
        self.cache = cache
        self.crop_size = crop_size
        self.train = train
        self.augment = augment
        self.vector_scale = float(vector_scale)
        self.max_gain = float(max_gain)
        self.noise = noise
        self.seed = int(seed)
        self.repeat = repeat
        self.rank = 0  # the DDP rank (set by RawDataModule): ranks draw different crops and noise
        self.keys = {}
        for p in self.pairs:
            for path in (p.noisy, p.clean):
                if path is not None and path not in self.keys:
                    self.keys[path] = cache.key(path)
        self._rng = None
        self._rng_owner = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self.pairs)} pairs, crop_size={self.crop_size}, "
            f"train={self.train}, synthetic={self.noise is not None})"
        )

    def __len__(self) -> int:
        return len(self.pairs) * (self.repeat if self.train else 1)

    def fill_cache(self) -> None:
        """Decode every file of the dataset into the cache now (once; later calls are no-ops)."""
        for p in self.pairs:
            if p.noisy is not None:
                self.cache.ensure(p.noisy, self.keys[p.noisy])
            self.cache.ensure(p.clean, self.keys[p.clean], frame=p.noisy is None)

    def common_shape(self) -> tuple[int, int]:
        """``(h, w)``: the largest packed size every pair of the dataset has (decodes uncached files).

        Whole frames of one camera all have one size, but the packed size also depends on the
        CFA phase (``pack`` drops a row / column to reach RGGB); use this as ``crop_size`` to
        batch whole frames of mixed sizes (centre crops for evaluation).
        """
        if not self.pairs:
            raise ValueError(
                "Expected a dataset with at least one pair to take its common shape. Got 0 pairs."
            )
        shapes = [self.cache.load(p.clean, self.keys[p.clean]).planes.shape[1:] for p in self.pairs]
        return min(s[0] for s in shapes), min(s[1] for s in shapes)

    def _generator(self, index: int) -> np.random.Generator:
        if not self.train:
            return np.random.default_rng([self.seed, index])
        owner = (os.getpid(), torch.initial_seed())
        if self._rng is None or self._rng_owner != owner:
            self._rng = np.random.default_rng([self.seed, self.rank, owner[1] % 2**63])
            self._rng_owner = owner
        return self._rng

    def _crop_params(self, pair: Pair, shape: tuple[int, int], rng: np.random.Generator) -> CropParams:
        try:
            if self.train:
                return random_crop_params(shape, self.crop_size, rng, augment=self.augment)
            return center_crop_params(shape, self.crop_size)
        except ValueError as err:
            raise ValueError(f"{err} (file {pair.noisy or pair.clean!r})") from None

    def _synthetic(self, pair: Pair, params: CropParams, rng: np.random.Generator):
        """Noisy (planes, row, col, metadata) for a crop: noise synthesised on its sensor window only."""
        from isp.raw import noise_vectors, pack

        frame = self.cache.load_frame(pair.clean, self.keys[pair.clean])
        window = frame_window(
            frame, params.top, params.left, params.height + params.vflip, params.width + params.hflip
        )
        noisy = self.noise(window, rng)
        planes, _ = pack(noisy)
        row, col = noise_vectors(noisy)
        local = dataclasses.replace(params, top=0, left=0)
        return (*crop_and_flip(planes, row, col, local), noisy.metadata)

    def __getitem__(self, index: int) -> dict:
        """The sample dict of item ``index`` (see the module docstring)."""
        if not 0 <= index < len(self):
            raise IndexError(f"Expected an index in [0, {len(self)}). Got {index}.")
        pair = self.pairs[index % len(self.pairs)]
        rng = self._generator(index)
        clean = self.cache.load(pair.clean, self.keys[pair.clean])
        params = self._crop_params(pair, clean.planes.shape[1:], rng)
        if pair.noisy is None:
            image, row, col, metadata = self._synthetic(pair, params, rng)
            gain = 1.0
        else:
            noisy = self.cache.load(pair.noisy, self.keys[pair.noisy])
            if noisy.planes.shape != clean.planes.shape:
                raise ValueError(
                    f"Expected the noisy and clean files to have the same size. Got "
                    f"{tuple(noisy.planes.shape)} for {pair.noisy!r} and {tuple(clean.planes.shape)} "
                    f"for {pair.clean!r} (packed)."
                )
            gain = exposure_gain(noisy, clean, self.max_gain) if pair.amplify else 1.0
            image, row, col = crop_and_flip(noisy.planes, noisy.row, noisy.col, params)
            metadata = noisy.metadata
        target, _, _ = crop_and_flip(clean.planes, None, None, params)
        x = model_inputs_v1(image, row, col, metadata, gain=gain, vector_scale=self.vector_scale)
        iso = metadata.iso
        return {
            **{key: torch.from_numpy(value) for key, value in x.items()},
            "target": torch.from_numpy(target.astype(np.float32, copy=False)),
            "wb": torch.as_tensor(np.asarray(clean.metadata.wb), dtype=torch.float32),
            "cam_to_srgb": torch.as_tensor(np.asarray(clean.metadata.cam_to_srgb), dtype=torch.float32),
            "iso": torch.tensor(float(iso) if iso is not None else 0.0, dtype=torch.float32),
            "path": pair.noisy if pair.noisy is not None else pair.clean,
        }
