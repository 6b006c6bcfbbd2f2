import doctest
import importlib

import pytest

MODULES = ["color", "dng", "errors", "frame", "levels", "pack", "read", "vectors"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"isp.raw.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
