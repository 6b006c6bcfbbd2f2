"""Command-line programs: ``isp-denoise`` (:mod:`isp.cli.predict`) and ``isp-train`` (:mod:`isp.cli.train`).

Installed as console scripts by ``pip install .`` (``[project.scripts]`` in pyproject.toml);
``predict.py`` and ``train.py`` at the repository root are thin wrappers around the same ``main``.
Importing this package tunes the process's memory before torch loads
(:func:`isp.tune_memory`: large freed buffers kept mapped, huge pages; ``ISP_KEEP_FREED_MEMORY=0``
and ``THP_MEM_ALLOC_ENABLE=0`` opt out).
"""

from isp._memory import tune_memory

tune_memory()
