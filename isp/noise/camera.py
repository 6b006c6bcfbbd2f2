"""A noise model that spans real cameras: random sensors instead of three calibrations.

One draw of :class:`CameraNoise` is a :class:`SensorModel`: a virtual camera and shot. Physics,
in DN of the file (``white - black`` = the DN range)::

    K = (white - black) / full_well * ISO / 100          system gain, DN per electron
    D = black + K * Poisson(S / K)                        shot noise (S: clean signal in DN)
          + K * read_e * N1                               read noise before the gain (electrons)
          + post_dn * N2                                  read noise after the gain (ADC, DN)
          + row_dn * N3[y]                                row banding, every pixel of row y,
                                                          masked columns included
    out = clip(round(D), 0, 2^bits - 1)                   quantisation and clipping

so ``var = a x + b`` in mosaic units with ``a = K / (white - black)`` and
``b = ((K read_e)^2 + post_dn^2) / (white - black)^2``. The pre-gain part may be Tukey-lambda
(heavy- or light-tailed, ELD's form) instead of Gaussian, with the same variance.

Ranges (defaults): full well 10k-200k electrons at ISO 100 (a phone-sized to a full-frame
pixel), ISO 50-32000, 10-, 12- or 14-bit with black levels 0-2048, read noise 1-8 electrons
before the gain and 1e-4..6e-4 of the DN range after it, banding on 60% of the shots from 0.05
to 1.5 read-noise std, and on 25% of the shots an EXIF ISO 2-32x above the true one (merged or
computational raws: far less noise than the ISO implies). The published calibrations of
:mod:`isp.noise.profiles` (ELD Sony A7S2 ~155k e-, Nikon D850, Canon 70D; PMRID's phone) lie
inside these ranges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from isp.noise.profiles import tukey_lambda_variance

__all__ = ["CameraNoise", "SensorModel", "synthesize_sensor"]

_BLACKS = {10: (0, 16, 32, 64), 12: (0, 64, 128, 200, 256, 512), 14: (0, 64, 256, 512, 1024, 2048)}


@dataclass(frozen=True)
class SensorModel:
    """One virtual camera and shot (DN of the file).

    Attributes:
        bits: ADC bit depth (clip at ``2^bits - 1``).
        black: black level (DN).
        white: white level (DN).
        gain: system gain K (DN per electron).
        read_e: read-noise std before the gain (electrons).
        post_dn: read-noise std after the gain (DN).
        tukey_lambda: shape of the pre-gain read noise (None: Gaussian).
        row_dn: banding std per sensor row (DN).
        iso: the true ISO of the shot.
        exif_iso: the ISO the file records (None: unrecorded).
        exposure_time: the exposure time the file records (s, None: unrecorded).
        masked_columns: masked optical-black columns left of the visible area.
    """

    bits: int
    black: int
    white: int
    gain: float
    read_e: float
    post_dn: float
    tukey_lambda: float | None
    row_dn: float
    iso: float
    exif_iso: float | None
    exposure_time: float | None
    masked_columns: int

    @property
    def dn_range(self) -> float:
        """``white - black``."""
        return float(self.white - self.black)

    @property
    def read_dn(self) -> float:
        """Total read-noise std (DN)."""
        return math.hypot(self.gain * self.read_e, self.post_dn)

    @property
    def a(self) -> float:
        """Shot-noise slope in mosaic units."""
        return self.gain / self.dn_range

    @property
    def b(self) -> float:
        """Read variance in mosaic units (quantisation excluded)."""
        return (self.read_dn / self.dn_range) ** 2


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


class CameraNoise:
    """Draws :class:`SensorModel` s over the range of real cameras (see the module docstring).

    Plain typed arguments, so a LightningCLI config can build and tune it.

    Args:
        full_well: ``(low, high)`` electrons at ISO 100, log-uniform.
        iso: ``(low, high)`` true ISO, log-uniform.
        bits: bit depths to choose from.
        read_e: ``(low, high)`` pre-gain read noise in electrons, log-uniform.
        post: ``(low, high)`` post-gain read noise as a fraction of the DN range, log-uniform.
        heavy_tail: probability of Tukey-lambda pre-gain read noise (lambda in -0.1..0.15).
        banding: probability of row banding.
        banding_ratio: ``(low, high)`` banding std over the read-noise std, uniform.
        overstated: probability that the EXIF ISO is above the true one.
        overstate_factor: ``(low, high)`` of that factor, log-uniform.
        masked: masked-column counts to choose from (0: none).

    Example:
        >>> m = CameraNoise().sample(np.random.default_rng(0))
        >>> 1e4 <= m.dn_range / m.gain * m.iso / 100 <= 2e5
        True
    """

    def __init__(
        self,
        full_well: tuple[float, float] = (1e4, 2e5),
        iso: tuple[float, float] = (50.0, 32000.0),
        bits: tuple[int, ...] = (10, 12, 12, 14, 14),
        read_e: tuple[float, float] = (1.0, 8.0),
        post: tuple[float, float] = (1e-4, 6e-4),
        heavy_tail: float = 0.3,
        banding: float = 0.6,
        banding_ratio: tuple[float, float] = (0.05, 1.5),
        overstated: float = 0.25,
        overstate_factor: tuple[float, float] = (2.0, 32.0),
        masked: tuple[int, ...] = (16, 16, 16, 16, 16, 16, 16, 8, 32, 0),
    ) -> None:
        for name, pair in (
            ("full_well", full_well),
            ("iso", iso),
            ("read_e", read_e),
            ("post", post),
            ("overstate_factor", overstate_factor),
        ):
            lo, hi = pair
            if not (0 < lo <= hi and math.isfinite(hi)):
                raise ValueError(f"Expected `{name}` to be (low, high) with 0 < low <= high. Got {pair!r}.")
        if not bits or any(b not in _BLACKS for b in bits):
            raise ValueError(f"Expected `bits` from {sorted(_BLACKS)}. Got {bits!r}.")
        for name, p in (("heavy_tail", heavy_tail), ("banding", banding), ("overstated", overstated)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"Expected `{name}` to be a probability in [0, 1]. Got {p!r}.")
        if any(m < 0 or m % 2 for m in masked) or not masked:
            raise ValueError(f"Expected `masked` to be even column counts >= 0. Got {masked!r}.")
        self.full_well, self.iso, self.bits = tuple(full_well), tuple(iso), tuple(bits)
        self.read_e, self.post, self.heavy_tail = tuple(read_e), tuple(post), heavy_tail
        self.banding, self.banding_ratio = banding, tuple(banding_ratio)
        self.overstated, self.overstate_factor, self.masked = (
            overstated,
            tuple(overstate_factor),
            tuple(masked),
        )

    def sample(self, rng: np.random.Generator) -> SensorModel:
        """One virtual camera and shot."""
        bits = int(rng.choice(self.bits))
        black = int(rng.choice(_BLACKS[bits]))
        white = 2**bits - 1 if rng.random() < 0.7 else int((2**bits - 1) * rng.uniform(0.9, 0.98))
        full_well = _log_uniform(rng, *self.full_well)
        iso = _log_uniform(rng, *self.iso)
        gain = (white - black) / full_well * iso / 100.0
        post_dn = _log_uniform(rng, *self.post) * (white - black)
        read_e = _log_uniform(rng, *self.read_e)
        lam = float(rng.uniform(-0.1, 0.15)) if rng.random() < self.heavy_tail else None
        read_dn = math.hypot(gain * read_e, post_dn)
        row_dn = float(rng.uniform(*self.banding_ratio)) * read_dn if rng.random() < self.banding else 0.0
        exif_iso: float | None = iso
        if rng.random() < self.overstated:
            exif_iso = iso * _log_uniform(rng, *self.overstate_factor)
        if rng.random() < 0.05:
            exif_iso = None
        exposure = _log_uniform(rng, 1e-4, 1.0) if rng.random() < 0.95 else None
        return SensorModel(
            bits=bits,
            black=black,
            white=white,
            gain=gain,
            read_e=read_e,
            post_dn=post_dn,
            tukey_lambda=lam,
            row_dn=row_dn,
            iso=iso,
            exif_iso=exif_iso,
            exposure_time=exposure,
            masked_columns=int(rng.choice(self.masked)),
        )

    def __repr__(self) -> str:
        return f"CameraNoise(full_well={self.full_well}, iso={self.iso}, bits={self.bits})"


def _tukey(shape: tuple[int, int], lam: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance Tukey-lambda samples (quantile function of uniforms)."""
    u = np.clip(rng.random(shape, dtype=np.float32), np.float32(2**-24), np.float32(1 - 2**-24))
    q = np.log(u / (1 - u)) if abs(lam) < 1e-4 else (u**lam - (1 - u) ** lam) / np.float32(lam)
    return (q / np.float32(math.sqrt(tukey_lambda_variance(lam)))).astype(np.float32)


def synthesize_sensor(clean: np.ndarray, model: SensorModel, rng: np.random.Generator) -> np.ndarray:
    """The noisy sensor of a clean mosaic: ``(H, W)`` in [0, 1] -> ``uint16 (H, masked + W)``.

    ``clean`` is the visible mosaic in mosaic units (values above 1 saturate); the masked columns
    come first (left), holding the black level before the noise.

    Example:
        >>> m = CameraNoise(banding=0.0).sample(np.random.default_rng(1))
        >>> synthesize_sensor(np.full((4, 6), 0.5), m, np.random.default_rng(0)).shape[0]
        4
    """
    clean = np.asarray(clean, dtype=np.float32)
    if clean.ndim != 2:
        raise ValueError(f"Expected `clean` of shape (H, W). Got {clean.shape}.")
    h, w = clean.shape
    signal = np.zeros((h, model.masked_columns + w), np.float32)
    signal[:, model.masked_columns :] = np.clip(clean, 0.0, None) * np.float32(model.dn_range)
    k = np.float32(model.gain)
    out = rng.poisson(signal / k).astype(np.float32) * k
    pre = np.float32(model.gain * model.read_e)
    if model.tukey_lambda is None:
        out += rng.standard_normal(out.shape, dtype=np.float32) * pre
    else:
        out += _tukey(out.shape, model.tukey_lambda, rng) * pre
    out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(model.post_dn)
    if model.row_dn > 0:
        out += rng.standard_normal((h, 1), dtype=np.float32) * np.float32(model.row_dn)
    out += np.float32(model.black)
    np.rint(out, out=out)
    np.clip(out, 0, 2**model.bits - 1, out=out)
    return out.astype(np.uint16)
