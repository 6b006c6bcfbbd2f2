import doctest
import importlib

import pytest

MODULES = ["color", "dng", "errors", "frame", "levels", "pack", "read", "vectors"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"isp.raw.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_isp_raw_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, isp.raw; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
