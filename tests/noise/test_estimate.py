import json
from pathlib import Path

import numpy as np
import pytest

from isp.data.synth import dead_leaves
from isp.noise.estimate import estimate_noise, ob_read_variance, prior_noise

DEVSET = Path(__file__).resolve().parents[2].parent / "shared" / "devset" / "physical"


def _noisy(clean, a, b, seed=0):
    rng = np.random.default_rng(seed)
    return (clean + rng.standard_normal(clean.shape) * np.sqrt(a * np.clip(clean, 0, None) + b)).astype(
        np.float32
    )


def _planes_from_rgb(rgb):
    r, g, b = (rgb[..., i] for i in range(3))
    return np.stack([r, g, g, b])


@pytest.mark.parametrize("a,b", [(1e-4, 2e-7), (3e-3, 5e-5), (1.4e-2, 1.8e-3)])
def test_recovers_known_parameters_on_a_flat_gradient(a, b):
    y, x = np.mgrid[0:256, 0:384] / 384.0
    clean = np.broadcast_to(0.02 + 0.5 * x + 0.1 * y, (4, 256, 384)).copy()
    est = estimate_noise(_noisy(clean, a, b))
    assert est.source == "image"
    assert est.a == pytest.approx(a, rel=0.1)
    # without masked pixels b is the least certain part: where shot noise dominates it hardly matters
    for level, tolerance in ((0.05, 0.12), (0.3, 0.08)):
        assert est.std(level) == pytest.approx(np.sqrt(a * level + b), rel=tolerance)
    if b > 10 * a * 0.02:
        assert np.sqrt(est.b) == pytest.approx(np.sqrt(b), rel=0.3)


def test_textured_scene_with_masked_pixels():
    rgb = dead_leaves((512, 768), np.random.default_rng(0)) * 0.4
    clean = _planes_from_rgb(rgb[::2, ::2])  # packed-size planes, greens equal (texture cancels)
    a, b = 2e-3, 3e-5
    rng = np.random.default_rng(1)
    ob = rng.normal(0, np.sqrt(b), (256, 16)) + rng.normal(0, 0.01, (256, 1))  # read + banding
    est = estimate_noise(_noisy(clean, a, b), masked=[ob])
    assert est.source == "image+ob"
    assert est.b == pytest.approx(b, rel=0.1)
    assert est.a == pytest.approx(a, rel=0.15)
    assert 0 < est.confidence <= 1


def test_no_masked_pixels_and_no_flat_blocks_take_the_prior():
    tiny = np.full((4, 6, 6), 0.1, np.float32)
    est = estimate_noise(tiny, iso=1600)
    assert est.source == "prior" and est.confidence == 0.0
    assert (est.a, est.b) == pytest.approx(prior_noise(1600))
    est = estimate_noise(tiny, masked=[np.random.default_rng(0).normal(0, 1e-3, (6, 16))])
    assert est.source == "ob+prior" and est.b == pytest.approx(1e-6, rel=0.3)


def test_masked_read_variance_survives_clipping_at_zero_dn():
    rng = np.random.default_rng(2)
    sigma, floor = 0.02, -0.004  # black level 0.2 sigma above 0 DN: ~40% of the pixels clip
    ob = np.maximum(rng.normal(0, sigma, (2000, 16)), floor)
    var, n = ob_read_variance([ob], floor)
    assert np.sqrt(var) == pytest.approx(sigma, rel=0.05) and n == ob.size
    assert np.sqrt(ob_read_variance([ob])[0]) < 0.8 * sigma  # what ignoring the clip would give


def test_refuses_planes_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"\(4, h, w\)"):
        estimate_noise(np.zeros((3, 10, 10)))


@pytest.mark.skipif(not DEVSET.is_dir(), reason="../shared/devset is absent (a user's clone)")
def test_development_set_estimates_against_the_true_parameters():
    from isp.raw import pack, read

    cases = [c for c in json.loads((DEVSET / "cases.json").read_text()) if "tree" not in c["scene"]]
    errors = []
    for c in cases[::3]:
        frame = read(DEVSET / f"{c['name']}.dng")
        planes, _ = pack(frame)
        black = float(np.mean(frame.black_level))
        floor = -black / (frame.white_level - black) + 1e-9
        est = estimate_noise(planes, masked=[frame.optical_black.left], iso=frame.metadata.iso, floor=floor)
        errors.append((est.a / c["a"] - 1, np.sqrt(est.b / c["b"]) - 1))
    errors = np.abs(np.array(errors))
    assert np.median(errors[:, 0]) < 0.25 and errors[:, 0].max() < 0.6
    assert errors[:, 1].max() < 0.25
