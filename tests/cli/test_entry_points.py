"""The console scripts of pyproject.toml run from outside the checkout, as after ``pip install .``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib (Python >= 3.11) reads pyproject.toml")
REPO = Path(__file__).resolve().parents[2]


def _scripts() -> dict[str, str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def _run_script(name: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``[project.scripts]`` entry ``name`` as pip's generated wrapper does: sys.exit(func())."""
    module, func = _scripts()[name].split(":")
    code = f"import sys; sys.argv[0] = {name!r}; from {module} import {func}; sys.exit({func}())"
    # only the package on the path (as an install puts it), not the checkout's root scripts
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_both_commands_are_declared_in_the_package():
    scripts = _scripts()
    assert scripts == {"isp-denoise": "isp.cli.predict:main", "isp-train": "isp.cli.train:run"}


def test_isp_denoise_denoises_from_another_directory_with_the_shipped_model(sample_root, tmp_path):
    src = sorted((sample_root / "test" / "noisy").glob("*.dng"))[0]
    work = tmp_path / "elsewhere"
    work.mkdir()
    run = _run_script("isp-denoise", [str(src), "--out-dir", "out"], cwd=work)
    assert run.returncode == 0, run.stderr
    assert (work / "out" / f"{src.stem}.dng").is_file()
    assert "Traceback" not in run.stderr


def test_isp_denoise_help_names_the_command(tmp_path):
    run = _run_script("isp-denoise", ["--help"], cwd=tmp_path)
    assert run.returncode == 0 and run.stdout.startswith("usage: isp-denoise"), run.stderr


@pytest.mark.parametrize("subcommand", ["fit"])
def test_isp_train_help_runs_from_another_directory(tmp_path, subcommand):
    run = _run_script("isp-train", [subcommand, "--help"], cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "--model.net" in run.stdout and "--checkpoint.dirpath" in run.stdout


def test_root_scripts_are_thin_wrappers():
    for name in ("predict.py", "train.py"):
        text = (REPO / name).read_text()
        assert len(text.splitlines()) < 15 and "from isp.cli." in text, name
