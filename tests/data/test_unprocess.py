import numpy as np
import pytest

from isp.data.unprocess import CameraPipeline, process, random_pipeline, srgb_to_linear, unprocess


@pytest.mark.parametrize("seed", range(5))
def test_process_inverts_unprocess(seed):
    rng = np.random.default_rng(seed)
    pipeline = random_pipeline(rng)
    srgb = rng.uniform(0.05, 0.95, (16, 24, 3))
    cam = unprocess(srgb, pipeline)
    back = process(cam, pipeline)
    inside = (cam * pipeline.wb @ pipeline.cam_to_srgb.T).min(axis=-1) >= 0  # no clipped colour
    assert inside.mean() > 0.3
    np.testing.assert_allclose(back[inside], srgb[inside], atol=1e-6)


def test_random_pipelines_look_like_cameras():
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = random_pipeline(rng)
        np.testing.assert_allclose(p.cam_to_srgb.sum(axis=1), 1.0, atol=1e-12)  # white stays white
        assert (np.diag(p.cam_to_srgb) > 1).all() and (p.cam_to_srgb[~np.eye(3, dtype=bool)] < 0).all()
        assert 1.9 <= p.wb[0] <= 2.4 and p.wb[1] == 1 and 1.5 <= p.wb[2] <= 1.9


def test_unprocessed_grey_is_green_heavy_like_a_sensor():
    p = CameraPipeline(np.eye(3), np.array([2.0, 1.0, 1.6]))
    cam = unprocess(np.full((1, 1, 3), 0.5), p)[0, 0]
    assert cam[1] == pytest.approx(2 * cam[0]) and cam[1] == pytest.approx(1.6 * cam[2])
    assert cam[1] == pytest.approx(float(srgb_to_linear(np.array(0.5))), rel=1e-9)  # smoothstep(0.5)=0.5


def test_refuses_images_without_three_channels():
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        unprocess(np.zeros((4, 4)), random_pipeline(np.random.default_rng(0)))
