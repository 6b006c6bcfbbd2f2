"""Clean training scenes with natural texture, made noisy by a random camera on the fly.

Three kinds of clean scene, mixed by weight (:class:`SceneMix`):

- photographs (``images``: folders of PNG/JPEG/TIFF/BMP, searched recursively), unprocessed to
  camera raw (:mod:`isp.data.unprocess`, Brooks et al. 2019) with a random camera pipeline, each
  crop downscaled by a random factor of 1-2 (sharper pixels, fewer compression artefacts);
- clean raws (``raws``: raw files or folders), decoded once and decimated 2x per colour plane
  (the mean of 2x2 same-colour pixels: four times fewer photons' worth of noise, close to clean;
  :func:`decimated_mosaic`); a ``.npy`` file among them is such a mosaic already decimated (2-d,
  RGGB at (0, 0), white-normalised, any float dtype; written by ``scripts/pack_training_set.py``
  for a compact copy of the raws) and is used as it is;
- dead leaves (:func:`isp.data.synth.dead_leaves`), edges and gratings no photo set guarantees.

Every item: a clean RGGB camera mosaic of ``context`` times the crop (+2 pixels) at a random CFA phase,
exposed to a random mean level (log-uniform 0.01..0.35 of white), a :class:`isp.noise.CameraNoise`
sensor with masked columns, the noisy :class:`~isp.raw.RawFrame` that results, and
:func:`isp.data.inputs.model_inputs` on it: exactly what ``predict.py`` computes for a file.
Nothing is copied into the repository; files are read where the user keeps them.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from isp.data.inputs import crop_inputs, model_inputs
from isp.data.synth import dead_leaves, mosaic_from_rgb
from isp.data.unprocess import random_pipeline, unprocess
from isp.noise.camera import CameraNoise, synthesize_sensor
from isp.raw import RAW_EXTENSIONS, RawMetadata, frame_from_sensor, pack
from isp.data.transforms import crop_shape

__all__ = [
    "IMAGE_EXTENSIONS",
    "MOSAIC_EXTENSIONS",
    "SceneDataset",
    "SceneMix",
    "decimated_mosaic",
    "find_files",
    "load_mosaic",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
MOSAIC_EXTENSIONS = (".npy",)  # decimated clean RGGB mosaics (see `load_mosaic`)
_PHASES = {(0, 0): "RGGB", (0, 1): "GRBG", (1, 0): "GBRG", (1, 1): "BGGR"}


def find_files(
    paths: Sequence[str | os.PathLike], extensions: Sequence[str], exclude: Sequence[str] = ()
) -> list[str]:
    """Files under ``paths`` (files or folders, recursive) with one of ``extensions``, sorted.

    Paths containing any string of ``exclude`` are left out. A missing path is an error naming it.
    """
    out = []
    for p in paths:
        p = Path(p)
        if p.is_file():
            candidates = [p]
        elif p.is_dir():
            candidates = [q for q in p.rglob("*") if q.is_file()]
        else:
            raise FileNotFoundError(f"Expected an existing file or folder of scenes. Got {str(p)!r}.")
        for q in candidates:
            if q.suffix.lower() in extensions and not any(e in str(q) for e in exclude):
                out.append(str(q.resolve()))
    return sorted(set(out))


def decimated_mosaic(path: str | os.PathLike) -> np.ndarray:
    """The clean RGGB mosaic ``(H, W)`` of a raw file, decimated 2x per colour plane.

    Each packed plane ``(4, h, w)`` of :func:`isp.raw.pack` is averaged over 2x2 blocks and the
    planes are interleaved again at RGGB: ``(2 * (h // 2), 2 * (w // 2))`` float32, clipped at 0.

    Raises:
        isp.raw.RawError, ValueError, OSError: the file cannot be read as a Bayer raw.
    """
    from isp.raw import read

    planes, _ = pack(read(path))
    c, h, w = planes.shape
    p = planes[:, : h // 2 * 2, : w // 2 * 2].reshape(c, h // 2, 2, w // 2, 2).mean(axis=(2, 4))
    mosaic = np.empty((2 * p.shape[1], 2 * p.shape[2]), np.float32)
    mosaic[0::2, 0::2], mosaic[0::2, 1::2], mosaic[1::2, 0::2], mosaic[1::2, 1::2] = p
    return np.clip(mosaic, 0.0, None)


def load_mosaic(path: str | os.PathLike) -> np.ndarray:
    """A stored :func:`decimated_mosaic` (``.npy``, 2-d, even sides, float) as float32 ``(H, W)``.

    Example:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "scene.npy"
        >>> np.save(f, np.full((4, 6), 0.25, np.float16))
        >>> load_mosaic(f).dtype, load_mosaic(f).shape
        (dtype('float32'), (4, 6))
    """
    m = np.load(path, allow_pickle=False)
    if m.ndim != 2 or m.shape[0] % 2 or m.shape[1] % 2 or not np.issubdtype(m.dtype, np.floating):
        raise ValueError(
            f"Expected {str(path)!r} to hold a 2-d float RGGB mosaic with even sides. "
            f"Got shape {m.shape} and dtype {m.dtype}."
        )
    return np.clip(m.astype(np.float32), 0.0, None)


class SceneMix:
    """Where the clean scenes come from and in which proportion.

    Args:
        images: folders or files of photographs (sRGB).
        raws: folders or files of clean camera raws (decimated 2x per plane), or of ``.npy``
            mosaics already decimated (:func:`load_mosaic`).
        exclude: substrings of file names to leave out (e.g. the development set's scenes).
        weights: ``(images, raws, dead_leaves)`` sampling weights (a kind without files is skipped).
        downscale: ``(low, high)`` downscale factor of photo crops.
    """

    def __init__(
        self,
        images: list[str] | None = None,
        raws: list[str] | None = None,
        exclude: list[str] | None = None,
        weights: tuple[float, float, float] = (0.75, 0.1, 0.15),
        downscale: tuple[float, float] = (1.0, 2.0),
    ) -> None:
        self.exclude = list(exclude or [])
        self.images = find_files(images or [], IMAGE_EXTENSIONS, self.exclude)
        self.raws = find_files(raws or [], RAW_EXTENSIONS | set(MOSAIC_EXTENSIONS), self.exclude)
        w = np.array(weights, dtype=np.float64)
        if w.shape != (3,) or (w < 0).any():
            raise ValueError(f"Expected `weights` to be three non-negative numbers. Got {weights!r}.")
        w = w * np.array([bool(self.images), bool(self.raws), True])
        if w.sum() <= 0:
            raise ValueError(
                "Expected a positive weight for a kind of scene that has files (or dead leaves)."
            )
        self.weights = w / w.sum()
        self.downscale = tuple(downscale)
        self._images: dict[str, np.ndarray] = {}
        self._raws: dict[str, np.ndarray | None] = {}

    def __repr__(self) -> str:
        return f"SceneMix({len(self.images)} photos, {len(self.raws)} raws, weights={self.weights.round(3).tolist()})"

    def _image(self, path: str) -> np.ndarray:
        if path not in self._images:
            from PIL import Image

            with Image.open(path) as im:
                self._images[path] = np.asarray(im.convert("RGB"))
        return self._images[path]

    def _raw(self, path: str) -> np.ndarray | None:
        """Decimated clean RGGB mosaic of a raw file or ``.npy`` (None when a raw cannot be read)."""
        if path not in self._raws:
            from isp.raw import RawError

            if path.lower().endswith(MOSAIC_EXTENSIONS):
                self._raws[path] = load_mosaic(path)
                return self._raws[path]
            try:
                self._raws[path] = decimated_mosaic(path)
            except (RawError, ValueError, OSError):
                self._raws[path] = None
        return self._raws[path]

    def draw(
        self, size: int | tuple[int, int], rng: np.random.Generator
    ) -> tuple[np.ndarray, str, np.ndarray, np.ndarray]:
        """A clean camera mosaic ``(size, size)`` (or ``size = (height, width)``) at a random CFA
        phase, its CFA, WB and colour matrix.

        The mosaic's mean is not normalised (see :class:`SceneDataset`). For a wide (or tall)
        crop a photo or raw is turned so that its long side runs along the crop's: long crops
        take whole rows of a photo rather than upsampled ones.
        """
        sh, sw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        pipeline = random_pipeline(rng)
        fh, fw = sh + 2, sw + 2
        wide = fh != fw
        kind = int(rng.choice(3, p=self.weights))
        mosaic = None
        if kind == 1:
            m = self._raw(self.raws[int(rng.integers(len(self.raws)))])
            if m is not None and wide and (fh > fw) != (m.shape[0] > m.shape[1]):
                m = m.T  # a transposed RGGB mosaic is RGGB (Gr and Gb swap, both green)
            if m is not None and m.shape[0] >= fh and m.shape[1] >= fw:
                y = int(rng.integers(0, (m.shape[0] - fh) // 2 + 1)) * 2
                x = int(rng.integers(0, (m.shape[1] - fw) // 2 + 1)) * 2
                mosaic = m[y : y + fh, x : x + fw]
        if kind == 0 and self.images:
            img = self._image(self.images[int(rng.integers(len(self.images)))])
            if wide and (fh > fw) != (img.shape[0] > img.shape[1]):
                img = img.transpose(1, 0, 2)
            factor = float(rng.uniform(*self.downscale))
            if wide:  # the crop's aspect, scaled down by the factor or less where the photo ends
                scale = min(factor, img.shape[0] / fh, img.shape[1] / fw)
                ph, pw = min(int(math.ceil(fh * scale)), img.shape[0]), min(int(math.ceil(fw * scale)), img.shape[1])
            else:
                ph = pw = min(int(math.ceil(fh * factor)), img.shape[0], img.shape[1])
            y = int(rng.integers(0, img.shape[0] - ph + 1))
            x = int(rng.integers(0, img.shape[1] - pw + 1))
            patch = img[y : y + ph, x : x + pw]
            if (ph, pw) != (fh, fw):
                from PIL import Image

                patch = np.asarray(Image.fromarray(patch).resize((fw, fh), Image.BILINEAR))
            if rng.random() < 0.5:
                patch = patch[:, ::-1]
            if rng.random() < 0.5:  # a square crop may turn, a wide one flips upside down
                patch = patch[::-1] if wide else patch.transpose(1, 0, 2)
            cam = unprocess(np.ascontiguousarray(patch, dtype=np.float64) / 255.0, pipeline)
            mosaic = mosaic_from_rgb(cam, "RGGB")
        if mosaic is None:
            cam = dead_leaves((fh, fw), rng) / pipeline.wb
            mosaic = mosaic_from_rgb(cam, "RGGB")
        dy, dx = int(rng.integers(2)), int(rng.integers(2))
        crop = np.asarray(mosaic[dy : dy + sh, dx : dx + sw], dtype=np.float32)
        return crop, _PHASES[(dy, dx)], pipeline.wb, pipeline.cam_to_srgb


class SceneDataset(Dataset):
    """Noisy/clean items from a :class:`SceneMix` and a :class:`~isp.noise.CameraNoise`.

    Args:
        scenes: the clean scenes.
        noise: the camera/noise sampler.
        crop_size: side of the network's input in packed pixels, or ``(height, width)``.
        length: items per epoch.
        train: fresh random items every time (else item ``i`` is fixed by ``seed`` and ``i``).
        seed: base seed.
        level: ``(low, high)`` mean level of a crop as a fraction of white, log-uniform.
        vector_scale: see :func:`isp.data.inputs.model_inputs`.
        context: the simulated frame is this many times the crop on each side; the noise and
            banding are measured on the whole frame (as ``predict.py`` measures a whole file) and
            the network's crop is cut from it at a random place.
        reference_noise: probability that the clean scene (and so the target) carries a residual
            noise ``var = a_r x + b_r`` of its own, as a real raw at base ISO does (and the
            development set's references, decimated real raws, do: std ~2e-3 at 8% of white,
            measured with :func:`isp.noise.estimate.estimate_noise`); the camera's noise is then
            added on top, so the network learns to remove the shot's noise, not the scene's
            base-ISO grain. ``a_r``, ``b_r`` log-uniform in ``reference_a``, ``reference_b``.

    Items are the batch dict of ``docs/CONTRACTS.md``: ``image, target, row, col, scalar, wb,
    cam_to_srgb, iso, path``.
    """

    def __init__(
        self,
        scenes: SceneMix,
        noise: CameraNoise,
        *,
        crop_size: int | tuple[int, int] = 64,
        length: int = 1000,
        train: bool = True,
        seed: int = 0,
        level: tuple[float, float] = (0.01, 0.35),
        vector_scale: float = 1024.0,
        context: float = 1.5,
        reference_noise: float = 0.0,
        reference_a: tuple[float, float] = (5e-6, 8e-5),
        reference_b: tuple[float, float] = (1e-8, 5e-6),
    ) -> None:
        shape = crop_shape(crop_size, minimum=8)
        crop_size = crop_size if isinstance(crop_size, int) else shape
        self.scenes, self.noise, self.crop_size = scenes, noise, crop_size
        self.length, self.train, self.seed = int(length), train, int(seed)
        self.level, self.vector_scale = tuple(level), float(vector_scale)
        if not (isinstance(context, int | float) and context >= 1):
            raise ValueError(f"Expected `context` to be a number >= 1. Got {context!r}.")
        self.context = float(context)
        if not 0.0 <= reference_noise <= 1.0:
            raise ValueError(
                f"Expected `reference_noise` to be a probability in [0, 1]. Got {reference_noise!r}."
            )
        self.reference_noise = float(reference_noise)
        self.reference_a, self.reference_b = tuple(reference_a), tuple(reference_b)
        self.rank = 0

    def __len__(self) -> int:
        return self.length

    def _rng(self, index: int) -> np.random.Generator:
        if self.train:
            return np.random.default_rng([self.seed, self.rank, torch.initial_seed() % 2**63, index])
        return np.random.default_rng([self.seed, 10**6, index])

    def __getitem__(self, index: int) -> dict:
        """One item (see the class docstring)."""
        rng = self._rng(index)
        ch, cw = (self.crop_size,) * 2 if isinstance(self.crop_size, int) else self.crop_size
        size = tuple(2 * int(math.ceil(c * self.context)) + 2 for c in (ch, cw))
        clean, cfa, wb, cam_to_srgb = self.scenes.draw(size[0] if ch == cw else size, rng)
        target_mean = math.exp(rng.uniform(math.log(self.level[0]), math.log(self.level[1])))
        clean = clean * np.float32(target_mean / max(float(clean.mean()), 1e-6))
        if rng.random() < self.reference_noise:
            a_r = math.exp(rng.uniform(*np.log(self.reference_a)))
            b_r = math.exp(rng.uniform(*np.log(self.reference_b)))
            std = np.sqrt(a_r * np.clip(clean, 0, None) + b_r).astype(np.float32)
            clean = np.clip(clean + rng.standard_normal(clean.shape, dtype=np.float32) * std, 0, None)
        # a sensor saturates at its white level: the scene, and so the target, clips there too (an
        # unclipped target taught the network to brighten highlights above the clip)
        clean = np.minimum(clean, np.float32(1.0))
        model = self.noise.sample(rng)
        sensor = synthesize_sensor(clean, model, rng)
        meta = RawMetadata(
            iso=model.exif_iso, exposure_time=model.exposure_time, wb=wb, cam_to_srgb=cam_to_srgb
        )
        m = model.masked_columns
        frame = frame_from_sensor(
            sensor,
            cfa=cfa,
            black_level=model.black,
            white_level=model.white,
            active_area=(0, m, size[0], m + size[1]),
            metadata=meta,
        )
        with warnings.catch_warnings():  # a configured ISO range may go past ISO_RANGE on purpose
            warnings.simplefilter("ignore")
            x = model_inputs(frame, vector_scale=self.vector_scale)
        target, _ = pack(clean, cfa)
        h, w = target.shape[1:]
        top = int(rng.integers(0, h - ch + 1)) if self.train else (h - ch) // 2
        left = int(rng.integers(0, w - cw + 1)) if self.train else (w - cw) // 2
        item = crop_inputs(x, top, left, ch, cw)
        item = {k: torch.from_numpy(v) for k, v in item.items()}
        item["target"] = torch.from_numpy(
            np.ascontiguousarray(target[:, top : top + ch, left : left + cw], dtype=np.float32)
        )
        item["wb"] = torch.as_tensor(wb, dtype=torch.float32)
        item["cam_to_srgb"] = torch.as_tensor(cam_to_srgb, dtype=torch.float32)
        item["iso"] = torch.tensor(float(model.exif_iso or 0.0), dtype=torch.float32)
        item["path"] = f"scene-{self.seed}-{index}"
        return item
