import math
from types import SimpleNamespace

import numpy as np
import pytest

from isp.data.scalars import SCALAR_CHANNELS, SCALAR_NAMES, scalars


def test_values_match_log2_by_hand():
    s = scalars(SimpleNamespace(iso=3200, exposure_time=1 / 30), gain=100.0)
    assert s.dtype == np.float32 and s.shape == (SCALAR_CHANNELS,) == (len(SCALAR_NAMES),)
    np.testing.assert_allclose(s, [5.0, -math.log(30, 2), math.log(100, 2), 1, 1], rtol=1e-6)


def test_missing_values_give_zero_and_flag_zero():
    np.testing.assert_array_equal(scalars(SimpleNamespace(iso=None, exposure_time=2.0)), [0, 1, 0, 0, 1])
    np.testing.assert_array_equal(scalars(SimpleNamespace(iso=100, exposure_time=None)), [0, 0, 0, 1, 0])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="metadata.iso"):
        scalars(SimpleNamespace(iso=0, exposure_time=1.0))
    with pytest.raises(ValueError, match="`gain`"):
        scalars(SimpleNamespace(iso=100, exposure_time=1.0), gain=-1)
    with pytest.raises(TypeError, match="without `exposure_time`"):
        scalars(SimpleNamespace(iso=100))
