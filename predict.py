"""Denoise camera raw files: ``python predict.py INPUT ... --out-dir DIR`` (same as ``isp-denoise``).

A thin wrapper: the program is :mod:`isp.cli.predict` (``python predict.py --help`` for options).
"""

import sys

from isp.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
