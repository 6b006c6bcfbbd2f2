"""Input discovery, output naming, atomic no-clobber writing."""

from __future__ import annotations

import os

import pytest

from isp.predict import OutputExistsError, atomic_output, discover_inputs, output_path


def _touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_discover_recurses_for_raw_extensions_any_case(tmp_path):
    for name in ["a.dng", "B.NEF", "deep/er/c.Arw", "d.txt", "e.jpg", ".hidden/f.dng", "g.cr3"]:
        _touch(tmp_path / "in" / name)
    explicit = _touch(tmp_path / "odd.bin")  # named explicitly: taken whatever its extension
    inputs = [tmp_path / "in", explicit, tmp_path / "in" / "a.dng", tmp_path / "nope"]
    files, missing = discover_inputs(inputs)
    rel = [p.relative_to(tmp_path).as_posix() for p in files]
    assert rel == ["in/B.NEF", "in/a.dng", "in/deep/er/c.Arw", "in/g.cr3", "odd.bin"]
    assert [(p.name, why) for p, why in missing] == [("nope", "no such file or folder")]


def test_output_path_uses_stem_and_format_extension(tmp_path):
    assert output_path("x/IMG_1.NEF", tmp_path, "tiff") == tmp_path / "IMG_1.tiff"
    assert output_path("x/IMG_1.NEF", tmp_path, "png") == tmp_path / "IMG_1.png"
    with pytest.raises(ValueError, match="`fmt`"):
        output_path("a.dng", tmp_path, "jpeg")


def test_atomic_output_renames_only_on_success(tmp_path):
    final = tmp_path / "sub" / "out.dng"
    with atomic_output(final) as tmp:
        assert tmp.parent == final.parent and tmp.exists() and not final.exists()
        tmp.write_bytes(b"complete")
    assert final.read_bytes() == b"complete"
    assert sorted(p.name for p in final.parent.iterdir()) == ["out.dng"]
    assert oct(final.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_atomic_output_failure_leaves_nothing(tmp_path, error):
    final = tmp_path / "out.tiff"
    with pytest.raises(type(error)), atomic_output(final) as tmp:
        tmp.write_bytes(b"half")
        raise error
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_no_clobber_and_overwrite(tmp_path):
    final = _touch(tmp_path / "out.png", b"old")
    with pytest.raises(OutputExistsError, match="--overwrite"), atomic_output(final):
        pass
    assert final.read_bytes() == b"old"
    with atomic_output(final, overwrite=True) as tmp:
        tmp.write_bytes(b"new")
    assert final.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_atomic_output_never_replaces_an_input(tmp_path):
    src = _touch(tmp_path / "shot.dng", b"input")
    link = tmp_path / "alias.dng"
    os.symlink(src, link)
    for final in (src, link):
        with pytest.raises(OutputExistsError, match="input"):
            with atomic_output(final, overwrite=True, protected=[src]):
                pass
    assert src.read_bytes() == b"input"


def test_a_file_appearing_during_the_write_is_not_replaced(tmp_path):
    final = tmp_path / "out.dng"
    with pytest.raises(OutputExistsError, match="appeared"), atomic_output(final) as tmp:
        tmp.write_bytes(b"mine")
        final.write_bytes(b"theirs")  # another process got there first
    assert final.read_bytes() == b"theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.dng"]
