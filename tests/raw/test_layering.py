"""isp.raw stays numpy-only (its docstring examples run with the rest: pytest --doctest-modules)."""


def test_isp_raw_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, isp.raw; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
