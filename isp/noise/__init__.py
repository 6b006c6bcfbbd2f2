"""Calibrated physics-based raw noise synthesis (see :mod:`isp.noise.model`, :mod:`isp.noise.profiles`)."""

from isp.noise.model import SyntheticNoise, black_map, synthesize, synthesize_frame
from isp.noise.profiles import (
    PROFILES,
    ELDProfile,
    LogLinearFit,
    NoiseParams,
    NoiseProfile,
    PMRIDProfile,
    get_profile,
    tukey_lambda_variance,
)

__all__ = [
    "PROFILES",
    "ELDProfile",
    "LogLinearFit",
    "NoiseParams",
    "NoiseProfile",
    "PMRIDProfile",
    "SyntheticNoise",
    "black_map",
    "get_profile",
    "synthesize",
    "synthesize_frame",
    "tukey_lambda_variance",
]
