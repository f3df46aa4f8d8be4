"""The distilled folder's format: ``manifest.jsonl`` and its shard files, read, checked and appended.

Layout of a distilled folder::

    teacher.json                    the teacher's description, written once
    sources/<source_id>.png         the unedited source images
    targets/<concept>/<source_id>.png
    manifest.jsonl                  one JSON object per pair

Manifest fields: concept, instruction, role, kind, source_id, split, source and target (paths
relative to the folder), source_sha256, target_sha256, size ([w, h]), seed and teacher (the
sha256 of ``teacher.json``'s description as canonical JSON: sorted keys, no spaces), plus
``teacher_settings`` for a concept that has any. The last line for a pair wins; a torn last line
(a kill mid-append) is ignored when read and dropped before the next append.

Shard runs write ``manifest.shard-<i>-of-<n>.jsonl`` (and ``distill_cost.shard-<i>-of-<n>.json``)
instead; ``e2gan.data.shards.merge_shards`` folds them into ``manifest.jsonl``.
"""
from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from e2gan.errors import InputError
from e2gan.io import atomic_write_bytes, sha256_bytes, sha256_file

MANIFEST = "manifest.jsonl"
TEACHER_FILE = "teacher.json"
SHARD_FILE_RE = re.compile(r"^(manifest|distill_cost)\.shard-(\d+)-of-(\d+)\.(jsonl|json)$")
RECORD_KEYS = ("concept", "instruction", "role", "kind", "source_id", "split", "source", "target",
               "source_sha256", "target_sha256", "size", "seed", "teacher")


def teacher_hash(description: dict) -> str:
    return sha256_bytes(json.dumps(description, sort_keys=True, separators=(",", ":"), default=str).encode())


def shard_file(kind: str, shard: tuple[int, int]) -> str:
    """``manifest.shard-<i>-of-<n>.jsonl`` or ``distill_cost.shard-<i>-of-<n>.json``."""
    return f"{kind}.shard-{shard[0]}-of-{shard[1]}.{'jsonl' if kind == 'manifest' else 'json'}"


def shard_files(out: Path, kind: str) -> list[Path]:
    """The folder's shard files of ``kind`` ("manifest" or "distill_cost"), sorted by name."""
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir() if (m := SHARD_FILE_RE.match(p.name)) and m.group(1) == kind)


def repair_manifest(path: Path) -> None:
    """Drop a torn last line (or add the missing newline to a complete one) before appending."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    try:
        json.loads(data[cut:])
        fixed = data + b"\n"
    except ValueError:
        fixed = data[:cut]
    atomic_write_bytes(path, fixed)


def append_lines(path: Path, records: list[dict]) -> None:
    """Whole lines, one write and one fsync per batch (fsync per line costs more than the edits)."""
    data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode()
    with open(path, "ab") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def manifest_text(records) -> str:
    """One sorted-key JSON line per record: what a rewritten manifest holds."""
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)


def parse_manifest(path: Path) -> dict[tuple[str, str], dict]:
    """(concept, source_id) -> the last record for that pair in one manifest file."""
    records: dict[tuple[str, str], dict] = {}
    lines = path.read_bytes().split(b"\n")
    for i, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
            key = (rec["concept"], rec["source_id"])
        except (ValueError, KeyError, TypeError):
            if i == len(lines):  # torn last line from a killed run: the pair will be redone
                continue
            raise InputError(f"{path}:{i}", "manifest", "one JSON object per line with concept and source_id") from None
        records[key] = rec  # the last line for a pair wins; order of first appearance is kept
    return records


def read_manifest(out_dir: str | Path) -> list[dict]:
    """All pair records of a distilled folder (one per pair; a torn last line is ignored)."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        if shard_files(Path(out_dir), "manifest"):
            raise InputError(str(path), "distilled data",
                             "a manifest.jsonl; this folder holds only shard manifests: once every shard "
                             "has finished, run distillation without a shard (or merge_shards) to combine them")
        raise InputError(str(path), "distilled data", "a manifest.jsonl written by distillation")
    return list(parse_manifest(path).values())


def verify_manifest(out_dir: str | Path, check_hashes: bool = True) -> list[dict]:
    """read_manifest, then check every listed file exists, lies inside the folder (symlinks
    followed) and, with ``check_hashes``, matches its sha256.

    Hashes are remembered per process with the file's stat (device, inode, size, mtime_ns,
    ctime_ns): a file whose stat is unchanged since it was hashed is not read again, any change
    re-hashes it. So every split a process opens over one folder is checked, for a stat per file.
    """
    root = Path(out_dir).resolve()
    records = _read_manifest_memo(root)
    prefix = str(root) + os.sep
    parents: dict[str, str] = {}  # this call's resolved parent folders (a folder may become a link)
    known: dict[str, str] = {}
    for rec in records:
        missing = [k for k in RECORD_KEYS if k not in rec]
        if missing:
            raise InputError(str(root / MANIFEST), "manifest",
                             f"records with {', '.join(RECORD_KEYS)}; a record lacks {', '.join(missing)}")
        for field in ("source", "target"):
            path, st = _resolve_file(root, str(rec[field]), parents)
            if not path.startswith(prefix):
                raise InputError(str(rec[field]), f"{root / MANIFEST}", "paths inside the data folder")
            if st is None or not stat.S_ISREG(st.st_mode):
                raise InputError(path, "distilled data",
                                 "an existing file listed in manifest.jsonl (re-run distillation to resume)")
            if check_hashes:
                if path not in known:
                    known[path] = _sha256_memo(path, st)
                if known[path] != rec[f"{field}_sha256"]:
                    raise InputError(path, "distilled data",
                                     "the sha256 recorded in manifest.jsonl (file changed; re-run distillation)")
    return records


_HASHES: dict[str, tuple[tuple, str]] = {}           # file -> (its stat key when hashed, sha256)
_MANIFESTS: dict[str, tuple[tuple, list[dict]]] = {}  # manifest.jsonl -> (stat key when read, records)


def _stat_key(st: os.stat_result) -> tuple:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _sha256_memo(path: str, st: os.stat_result) -> str:
    key = _stat_key(st)
    hit = _HASHES.get(path)
    if hit is not None and hit[0] == key:
        return hit[1]
    digest = sha256_file(path)
    _HASHES[path] = (key, digest)
    return digest


def _read_manifest_memo(root: Path) -> list[dict]:
    """read_manifest(root), parsed again only when manifest.jsonl's stat changed; fresh dicts each call."""
    path = root / MANIFEST
    try:
        key = _stat_key(path.stat())
    except OSError:
        return read_manifest(root)  # missing: read_manifest says what is wrong
    hit = _MANIFESTS.get(str(path))
    if hit is None or hit[0] != key:
        hit = (key, read_manifest(root))
        _MANIFESTS[str(path)] = hit
    return [dict(r) for r in hit[1]]  # callers may edit what they get


def _resolve_file(root: Path, rel: str, parents: dict[str, str]) -> tuple[str, os.stat_result | None]:
    """(real path, its stat or None) of ``root/rel``, as ``Path.resolve`` gives it, for one lstat
    per file: the file's folder is resolved once per call, the file itself only if it is a link."""
    joined = os.path.join(str(root), rel)
    folder, name = os.path.split(joined)
    try:
        lst = os.lstat(joined)
    except OSError:
        lst = None
    if lst is None or stat.S_ISLNK(lst.st_mode) or name in ("", ".", ".."):
        real = os.path.realpath(joined)
        try:
            return real, os.stat(real)
        except OSError:
            return real, None
    if folder not in parents:
        parents[folder] = os.path.realpath(folder)
    return os.path.join(parents[folder], name), lst


def manifest_files(out: Path, shard: tuple[int, int] | None) -> list[Path]:
    """Manifest files to read, oldest first (a later line for a pair wins): the main one and this
    shard's, or with no shard the main one and every shard's."""
    files = [out / MANIFEST] if (out / MANIFEST).is_file() else []
    if shard:
        mine = out / shard_file("manifest", shard)
        files += [mine] if mine.is_file() else []
    else:
        files += shard_files(out, "manifest")
    return sorted(files, key=lambda f: (f.stat().st_mtime_ns, f.name != MANIFEST))


def read_records(files: list[Path]) -> tuple[dict[tuple[str, str], dict], dict[tuple[str, str], Path]]:
    """The latest record per pair over ``files`` (oldest first) and the file it came from.

    Order: the pairs of ``manifest.jsonl`` as they appear there, then pairs known only from shard
    files sorted by (concept, source id), so a merge's order does not depend on shard timing.
    """
    latest: dict[tuple[str, str], dict] = {}
    origin: dict[tuple[str, str], Path] = {}
    order: list[tuple[str, str]] = []
    for f in files:
        for key, rec in parse_manifest(f).items():
            latest[key] = rec
            origin[key] = f
            if f.name == MANIFEST:
                order.append(key)
    rest = sorted(set(latest) - set(order))
    return {k: latest[k] for k in [*order, *rest]}, origin


def instructions_in_manifest(root, concepts: set[str] | None = None) -> dict[str, str]:
    """concept -> the instruction its pairs were distilled with, read from ``root``'s manifest.jsonl
    (empty when there is none; unreadable lines are skipped: this only labels outputs)."""
    out: dict[str, str] = {}
    path = Path(root) / MANIFEST
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        c, text = rec.get("concept"), rec.get("instruction")
        if isinstance(c, str) and isinstance(text, str) and (concepts is None or c in concepts):
            out.setdefault(c, text)
    return out
