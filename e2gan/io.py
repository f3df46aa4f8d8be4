"""Atomic writes: a temp file in the same folder, fsync, then rename, so a kill never leaves half a file.

``atomic_write_many`` does the same for several files at once, with their fsyncs issued together.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable


_OWNER = f"{socket.gethostname().replace('.', '-')}-{os.getpid()}"


def remove_stale_temps(folder: str | Path) -> int:
    """Delete temp files under ``folder`` left by a killed writer on this host (its process is gone).

    Temp files of live processes and of other hosts (a shared disk) are left alone.
    """
    host, removed = socket.gethostname().replace(".", "-"), 0
    for p in Path(folder).rglob(".*.tmp"):
        owner = p.name[:-len(".tmp")].rsplit(".", 2)
        if len(owner) != 3 or not owner[1].startswith(host + "-"):
            continue
        pid = owner[1][len(host) + 1:]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        p.unlink(missing_ok=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temp file onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _mkstemp(path)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path


def _mkstemp(path: Path) -> tuple[int, str]:
    """A temp file beside ``path`` named ``.<name>.<host>-<pid>.<random>.tmp`` (see remove_stale_temps)."""
    return tempfile.mkstemp(prefix=f".{path.name}.{_OWNER}.", suffix=".tmp", dir=path.parent)


FSYNC_WORKERS = 16


def atomic_write_many(files: Iterable[tuple[str | Path, bytes]], workers: int = FSYNC_WORKERS) -> list[Path]:
    """Write several files, each as atomically as ``atomic_write_bytes``, fsyncing them together.

    ``files``: (path, data) pairs with distinct paths. Every file goes to a temp file beside its
    name; the temps are written and fsynced concurrently (``workers`` threads: the filesystem
    folds concurrent fsyncs into one journal commit, where one after another each waits for its
    own), then renamed onto their names in the order given, then each folder is fsynced once so
    the renames are durable too. Each name is, at every moment, absent (or its old content) or
    complete; a kill leaves only temps, which ``remove_stale_temps`` clears. On an error every temp
    not yet renamed is removed and the error raised; the files renamed before it are complete.
    """
    items = [(Path(p), data) for p, data in files]
    if len({p for p, _ in items}) != len(items):
        raise ValueError("atomic_write_many: the same path twice")
    temps: list[Path] = []
    done = 0
    try:
        for path, _ in items:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = _mkstemp(path)
            os.close(fd)
            temps.append(Path(tmp))

        def write(job: tuple[Path, bytes]) -> None:
            tmp, data = job
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())

        jobs = [(t, data) for t, (_, data) in zip(temps, items)]
        if len(jobs) > 1 and workers > 1:
            with ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
                list(pool.map(write, jobs))  # re-raises the first error once every write has finished
        else:
            for job in jobs:
                write(job)
        for tmp, (path, _) in zip(temps, items):
            os.replace(tmp, path)
            done += 1
        for folder in dict.fromkeys(path.parent for path, _ in items):
            fsync_dir(folder)
    finally:
        for tmp in temps[done:]:
            tmp.unlink(missing_ok=True)
    return [path for path, _ in items]


def fsync_dir(folder: str | Path) -> None:
    """Make a folder's entries (renames, new files) durable; a no-op where folders cannot be opened."""
    flags = getattr(os, "O_DIRECTORY", None)
    if flags is None:
        return
    fd = os.open(folder, os.O_RDONLY | flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
