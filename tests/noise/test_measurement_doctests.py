"""The docstring examples of the noise-measurement and input-contract modules run and hold."""

import doctest
import importlib

import pytest

MODULES = ["isp.noise.estimate", "isp.noise.banding", "isp.noise.camera", "isp.data.unprocess",
           "isp.data.inputs"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
