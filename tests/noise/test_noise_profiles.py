import math

import numpy as np
import pytest

from isp.noise import PROFILES, NoiseParams, get_profile, tukey_lambda_variance
from isp.noise.profiles import ELDProfile

# ELD (CVPR 2020) released calibrations, copied here by hand from the paper's release, so that a typo
# in the module shows up: (Kmin, Kmax, read slope/bias/spread, row slope/bias/spread).
ELD = {
    "SonyA7S2": (0.0939, 6.011, (0.4621, 0.5657, 0.2634), (0.5275, -0.5917, 0.2943)),
    "NikonD850": (0.4150, 26.563, (0.4774, -0.0904, 0.2392), (0.4483, -1.7977, 0.2322)),
    "CanonEOS70D": (0.4075, 26.080, (0.4868, 1.4643, 0.3820), (0.7292, -0.9371, 0.2502)),
}


@pytest.mark.parametrize("name", sorted(ELD))
@pytest.mark.parametrize("iso", [100, 400, 3200, 25600])
def test_eld_profiles_follow_published_log_linear_fits(name, iso):
    kmin, _, read, row = ELD[name]
    p = get_profile(name).params(iso)
    k = kmin * iso / 100
    assert p.gain == pytest.approx(k, rel=1e-12)
    assert p.read_scale == pytest.approx(math.exp(read[0] * math.log(k) + read[1]), rel=1e-12)
    assert p.row_sigma == pytest.approx(math.exp(row[0] * math.log(k) + row[1]), rel=1e-12)


@pytest.mark.parametrize("name", sorted(ELD))
def test_eld_calibrated_k_range_is_iso_100_to_6400(name):
    kmin, kmax, _, _ = ELD[name]
    prof = get_profile(name)
    assert prof.params(100).gain == pytest.approx(kmin)
    assert prof.params(6400).gain == pytest.approx(kmax, rel=2e-3)


def test_pmrid_profile_matches_published_polynomials():
    p = get_profile("OPPOReno10x").params(1600)
    assert p.gain == pytest.approx(0.0005995267 * 1600 + 0.00868861)
    assert p.read_scale**2 == pytest.approx(7.11772e-7 * 1600**2 + 6.514934e-4 * 1600 + 0.11492713)
    assert p.read_lambda is None and p.row_sigma == 0.0


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_params_rescale_with_dn_range(name):
    prof = get_profile(name)
    a = prof.params(800)
    b = prof.params(800, dn_range=prof.calibration_range / 4)
    assert b.gain == pytest.approx(a.gain / 4)
    assert b.read_scale == pytest.approx(a.read_scale / 4)
    assert b.row_sigma == pytest.approx(a.row_sigma / 4)
    assert b.read_lambda == a.read_lambda


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_noise_grows_with_iso(name):
    prof = get_profile(name)
    isos = [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600]
    for signal in (0.0, 1000.0):
        var = [prof.params(i, dn_range=15871).variance(signal) for i in isos]
        assert np.all(np.diff(var) > 0)


def test_jitter_draws_the_published_spread():
    prof = get_profile("SonyA7S2")
    med = prof.params(1600)
    rng = np.random.default_rng(0)
    logs = np.array([math.log(prof.params(1600, rng=rng).read_scale / med.read_scale) for _ in range(4000)])
    assert abs(logs.mean()) < 0.02
    assert logs.std() == pytest.approx(0.2634, rel=0.05)
    assert prof.params(1600, rng=np.random.default_rng(3)) == prof.params(1600, rng=np.random.default_rng(3))


@pytest.mark.parametrize("lam", [-0.2, 0.0, 0.05, 0.1, 0.14, 0.5])
def test_tukey_lambda_variance_matches_scipy(lam):
    stats = pytest.importorskip("scipy.stats")
    assert tukey_lambda_variance(lam) == pytest.approx(float(stats.tukeylambda.var(lam)), rel=1e-6)


def test_noise_params_variance_formula():
    p = NoiseParams(gain=2.0, read_scale=3.0, read_lambda=None, row_sigma=1.5)
    assert p.variance(100.0) == pytest.approx(200 + 9 + 2.25 + 1 / 12)
    t = NoiseParams(gain=2.0, read_scale=3.0, read_lambda=0.1, row_sigma=0.0)
    assert t.as_gaussian().read_scale ** 2 == pytest.approx(t.read_variance)
    assert t.read_variance == pytest.approx(9 * tukey_lambda_variance(0.1))


def test_bad_arguments_raise_with_a_sentence():
    with pytest.raises(ValueError, match="`profile`"):
        get_profile("Hasselblad")
    with pytest.raises(ValueError, match="`iso`"):
        get_profile("SonyA7S2").params(0)
    with pytest.raises(ValueError, match="`iso`"):
        get_profile("SonyA7S2").params(float("nan"))
    with pytest.raises(ValueError, match="`dn_range`"):
        get_profile("SonyA7S2").params(100, dn_range=-1)
    assert isinstance(get_profile(PROFILES["NikonD850"]), ELDProfile)
