"""predict.py never loses anything: no-clobber, interruption, output folders, input discovery."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from isp.cli import predict

ROOT = Path(__file__).resolve().parents[2]


def _run(args, capfd=None):
    code = predict.main([str(a) for a in args])
    err = capfd.readouterr().err if capfd is not None else ""
    return code, err


def _child(args, *, limit):
    def limit_size():
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "predict.py"), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=limit_size,
        cwd=ROOT,
        timeout=120,
    )


def test_interrupted_write_leaves_no_final_file(tiny_ckpt, inputs, tmp_path):
    # RLIMIT_FSIZE makes the kernel cut the child's writes short (Python ignores SIGXFSZ, so the
    # write fails instead of killing the process): a real failure in the middle of the writer
    src = sorted(inputs.glob("*.dng"))[0]
    args = ["--ckpt", tiny_ckpt]
    for name, limit, reason in (("half", src.stat().st_size // 2, "written"), ("none", 0, "File too large")):
        run = _child([src, "--out-dir", tmp_path / name, *args], limit=limit)
        assert run.returncode == 1 and src.name in run.stderr and reason in run.stderr, run.stderr
        assert list((tmp_path / name).iterdir()) == []  # no final file and no temporary


def test_keyboard_interrupt_during_denoising_leaves_nothing(tiny_ckpt, inputs, tmp_path, monkeypatch, capfd):
    import isp.predict

    def interrupt(done, total):
        raise KeyboardInterrupt

    real = isp.predict.denoise_file
    monkeypatch.setattr(predict, "denoise_file", lambda *a, **k: real(*a, **{**k, "progress": interrupt}))
    src = sorted(inputs.glob("*.dng"))[0]
    code, err = _run([src, "--out-dir", tmp_path / "out", "--ckpt", tiny_ckpt], capfd)
    assert code == 130 and "interrupted" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if "interrupted" in line]) == 1
    assert list((tmp_path / "out").iterdir()) == []


def test_out_dir_that_is_a_file_fails_before_the_network(tiny_ckpt, inputs, tmp_path, capfd):
    target = tmp_path / "taken"
    target.write_text("a file")
    code, err = _run([inputs, "--out-dir", target, "--ckpt", tmp_path / "absent.pt"], capfd)
    # exit 2 on the folder, before the (missing) checkpoint is even opened and before any input
    assert code == 2 and "is a file, not a folder" in err
    assert "absent.pt" not in err and "all files" not in err
    assert target.read_text() == "a file"


def _unprivileged(cmd):
    """``cmd`` run without root's power to ignore file permissions (setpriv drops the capabilities)."""
    if os.geteuid() != 0:
        return cmd
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: root reads and writes any folder")
    return ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--", *cmd]


def test_read_only_out_dir_fails_before_the_network(tiny_ckpt, inputs, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    src = sorted(inputs.glob("*.dng"))[0]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "predict.py"), str(src), "--out-dir", str(ro), "--ckpt", str(tiny_ckpt)]
    run = subprocess.run(_unprivileged(cmd), capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "is not writable: Permission denied" in " ".join(run.stderr.split())
    assert "all files" not in run.stderr and list(ro.iterdir()) == []


def test_a_failed_write_names_the_output_and_the_cause(tiny_ckpt, inputs, tmp_path):
    src = sorted(inputs.glob("*.dng"))[0]
    for name, limit, cause in (("none", 0, "File too large"), ("half", src.stat().st_size // 2, "written")):
        run = _child([src, "--out-dir", tmp_path / name, "--ckpt", tiny_ckpt], limit=limit)
        flat = " ".join(run.stderr.split())
        out = tmp_path / name / f"{src.stem}.dng"
        assert run.returncode == 1 and f"cannot write the output {str(out)!r}: " in flat, flat
        assert cause in flat.split(f"{str(out)!r}: ", 1)[1] and "Errno None" not in flat, flat


# -- signals: one line, 130/143, no temporary files; stale ones of ours removed later (item 7) -------


@pytest.mark.parametrize(("signal_error", "code"), [(predict.Terminated, 143), (KeyboardInterrupt, 130)])
def test_a_signal_before_the_writer_cleans_up_leaves_no_temporary(
    monkeypatch, inputs, tmp_path, capfd, signal_error, code
):
    # the signal lands after atomic_output created its file and before its cleanup is armed
    out = tmp_path / "out"
    out.mkdir()
    other = out / "notes.tmp"  # not ours: kept
    other.write_text("x")

    def interrupted_run(parser, args, console):
        import tempfile

        os.close(tempfile.mkstemp(prefix=f".f01.dng.isp-{os.getpid()}-", suffix=".tmp", dir=out)[0])
        raise signal_error

    monkeypatch.setattr(predict, "_run", interrupted_run)
    src = sorted(inputs.glob("*.dng"))[0]
    assert _run([src, "--out-dir", out], capfd)[0] == code
    assert sorted(p.name for p in out.iterdir()) == ["notes.tmp"]


def test_sigterm_exits_143_with_one_line_and_no_temporaries(tiny_ckpt, inputs, tmp_path):
    many = tmp_path / "many"
    many.mkdir()
    src = sorted(inputs.glob("*.dng"))[0]
    for i in range(40):
        shutil.copy(src, many / f"f{i:02d}.dng")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "predict.py"),
            str(many),
            "--out-dir",
            str(out),
            "--ckpt",
            str(tiny_ckpt),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 120
    while not (out.is_dir() and any(p.suffix == ".dng" for p in out.iterdir())):
        assert proc.poll() is None and time.monotonic() < deadline, "predict.py ended before the signal"
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 143, err
    assert "Traceback" not in err and len([ln for ln in err.splitlines() if "terminated" in ln]) == 1, err
    names = [p.name for p in out.iterdir()]
    assert names and all(n.endswith(".dng") and not n.startswith(".") for n in names), names
    assert len(names) < 40


def test_a_later_run_removes_stale_temporaries_of_its_own_naming(tiny_ckpt, inputs, tmp_path, capfd):
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()  # a process id that no longer runs
    stale = out / f".a.dng.isp-{dead}-k3j4.tmp"
    inner = out / f"..a.dng.isp-{dead}-k3j4.tmp.x9y8.tmp"  # write_dng's own temporary inside ours
    live = out / f".b.dng.isp-{os.getppid()}-abcd.tmp"  # a running process: another run's file
    other = out / ".someone-elses.tmp"
    for p in (stale, inner, live, other):
        p.write_bytes(b"x" * 100)
    src = sorted(inputs.glob("*.dng"))[0]
    code, err = _run([src, "--out-dir", out, "--ckpt", tiny_ckpt], capfd)
    assert code == 0, err
    assert not stale.exists() and not inner.exists() and live.exists() and other.exists()
    assert stale.name in err and "interrupted run" in err


# -- folders: nothing skipped silently; every LibRaw extension (item 5) -----------------------------


def test_folder_mode_finds_libraw_extensions_and_reports_loops(tmp_path):
    from isp.predict import discover_inputs

    d = tmp_path / "shots"
    (d / "sub").mkdir(parents=True)
    for name in ("a.QTK", "b.crw", "c.KDC", "sub/d.dng", "notes.txt"):
        (d / name).write_bytes(b"")
    (d / "sub" / "back").symlink_to(d)  # a folder loop
    (d / "self.dng").symlink_to(d / "self.dng")  # a link loop
    (d / "gone.nef").symlink_to(d / "nothing")  # a broken link
    files, problems = discover_inputs([d])
    assert [f.relative_to(d).as_posix() for f in files] == ["a.QTK", "b.crw", "c.KDC", "sub/d.dng"]
    reasons = {p.relative_to(d).as_posix(): r for p, r in problems}
    assert "loop" in reasons["sub/back"] and "loop" in reasons["self.dng"]
    assert reasons["gone.nef"] == "a broken symbolic link"


CHILD_WALK = """
import json, sys
sys.path.insert(0, sys.argv[2])
from isp.predict import discover_inputs
files, problems = discover_inputs([sys.argv[1]])
print(json.dumps([[str(f) for f in files], [[str(p), r] for p, r in problems]]))
"""


def test_an_unreadable_subfolder_is_reported_not_skipped(tmp_path):
    top = tmp_path / "top"
    for name in ("ok/a.dng", "locked/b.dng"):
        (top / name).parent.mkdir(parents=True, exist_ok=True)
        (top / name).write_bytes(b"")
    (top / "locked").chmod(0o000)
    try:
        cmd = [sys.executable, "-c", CHILD_WALK, str(top), str(ROOT)]
        run = subprocess.run(_unprivileged(cmd), capture_output=True, text=True, timeout=60)
    finally:
        (top / "locked").chmod(0o755)
    files, problems = json.loads(run.stdout)
    assert files == [str(top / "ok" / "a.dng")]
    reason = "folder cannot be read: Permission denied; its files were not searched"
    assert problems == [[str(top / "locked"), reason]]


def test_an_unreadable_subfolder_makes_the_run_fail(tiny_ckpt, inputs, tmp_path, capfd):
    d = tmp_path / "in"
    d.mkdir()
    (d / "loop").symlink_to(d)
    shutil.copy(sorted(inputs.glob("*.dng"))[0], d / "a.dng")
    code, err = _run([d, "--out-dir", tmp_path / "out", "--ckpt", tiny_ckpt], capfd)
    assert code == 1 and "loop" in err and (tmp_path / "out" / "a.dng").is_file()


# -- absurd EXIF: left out of the network's input with a warning, never worse than the input (6) -----
