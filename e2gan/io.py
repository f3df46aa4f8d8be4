"""Atomic writes: a temp file in the same folder, fsync, then rename, so a kill never leaves half a file.

``atomic_write_many`` does the same for several files at once, with their fsyncs issued together.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import socket
import sys
import tempfile
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
# Filesystems whose syncfs(2) writes back every dirty file and flushes the device, as fsync does
# for one file. Elsewhere (network and FUSE mounts, unknown types) each file is fsynced.
SYNCFS_TYPES = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "zfs", "tmpfs", "ramfs"})


def atomic_write_many(files: Iterable[tuple[str | Path, bytes]], barrier: str = "auto",
                      workers: int = FSYNC_WORKERS) -> list[Path]:
    """Write several files, each as atomically as ``atomic_write_bytes``, with one durability barrier.

    ``files``: (path, data) pairs with distinct paths. Every file goes to a temp file beside its
    name; then the temps are made durable together; then each is renamed onto its name in the
    order given, and each folder is fsynced once so the renames are durable too. ``barrier``:
    ``"auto"`` makes the temps durable with one syncfs(2) per filesystem where the filesystem is a
    local one known to implement it (``SYNCFS_TYPES``; Linux), else like ``"fsync"``: every temp
    fsynced, ``workers`` at a time. One barrier instead of one fsync per file is the point: on a
    busy disk each fsync waits for its own journal commit and device flush. (syncfs also writes
    back other processes' dirty data on that filesystem.)

    Each name is, at every moment, absent (or its old content) or complete; a kill leaves only
    temps, which ``remove_stale_temps`` clears. On an error every temp not yet renamed is removed
    and the error raised; files renamed before it are complete.
    """
    if barrier not in ("auto", "fsync"):
        raise ValueError(f"barrier {barrier!r}: 'auto' or 'fsync'")
    items = [(Path(p), data) for p, data in files]
    if len({p for p, _ in items}) != len(items):
        raise ValueError("atomic_write_many: the same path twice")
    temps: list[Path] = []
    done = 0
    try:
        for path, data in items:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = _mkstemp(path)
            temps.append(Path(tmp))
            with open(fd, "wb") as fh:
                fh.write(data)
        folders = list(dict.fromkeys(path.parent for path, _ in items))
        if barrier == "auto" and _syncfs_all(folders):
            pass
        elif len(temps) > 1 and workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=min(workers, len(temps))) as pool:
                list(pool.map(_fsync_path, temps))  # re-raises the first error once every fsync has finished
        else:
            for tmp in temps:
                _fsync_path(tmp)
        for tmp, (path, _) in zip(temps, items):
            os.replace(tmp, path)
            done += 1
        for folder in folders:
            fsync_dir(folder)
    finally:
        for tmp in temps[done:]:
            tmp.unlink(missing_ok=True)
    return [path for path, _ in items]


def _fsync_path(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _syncfs_all(folders: list[Path]) -> bool:
    """syncfs(2) each filesystem holding ``folders``; False (nothing done) unless all can be."""
    syncfs = _syncfs()
    if syncfs is None or not folders:
        return False
    devices: dict[int, Path] = {}
    for folder in folders:
        dev = os.stat(folder).st_dev
        if _fs_type(dev) not in SYNCFS_TYPES:
            return False
        devices.setdefault(dev, folder)
    for folder in devices.values():
        fd = os.open(folder, os.O_RDONLY)
        try:
            if syncfs(fd) != 0:
                import ctypes

                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err), str(folder))
        finally:
            os.close(fd)
    return True


@functools.lru_cache(maxsize=1)
def _syncfs():
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
    return fn


@functools.lru_cache(maxsize=64)
def _fs_type(dev: int) -> str | None:
    """The filesystem type of the mount whose device number is ``dev`` (/proc/self/mountinfo), or None."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                fields = line.split()
                if "-" not in fields or len(fields) < 3:
                    continue
                major, _, minor = fields[2].partition(":")
                if major.isdigit() and minor.isdigit() and os.makedev(int(major), int(minor)) == dev:
                    return fields[fields.index("-") + 1]
    except OSError:
        return None
    return None


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
