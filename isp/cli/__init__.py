"""Command-line programs: ``isp-denoise`` (:mod:`isp.cli.predict`) and ``isp-train`` (:mod:`isp.cli.train`).

Installed as console scripts by ``pip install .`` (``[project.scripts]`` in pyproject.toml);
``predict.py`` and ``train.py`` at the repository root are thin wrappers around the same ``main``.

Importing this package asks PyTorch for transparent huge pages on its large CPU buffers
(``THP_MEM_ALLOC_ENABLE=1``, unless the variable is already set: ``THP_MEM_ALLOC_ENABLE=0``
opts out). PyTorch reads the variable once, at its first allocation, so it is set only in a
process that has not imported torch yet: the programs here, and the DataLoader workers and child
processes they start (which inherit them). On 4 KB pages a convolution's fresh output buffer
faults in page by page on every call (a 32 -> 32 3x3 conv at 8 x 128²: 11,400 minor page faults
a call, 1,600 on huge pages) and its time swings by up to 2x with where the buffers land
(18-40 ms; on huge pages 22-24 ms). The few-channel first layer runs twice as fast, and a 24-MP
photo 0-11% faster end to end (docs/benchmarks.md, "Huge pages").
"""

import os
import sys

if "torch" not in sys.modules:  # later it would change nothing, and only mislead
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
