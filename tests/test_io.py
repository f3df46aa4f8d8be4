"""e2gan.io: atomic writes, one file at a time and a batch at once."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import e2gan.io as io_mod
from e2gan.io import atomic_write_many, remove_stale_temps

ROOT = Path(__file__).resolve().parents[1]


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("barrier", ["auto", "fsync"])
def test_write_many_writes_every_file_and_leaves_no_temp(tmp_path, barrier):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "old.bin").write_bytes(b"old")
    files = [(tmp_path / "a" / "old.bin", b"new"), (tmp_path / "a" / "x.bin", b"x" * 5000),
             (tmp_path / "b" / "c" / "y.bin", b"")]   # a folder made on the way, an empty file
    out = atomic_write_many(files, barrier=barrier)
    assert out == [p for p, _ in files]
    assert _files(tmp_path) == {"a/old.bin": b"new", "a/x.bin": b"x" * 5000, "b/c/y.bin": b""}
    assert atomic_write_many([]) == []


def test_write_many_makes_every_temp_durable_before_any_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace, real_dir = io_mod._fsync_path, os.replace, io_mod.fsync_dir
    monkeypatch.setattr(io_mod, "_fsync_path", lambda p: (events.append(("fsync", Path(p).name)), real_fsync(p)))
    monkeypatch.setattr(io_mod.os, "replace", lambda a, b: (events.append(("rename", Path(b).name)), real_replace(a, b)))
    monkeypatch.setattr(io_mod, "fsync_dir", lambda d: (events.append(("dir", Path(d).name)), real_dir(d)))
    files = [(tmp_path / "d" / f"{i}.png", bytes([i]) * 100) for i in range(5)]
    atomic_write_many(files, barrier="fsync", workers=3)
    kinds = [k for k, _ in events]
    assert kinds == ["fsync"] * 5 + ["rename"] * 5 + ["dir"]
    assert all(name.endswith(".tmp") for _, name in events[:5])          # the temps, not the names
    assert [n for k, n in events if k == "rename"] == [f"{i}.png" for i in range(5)]  # in the order given


def test_write_many_auto_uses_one_syncfs_where_the_filesystem_has_it(tmp_path, monkeypatch):
    calls = {"syncfs": 0, "fsync": 0}
    monkeypatch.setattr(io_mod, "_fsync_path", lambda p: calls.__setitem__("fsync", calls["fsync"] + 1))
    monkeypatch.setattr(io_mod, "_syncfs", lambda: (lambda fd: calls.__setitem__("syncfs", calls["syncfs"] + 1) or 0))
    monkeypatch.setattr(io_mod, "_fs_type", lambda dev: "ext4")
    files = [(tmp_path / "s" / f"{i}.png", b"p") for i in range(4)] + [(tmp_path / "t" / "0.png", b"q")]
    atomic_write_many(files)
    assert calls == {"syncfs": 1, "fsync": 0}   # two folders, one filesystem: one barrier
    # A filesystem not known to implement syncfs (network, FUSE): every temp is fsynced instead.
    monkeypatch.setattr(io_mod, "_fs_type", lambda dev: "fuse.sshfs")
    atomic_write_many(files)
    assert calls == {"syncfs": 1, "fsync": 5}
    assert _files(tmp_path) == {**{f"s/{i}.png": b"p" for i in range(4)}, "t/0.png": b"q"}


def test_write_many_failure_leaves_earlier_files_complete_and_no_temp(tmp_path, monkeypatch):
    real_replace, n = os.replace, {"calls": 0}

    def replace(a, b):
        n["calls"] += 1
        if n["calls"] == 3:
            raise OSError(28, "No space left on device", str(b))
        return real_replace(a, b)

    monkeypatch.setattr(io_mod.os, "replace", replace)
    files = [(tmp_path / f"{i}.bin", bytes([i]) * 10) for i in range(5)]
    with pytest.raises(OSError, match="No space"):
        atomic_write_many(files)
    assert _files(tmp_path) == {"0.bin": b"\0" * 10, "1.bin": b"\1" * 10}


def test_write_many_refuses_a_path_twice_and_unknown_barriers(tmp_path):
    with pytest.raises(ValueError):
        atomic_write_many([(tmp_path / "a", b"1"), (tmp_path / "a", b"2")])
    with pytest.raises(ValueError):
        atomic_write_many([(tmp_path / "a", b"1")], barrier="sometimes")
    assert not list(tmp_path.iterdir())


def test_write_many_killed_before_renaming_leaves_only_temps_that_are_cleared(tmp_path):
    """A process dying between the barrier and the renames (what SIGKILL can do): no real name
    exists, only temps, and remove_stale_temps (run by the next writer) removes them."""
    code = textwrap.dedent(f"""
        import os, sys
        import e2gan.io as io_mod
        io_mod.os.replace = lambda a, b: os._exit(9)
        io_mod.atomic_write_many([({str(tmp_path)!r} + f"/{{i}}.png", b"x" * 1000) for i in range(4)])
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 9
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 4 and all(n.startswith(".") and n.endswith(".tmp") for n in left)
    assert remove_stale_temps(tmp_path) == 4
    assert not list(tmp_path.iterdir())
