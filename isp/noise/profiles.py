"""Published camera noise calibrations: ISO -> system gain K and noise scales, in DN.

Sources:

- ELD: K. Wei, Y. Fu, J. Yang, H. Huang, "A Physics-based Noise Formation Model for Extreme
  Low-light Raw Denoising", CVPR 2020 (code: github.com/Vandermode/ELD, ``noise.py`` and
  ``camera_params/release/*.npy``). Per camera, every noise scale sigma follows a log-linear fit
  in the system gain K: ``ln(sigma) = slope * ln(K) + bias + N(0, spread)`` with natural logs;
  K is in DN per electron and sigma in DN of the camera's 14-bit raw. ELD's own synthesis
  works on ``y * saturation_level`` with ``saturation_level = 16383 - 800`` for every camera, so
  that is the DN range the fits are stated over (:attr:`NoiseProfile.calibration_range`).
  The read noise is Tukey-lambda distributed (``scale`` above, shape lambda per ISO in the
  released files, fitted values between about 0.01 and 0.2); the row noise is Gaussian.
- PMRID: Y. Wang, H. Huang, Q. Xu, J. Liu, Y. Liu, J. Wang, "Practical Deep Raw Image Denoising
  on Mobile Devices", ECCV 2020 (code: github.com/megvii-research/PMRID, ``run_benchmark.py``).
  OPPO Reno 10x: ``k(ISO) = 0.0005995267 * ISO + 0.00868861`` and read variance
  ``sigma^2(ISO) = 7.11772e-7 * ISO^2 + 6.514934e-4 * ISO + 0.11492713``, in DN of a 10-bit
  raw whose range is ``V = 959`` (1023 - 64); Gaussian read noise, no row term.

ISO -> K for the ELD cameras (our mapping, not ELD's): every released range spans exactly
six stops (Kmax / Kmin = 64.0 for all three cameras), and ``Kmin`` agrees with each sensor's
base-ISO conversion gain (e.g. A7S2: about 16000 DN / 150000 e- full well = 0.1 DN/e-), so we
take ``K(ISO) = Kmin * ISO / 100``: the calibrated range is ISO 100..6400. Outside it K stays
proportional to ISO and the log-linear fits are extrapolated (the sample data goes to 25600).

Files with another bit depth or black level: the same sensor read by a different ADC scales
every DN quantity by the ratio of DN ranges, so :meth:`NoiseProfile.params` takes the target
``dn_range = white - black`` and multiplies K and both scales by
``dn_range / calibration_range``; the photon count at a given normalised level is unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ELDProfile",
    "LogLinearFit",
    "NoiseParams",
    "NoiseProfile",
    "PMRIDProfile",
    "PROFILES",
    "get_profile",
    "tukey_lambda_variance",
]


def tukey_lambda_variance(lam: float) -> float:
    """Variance of the standard (scale 1) Tukey-lambda distribution with shape ``lam``.

    ``2 / lam^2 * (1 / (1 + 2 lam) - Gamma(lam + 1)^2 / Gamma(2 lam + 2))``; ``pi^2 / 3`` (the
    logistic) at ``lam = 0``; infinite for ``lam <= -1/2``.

    >>> round(tukey_lambda_variance(0.0), 4)
    3.2899
    >>> round(tukey_lambda_variance(0.14), 3)  # close to a normal with sigma ~ 1.45
    2.11
    """
    if lam <= -0.5:
        return math.inf
    if abs(lam) < 1e-4:
        return math.pi**2 / 3
    g = math.lgamma(lam + 1) * 2 - math.lgamma(2 * lam + 2)
    return 2.0 / lam**2 * (1.0 / (1.0 + 2.0 * lam) - math.exp(g))


@dataclass(frozen=True)
class LogLinearFit:
    """``ln(sigma) = slope * ln(K) + bias + N(0, spread)`` (ELD's form, natural logs)."""

    slope: float
    bias: float
    spread: float

    def __call__(self, gain: float, rng: np.random.Generator | None = None) -> float:
        """Sigma at system gain ``gain``; the fit's median, or one draw of its spread with ``rng``."""
        log_sigma = self.slope * math.log(gain) + self.bias
        if rng is not None:
            log_sigma += self.spread * float(rng.standard_normal())
        return math.exp(log_sigma)


@dataclass(frozen=True)
class NoiseParams:
    """Noise parameters of one shot, in DN of the target file.

    Attributes:
        gain: system gain K (DN per electron); shot noise variance is ``K * signal``.
        read_scale: scale of the read noise (Tukey-lambda scale, or the Gaussian sigma when
            ``read_lambda`` is None).
        read_lambda: Tukey-lambda shape, or None for Gaussian read noise.
        row_sigma: standard deviation of the per-row (banding) offset.
    """

    gain: float
    read_scale: float
    read_lambda: float | None
    row_sigma: float

    @property
    def read_variance(self) -> float:
        """Variance of the read noise in DN^2."""
        if self.read_lambda is None:
            return self.read_scale**2
        return self.read_scale**2 * tukey_lambda_variance(self.read_lambda)

    def as_gaussian(self) -> NoiseParams:
        """The same parameters with Gaussian read noise of the same variance."""
        return NoiseParams(self.gain, math.sqrt(self.read_variance), None, self.row_sigma)

    def variance(self, signal: np.ndarray | float) -> np.ndarray | float:
        """Expected variance (DN^2) of a pixel ``signal`` DN above black, before clipping.

        ``K * signal + read_variance + row_sigma^2 + 1/12`` (the last term: rounding to DN).
        """
        return self.gain * np.asarray(signal) + self.read_variance + self.row_sigma**2 + 1.0 / 12.0


class NoiseProfile:
    """A camera's calibration: ISO -> :class:`NoiseParams`.

    Subclasses implement :meth:`_params_at` in the calibration's own DN; :meth:`params` rescales
    to the target file's DN range.
    """

    name: str = ""
    calibration_range: float = 1.0
    base_iso: float = 100.0

    def _params_at(self, iso: float, rng: np.random.Generator | None) -> NoiseParams:
        raise NotImplementedError

    def params(
        self, iso: float, *, dn_range: float | None = None, rng: np.random.Generator | None = None
    ) -> NoiseParams:
        """Noise parameters at ``iso`` for a file whose ``white - black`` is ``dn_range`` DN.

        Args:
            iso: ISO speed (> 0).
            dn_range: white minus black level of the target file; None keeps the calibration's DN.
            rng: when given, draw the calibration's per-shot spread (ELD's ``N(0, spread)``);
                when None, the median of the fit (deterministic).

        >>> p = get_profile("SonyA7S2").params(100)
        >>> round(p.gain, 4)
        0.0939
        """
        if not (isinstance(iso, (int, float, np.number)) and math.isfinite(iso) and iso > 0):
            raise ValueError(f"Expected `iso` to be a positive finite number. Got {iso!r}.")
        if dn_range is not None and not (math.isfinite(dn_range) and dn_range > 0):
            raise ValueError(f"Expected `dn_range` to be a positive number of DN. Got {dn_range!r}.")
        p = self._params_at(float(iso), rng)
        if dn_range is None:
            return p
        s = float(dn_range) / self.calibration_range
        return NoiseParams(p.gain * s, p.read_scale * s, p.read_lambda, p.row_sigma * s)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class ELDProfile(NoiseProfile):
    """An ELD camera: ``K = k_min * ISO / 100`` and log-linear read (Tukey-lambda) and row scales.

    Args:
        name: camera name.
        k_min: K at ISO 100 (ELD's ``Kmin``), DN per electron.
        k_max: ELD's ``Kmax`` (end of the calibrated range; documentation and tests only).
        read: fit of the Tukey-lambda scale of the read noise.
        row: fit of the row-noise sigma.
        read_lambda: Tukey-lambda shape of the read noise (None: Gaussian with the fitted scale as
            sigma). ELD releases one fitted shape per calibrated ISO; 0.1 is a typical value of
            those (between about 0.01 and 0.2), used for every ISO here.
    """

    calibration_range = 16383.0 - 800.0

    def __init__(
        self,
        name: str,
        *,
        k_min: float,
        k_max: float,
        read: LogLinearFit,
        row: LogLinearFit,
        read_lambda: float | None = 0.1,
    ) -> None:
        self.name = name
        self.k_min = k_min
        self.k_max = k_max
        self.read = read
        self.row = row
        self.read_lambda = read_lambda

    def _params_at(self, iso: float, rng: np.random.Generator | None) -> NoiseParams:
        gain = self.k_min * iso / self.base_iso
        return NoiseParams(gain, self.read(gain, rng), self.read_lambda, self.row(gain, rng))


class PMRIDProfile(NoiseProfile):
    """PMRID's OPPO Reno 10x: linear ``k(ISO)``, quadratic read variance, Gaussian, no row noise."""

    name = "OPPOReno10x"
    calibration_range = 959.0

    k_coeff = (0.0005995267, 0.00868861)
    var_coeff = (7.11772e-7, 6.514934e-4, 0.11492713)

    def _params_at(self, iso: float, rng: np.random.Generator | None) -> NoiseParams:
        gain = self.k_coeff[0] * iso + self.k_coeff[1]
        var = (self.var_coeff[0] * iso + self.var_coeff[1]) * iso + self.var_coeff[2]
        return NoiseParams(gain, math.sqrt(var), None, 0.0)


PROFILES: dict[str, NoiseProfile] = {
    "SonyA7S2": ELDProfile(
        "SonyA7S2",
        k_min=0.0939,
        k_max=6.011,
        read=LogLinearFit(0.4621, 0.5657, 0.2634),
        row=LogLinearFit(0.5275, -0.5917, 0.2943),
    ),
    "NikonD850": ELDProfile(
        "NikonD850",
        k_min=0.4150,
        k_max=26.563,
        read=LogLinearFit(0.4774, -0.0904, 0.2392),
        row=LogLinearFit(0.4483, -1.7977, 0.2322),
    ),
    "CanonEOS70D": ELDProfile(
        "CanonEOS70D",
        k_min=0.4075,
        k_max=26.080,
        read=LogLinearFit(0.4868, 1.4643, 0.3820),
        row=LogLinearFit(0.7292, -0.9371, 0.2502),
    ),
    "OPPOReno10x": PMRIDProfile(),
}


def get_profile(profile: str | NoiseProfile) -> NoiseProfile:
    """The profile named ``profile`` (a key of :data:`PROFILES`), or ``profile`` itself.

    >>> get_profile("NikonD850")
    ELDProfile('NikonD850')
    """
    if isinstance(profile, NoiseProfile):
        return profile
    if isinstance(profile, str) and profile in PROFILES:
        return PROFILES[profile]
    raise ValueError(
        f"Expected `profile` to be one of {sorted(PROFILES)} or a NoiseProfile. Got {profile!r}."
    )
