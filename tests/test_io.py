"""Atomic writes: nothing half-written, usual permissions."""

import os
import stat

import pytest

from hkmr.io import atomic_path


def test_atomic_path_renames_on_success_with_usual_permissions(tmp_path):
    target = tmp_path / "out" / "table.md"
    old = os.umask(0o022)
    try:
        with atomic_path(target) as tmp:
            assert tmp.parent == target.parent and tmp.suffix == ".md"
            tmp.write_text("done")
            assert not target.exists()
    finally:
        os.umask(old)
    assert target.read_text() == "done"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["table.md"]


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "table.md"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer crashed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.md"]
