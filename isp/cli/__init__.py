"""Command-line programs: ``isp-denoise`` (:mod:`isp.cli.predict`) and ``isp-train`` (:mod:`isp.cli.train`).

Installed as console scripts by ``pip install .`` (``[project.scripts]`` in pyproject.toml);
``predict.py`` and ``train.py`` at the repository root are thin wrappers around the same ``main``.
"""
