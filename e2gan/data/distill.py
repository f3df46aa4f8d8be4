"""Distillation: sources × concepts → teacher-edited pairs on disk plus ``manifest.jsonl``.

Layout of ``out_dir``::

    teacher.json                    teacher.describe(), written once
    sources/<source_id>.png         the unedited source images
    targets/<concept>/<source_id>.png
    manifest.jsonl                  one JSON object per pair

Manifest fields: concept, instruction, role, kind, source_id, split, source and target (paths
relative to ``out_dir``), source_sha256, target_sha256, size ([w, h]), seed and teacher. The
teacher's full description lives once in ``teacher.json``; each line carries ``teacher``, the
sha256 of that description as canonical JSON (sorted keys, no spaces). Re-running into a folder
made by a differently configured teacher is refused rather than mixing two teachers' targets.

``seed`` per pair is derived from (run seed, concept, source id), so a pair's target does not
depend on which other pairs are in the run or in what order they are made.

Resuming: a pair is done when its target exists, its manifest line matches (target hash,
instruction, seed, source hash, teacher) — anything else is redone. Images are written
atomically before their manifest lines: a batch's PNGs go to temp files, are fsynced together
and renamed onto their names (``e2gan.io.atomic_write_many``; sources likewise, in chunks of
``SOURCE_CHUNK``); then the batch's lines are appended with one write + fsync, and a torn last
line (a kill mid-append) is dropped on the next run. At the end the manifest is rewritten
atomically with one line per pair.

Greyscale sources: pairs where the edit cannot change a grey image are skipped (and counted).
The teacher decides through ``affects(image, instruction)`` when it has one; otherwise
concepts of kind ``colour`` are skipped on greyscale sources.

Per-concept teacher settings (``Concept.teacher_settings``, e.g. guidance for one concept) go to
``teacher.edit(..., settings=...)`` and are recorded as ``teacher_settings`` on the pair (only
when a concept has any); changing them redoes that concept's pairs.

Shards: ``shard=(i, n)`` edits only the pairs with ``shard_of(concept, source_id, n) == i``: the
n shards partition the work exactly and disjointly, and a pair keeps its shard when sources or
concepts are added. Shards may run at once into one folder (shared disk) or into copies of it:
each appends to its own ``manifest.shard-<i>-of-<n>.jsonl`` and ``distill_cost.shard-<i>-of-<n>.json``
and never writes ``manifest.jsonl``. A run without a shard (``distill`` again, which finds all
work done, or ``merge_shards`` without a teacher) folds the shard files into ``manifest.jsonl`` and
``distill_cost.json`` and removes them; run it after every shard has finished.

Cost: ``distill_cost.json`` accumulates the teacher's device-seconds (wall time inside
``teacher.edit``, one device per process) and images per concept over every run and shard,
separately from any training cost; each run adds an entry to its ``runs`` list.
"""
from __future__ import annotations

import hashlib
import inspect
import io
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image
from tqdm import tqdm

from e2gan.errors import InputError
from e2gan.io import (atomic_write_bytes, atomic_write_json, atomic_write_many, atomic_write_text,
                      remove_stale_temps, sha256_bytes, sha256_file)
from e2gan.sources import SourceImage, is_greyscale
from e2gan.teachers.base import Concept, Teacher, check_concept_name

MANIFEST = "manifest.jsonl"
TEACHER_FILE = "teacher.json"
COST_FILE = "distill_cost.json"
SHARD_FILE_RE = re.compile(r"^(manifest|distill_cost)\.shard-(\d+)-of-(\d+)\.(jsonl|json)$")
COST_FLUSH_SECONDS = 60.0
RECORD_KEYS = ("concept", "instruction", "role", "kind", "source_id", "split", "source", "target",
               "source_sha256", "target_sha256", "size", "seed", "teacher")
SOURCE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SOURCE_CHUNK = 64   # sources encoded, then written and fsynced together, this many at a time
# How images reach the disk, all atomic per file (temp, durable, rename): "pipelined" (as
# "batched", but in a background thread while the teacher edits the next batch), "batched" (a
# batch's temps made durable by one barrier, atomic_write_many's "auto"), "batched-fsync" (the
# batch's temps fsynced concurrently) or "per-file" (temp + fsync + rename for each PNG in turn,
# the path before batching). "auto": pipelined for a teacher on an accelerator (the CPU idles
# while it edits), batched for a CPU teacher (a writer thread would compete with it for the
# cores; measured slower in the benchmarks). The benchmarks time every mode side by side.
WRITE_MODES = ("auto", "pipelined", "batched", "batched-fsync", "per-file")
WRITE_MODE = "auto"


def resolve_write_mode(mode: str, device: str) -> str:
    """The write mode ``mode`` means for a teacher running on ``device`` ("auto" picks)."""
    if mode not in WRITE_MODES:
        raise ValueError(f"e2gan.distill.WRITE_MODE {mode!r}: one of {WRITE_MODES}")
    if mode != "auto":
        return mode
    return "batched" if device.split(":")[0].strip().lower() in ("cpu", "") else "pipelined"


def pair_seed(seed: int, concept: str, source_id: str) -> int:
    digest = hashlib.sha256(f"{seed}:{concept}:{source_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def shard_of(concept: str, source_id: str, n: int) -> int:
    """The shard (0..n-1) that owns a pair: a hash of the pair, so it never moves when others are added."""
    digest = hashlib.sha256(f"shard:{concept}:{source_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` (0-based: ``0/4`` .. ``3/4``) -> (i, n)."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m or not int(m.group(2)) >= 1 or not int(m.group(1)) < int(m.group(2)):
        raise InputError(f"shard {text!r}", "distillation", "i/n with 0 <= i < n, e.g. 0/4 .. 3/4")
    return int(m.group(1)), int(m.group(2))


def _check_shard(shard) -> tuple[int, int] | None:
    if shard is None:
        return None
    if isinstance(shard, str):
        shard = parse_shard(shard)
    ok = (isinstance(shard, (tuple, list)) and len(shard) == 2
          and all(isinstance(x, int) and not isinstance(x, bool) for x in shard)
          and shard[1] >= 1 and 0 <= shard[0] < shard[1])
    if not ok:
        raise InputError(f"shard {shard!r}", "distillation", "(i, n) with 0 <= i < n")
    return None if shard[1] == 1 else (shard[0], shard[1])


def shard_file(kind: str, shard: tuple[int, int]) -> str:
    """``manifest.shard-<i>-of-<n>.jsonl`` or ``distill_cost.shard-<i>-of-<n>.json``."""
    return f"{kind}.shard-{shard[0]}-of-{shard[1]}.{'jsonl' if kind == 'manifest' else 'json'}"


def _shard_files(out: Path, kind: str) -> list[Path]:
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir() if (m := SHARD_FILE_RE.match(p.name)) and m.group(1) == kind)


def teacher_hash(description: dict) -> str:
    return sha256_bytes(json.dumps(description, sort_keys=True, separators=(",", ":"), default=str).encode())


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _validate(sources: list[SourceImage], concepts: list[Concept], batch_size: int) -> None:
    if not sources:
        raise InputError("sources", "distillation", "at least one source image")
    if not concepts:
        raise InputError("concepts", "distillation", "at least one concept")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise InputError(f"batch_size {batch_size!r}", "distillation", "a positive integer")
    seen: set[str] = set()
    for s in sources:
        if not SOURCE_ID_RE.match(s.id):
            raise InputError(f"source id {s.id!r}", "distillation",
                             "letters, digits, '.', '-', '_' (it is used as a file name)")
        if s.id in seen:
            raise InputError(f"source id {s.id!r}", "distillation", "unique source ids")
        seen.add(s.id)
    names = [check_concept_name(c.name, "distillation") for c in concepts]
    if len(set(names)) != len(names):
        raise InputError("concepts", "distillation", "unique concept names")


def _check_teacher_file(out: Path, description: dict) -> str:
    digest = teacher_hash(description)
    path = out / TEACHER_FILE
    if path.exists():
        try:
            old = json.loads(path.read_text("utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise InputError(str(path), "distillation", f"a readable teacher.json ({e})") from None
        if teacher_hash(old) != digest:
            old_name = old.get("name") if isinstance(old, dict) else None
            raise InputError(str(out), "distillation output folder",
                             f"a folder made by the same teacher; its {TEACHER_FILE} describes another "
                             f"({old_name!r} {teacher_hash(old)[:12]}, now {description.get('name')!r} "
                             f"{digest[:12]}): use a new folder")
    else:
        atomic_write_json(path, description)
    return digest


def _source_png(out: Path, src: SourceImage) -> tuple[str, bytes | None]:
    """(sha256 of sources/<id>.png, the PNG to write or None when an identical image is already there)."""
    path = out / "sources" / f"{src.id}.png"
    data = _png_bytes(src.image.convert("RGB"))
    digest = sha256_bytes(data)
    if path.exists():
        existing = sha256_file(path)
        if existing == digest:
            return digest, None
        with Image.open(path) as old:  # same pixels, other encoder settings: keep the file
            same = np.array_equal(np.asarray(old.convert("RGB")), np.asarray(src.image.convert("RGB")))
        if same:
            return existing, None
        raise InputError(str(path), "distillation output folder",
                         f"the same image for source {src.id!r}; this folder was made from other "
                         "sources or at another resolution: use a new folder")
    return digest, data


def _write_source(out: Path, src: SourceImage) -> str:
    """Write sources/<id>.png unless an identical image is already there; return its sha256."""
    digest, data = _source_png(out, src)
    if data is not None:
        atomic_write_bytes(out / "sources" / f"{src.id}.png", data)
    return digest


def _write_sources(out: Path, sources: list[SourceImage]) -> dict[str, str]:
    """Every source's sha256, writing the missing ones (``WRITE_MODE``: fsynced per chunk or per file)."""
    if WRITE_MODE == "per-file":
        return {s.id: _write_source(out, s) for s in sources}
    digests: dict[str, str] = {}
    for i in range(0, len(sources), SOURCE_CHUNK):
        todo = []
        for src in sources[i : i + SOURCE_CHUNK]:
            digests[src.id], data = _source_png(out, src)
            if data is not None:
                todo.append((out / "sources" / f"{src.id}.png", data))
        _write_many(todo)
    return digests


def _write_many(files: list[tuple[Path, bytes]]) -> None:
    resolve_write_mode(WRITE_MODE, "cpu")  # refuses an unknown mode
    if WRITE_MODE == "per-file":
        for path, data in files:
            atomic_write_bytes(path, data)
    else:
        atomic_write_many(files, barrier="fsync" if WRITE_MODE == "batched-fsync" else "auto")


def _repair_manifest(path: Path) -> None:
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


def _append_lines(path: Path, records: list[dict]) -> None:
    """Whole lines, one write and one fsync per batch (fsync per line costs more than the edits)."""
    data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode()
    with open(path, "ab") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _parse_manifest(path: Path) -> dict[tuple[str, str], dict]:
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
        if _shard_files(Path(out_dir), "manifest"):
            raise InputError(str(path), "distilled data",
                             "a manifest.jsonl; this folder holds only shard manifests: once every shard "
                             "has finished, run distillation without a shard (or merge_shards) to combine them")
        raise InputError(str(path), "distilled data", "a manifest.jsonl written by distillation")
    return list(_parse_manifest(path).values())


def verify_manifest(out_dir: str | Path, check_hashes: bool = True) -> list[dict]:
    """read_manifest, then check every listed file exists (and matches its sha256)."""
    root = Path(out_dir).resolve()
    records = read_manifest(root)
    known: dict[Path, str] = {}
    for rec in records:
        missing = [k for k in RECORD_KEYS if k not in rec]
        if missing:
            raise InputError(str(root / MANIFEST), "manifest",
                             f"records with {', '.join(RECORD_KEYS)}; a record lacks {', '.join(missing)}")
        for field in ("source", "target"):
            path = (root / str(rec[field])).resolve()
            if not path.is_relative_to(root):
                raise InputError(str(rec[field]), f"{root / MANIFEST}", "paths inside the data folder")
            if not path.is_file():
                raise InputError(str(path), "distilled data",
                                 "an existing file listed in manifest.jsonl (re-run distillation to resume)")
            if check_hashes:
                if path not in known:
                    known[path] = sha256_file(path)
                if known[path] != rec[f"{field}_sha256"]:
                    raise InputError(str(path), "distilled data",
                                     "the sha256 recorded in manifest.jsonl (file changed; re-run distillation)")
    return records


def distill(
    sources: list[SourceImage],
    concepts: list[Concept],
    teacher: Teacher,
    out_dir: str | Path,
    *,
    seed: int = 0,
    batch_size: int = 16,
    progress: bool | Callable[[int, int, str], None] = True,
    shard: tuple[int, int] | str | None = None,
) -> dict:
    """Edit every source with every concept (or one shard's part of them); resumable.

    Returns a summary of what was done, including the teacher's seconds and images per concept.
    """
    start = time.perf_counter()
    _validate(sources, concepts, batch_size)
    shard = _check_shard(shard)
    settings_ok = _teacher_takes_settings(teacher, concepts)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)  # half-written files of a killed run (never read, but never left either)
    description = teacher.describe()
    t_hash = _check_teacher_file(out, description)
    own = out / (shard_file("manifest", shard) if shard else MANIFEST)
    _repair_manifest(own)
    read_files = _manifest_files(out, shard)
    records, origin = _read_records(read_files)
    own_keys = {k for k, f in origin.items() if f == own}  # pairs whose latest line is in our file
    start_keys = set(records)
    lines_before = sum(1 for raw in own.read_bytes().split(b"\n") if raw.strip()) if own.exists() else 0
    source_sha = _write_sources(out, sources)
    affects = getattr(teacher, "affects", None)
    grey: dict[str, bool] = {}   # per source, computed only where a pair's edit could leave it unchanged

    def is_grey(src: SourceImage) -> bool:
        if src.id not in grey:
            grey[src.id] = is_greyscale(src.image)
        return grey[src.id]

    summary = {"written": 0, "skipped_existing": 0, "skipped_greyscale": 0, "pairs": 0,
               "seconds": 0.0, "teacher_seconds": 0.0, "shard": f"{shard[0]}/{shard[1]}" if shard else None,
               "per_concept": {}}
    pending: list[tuple[Concept, SourceImage]] = []
    refreshed = False
    for concept in concepts:
        settings = concept.settings
        for src in sources:
            if shard and shard_of(concept.name, src.id, shard[1]) != shard[0]:
                continue
            summary["pairs"] += 1
            # skipped when grey and the edit cannot change it; the cheap test first (the same answer)
            if not (affects(src.image, concept.instruction) if affects else concept.kind != "colour") and is_grey(src):
                summary["skipped_greyscale"] += 1
                continue
            key = (concept.name, src.id)
            rec = records.get(key)
            target = out / "targets" / concept.name / f"{src.id}.png"
            if (rec is not None and target.is_file()
                    and rec.get("instruction") == concept.instruction
                    and rec.get("teacher_settings", {}) == settings
                    and rec.get("seed") == pair_seed(seed, concept.name, src.id)
                    and rec.get("source_sha256") == source_sha[src.id]
                    and rec.get("teacher") == t_hash
                    and rec.get("target_sha256") == sha256_file(target)):
                summary["skipped_existing"] += 1
                # Metadata that does not change the target (role, kind, split) is kept current.
                fresh = {**rec, "role": concept.role, "kind": concept.kind, "split": src.split}
                if fresh != rec:
                    records[key] = fresh
                    own_keys.add(key)
                    refreshed = True
                continue
            pending.append((concept, src))

    device = teacher_device(teacher, description)
    cost = _CostLog(out / (shard_file("distill_cost", shard) if shard else COST_FILE), t_hash, device, summary)
    by_concept: dict[str, list[tuple[Concept, SourceImage]]] = {}
    for pair in pending:  # a teacher call edits one concept at a time
        by_concept.setdefault(pair[0].name, []).append(pair)
    store = _BatchStore(background=resolve_write_mode(WRITE_MODE, device) == "pipelined")
    try:
        # A callable progress is a caller's display (it gets done, total, unit); no bar at all for
        # data already on disk ("0pair" bars repeated once per study cell said nothing).
        report, done_pairs = (progress if callable(progress) else None), 0
        with tqdm(total=len(pending), desc="distill", unit="pair", file=sys.stderr,
                  disable=not progress or report is not None or not pending) as bar:
            for pairs in by_concept.values():
                for i in range(0, len(pairs), batch_size):
                    batch = pairs[i : i + batch_size]
                    _run_batch(batch, teacher, out, seed, t_hash, source_sha, records, own, summary, settings_ok,
                               store)
                    own_keys.update((c.name, src.id) for c, src in batch)
                    bar.update(len(batch))
                    if report is not None:
                        done_pairs += len(batch)  # a disabled bar does not count
                        report(done_pairs, len(pending), "pairs")
                    cost.maybe_flush()
            store.close()
    except BaseException:
        try:
            store.close()  # the batch in flight still lands: edits already made are not lost
        except Exception:  # noqa: BLE001 - the first error is the one to report
            pass
        cost.flush()  # an interrupted run's device time still counts (a hard kill loses < COST_FLUSH_SECONDS)
        raise

    merged: list[Path] = []
    if shard:
        if refreshed or summary["written"] or lines_before != len(own_keys):
            atomic_write_text(own, "".join(json.dumps(r, sort_keys=True) + "\n"
                                           for k, r in records.items() if k in own_keys))
    else:
        merged = [f for f in read_files if f != own]
        # Lines appended for new pairs only, to a file that held one line per pair: it already reads as
        # the rewrite would write it (same lines, same order), so it is not written a second time.
        appended_only = (lines_before == len(start_keys) and not refreshed and not merged
                         and not any((c.name, src.id) in start_keys for c, src in pending))
        if not appended_only and (refreshed or summary["written"] or lines_before != len(records) or merged):
            atomic_write_text(own, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records.values()))
    summary["teacher_seconds"] = round(summary["teacher_seconds"], 3)
    for c in summary["per_concept"].values():
        c["teacher_seconds"] = round(c["teacher_seconds"], 3)
    summary["seconds"] = round(time.perf_counter() - start, 3)
    cost.flush(final=True)
    if not shard:
        summary["shards_merged"] = _merge_shard_files(out, merged)
    return summary


def merge_shards(out_dir: str | Path) -> dict:
    """Fold every shard's manifest and cost file into ``manifest.jsonl`` / ``distill_cost.json``.

    No teacher needed (nothing is edited or checked against the sources: run ``verify_manifest``
    after, or ``distill`` without a shard, which also merges). Run it once every shard has finished.
    """
    out = Path(out_dir)
    if not (out / TEACHER_FILE).is_file():
        raise InputError(str(out), "merge_shards", f"a distillation folder (with {TEACHER_FILE})")
    own = out / MANIFEST
    _repair_manifest(own)
    files = _manifest_files(out, None)
    records, _ = _read_records(files)
    shards = [f for f in files if f != own]
    if shards or not own.exists():
        atomic_write_text(own, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records.values()))
    return {"pairs": len(records), "shards_merged": _merge_shard_files(out, shards)}


def _teacher_takes_settings(teacher: Teacher, concepts: list[Concept]) -> bool:
    """Whether ``teacher.edit`` takes ``settings=``; an error if a concept has settings and it does not."""
    try:
        params = inspect.signature(teacher.edit).parameters
    except (TypeError, ValueError):
        params = {}
    takes = "settings" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    with_settings = [c.name for c in concepts if c.teacher_settings]
    if with_settings and not takes:
        raise InputError(f"teacher {teacher.name!r}", "distillation",
                         f"a teacher whose edit() takes per-concept settings (concept {with_settings[0]!r} "
                         "sets some): remove the [teacher] table or use the diffusion teacher")
    return takes


def _manifest_files(out: Path, shard: tuple[int, int] | None) -> list[Path]:
    """Manifest files to read, oldest first (a later line for a pair wins)."""
    files = [out / MANIFEST] if (out / MANIFEST).is_file() else []
    if shard:
        mine = out / shard_file("manifest", shard)
        files += [mine] if mine.is_file() else []
    else:
        files += _shard_files(out, "manifest")
    return sorted(files, key=lambda f: (f.stat().st_mtime_ns, f.name != MANIFEST))


def _read_records(files: list[Path]) -> tuple[dict[tuple[str, str], dict], dict[tuple[str, str], Path]]:
    """The latest record per pair over ``files`` (oldest first) and the file it came from.

    Order: the pairs of ``manifest.jsonl`` as they appear there, then pairs known only from shard
    files sorted by (concept, source id), so a merge's order does not depend on shard timing.
    """
    latest: dict[tuple[str, str], dict] = {}
    origin: dict[tuple[str, str], Path] = {}
    order: list[tuple[str, str]] = []
    for f in files:
        for key, rec in _parse_manifest(f).items():
            latest[key] = rec
            origin[key] = f
            if f.name == MANIFEST:
                order.append(key)
    rest = sorted(set(latest) - set(order))
    return {k: latest[k] for k in [*order, *rest]}, origin


def _merge_shard_files(out: Path, manifests: list[Path]) -> int:
    """After manifest.jsonl holds their lines: add shard costs to distill_cost.json, remove shard files."""
    shard_costs = _shard_files(out, "distill_cost")
    if shard_costs:
        main = _read_cost(out / COST_FILE) or {}
        for f in shard_costs:
            part = _read_cost(f)
            if part:
                main = _add_costs(main, part)
        atomic_write_json(out / COST_FILE, main)
    for f in [*manifests, *shard_costs]:
        f.unlink(missing_ok=True)
    return len(manifests)


def teacher_device(teacher: Teacher, description: dict) -> str:
    return str(getattr(teacher, "device_name", None) or description.get("device") or "cpu")


def _read_cost(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError):
        return None  # a cost record is bookkeeping: an unreadable one is started afresh
    return data if isinstance(data, dict) else None


def _add_costs(a: dict, b: dict) -> dict:
    concepts = {k: dict(v) for k, v in a.get("concepts", {}).items()}
    for name, c in b.get("concepts", {}).items():
        mine = concepts.setdefault(name, {"images": 0, "device_seconds": 0.0})
        mine["images"] += c.get("images", 0)
        mine["device_seconds"] = round(mine["device_seconds"] + c.get("device_seconds", 0.0), 3)
    for c in concepts.values():
        c["seconds_per_image"] = round(c["device_seconds"] / c["images"], 4) if c["images"] else None
    images = sum(c["images"] for c in concepts.values())
    seconds = round(sum(c["device_seconds"] for c in concepts.values()), 3)
    return {"unit": "teacher device-seconds: wall time inside teacher.edit, one device per process; "
                    "separate from training cost",
            "teacher": a.get("teacher") or b.get("teacher"), "concepts": concepts,
            "total": {"images": images, "device_seconds": seconds,
                      "seconds_per_image": round(seconds / images, 4) if images else None},
            "runs": [*a.get("runs", []), *b.get("runs", [])]}


class _CostLog:
    """The cost file of this run's output (main or shard): earlier runs plus this one, flushed now and then."""

    def __init__(self, path: Path, t_hash: str, device: str, summary: dict):
        self.path, self.t_hash, self.device, self.summary = path, t_hash, device, summary
        old = _read_cost(path)
        self.base = old if old and old.get("teacher") == t_hash else {"teacher": t_hash}
        self.started = time.time()
        self.last = time.perf_counter()

    def maybe_flush(self) -> None:
        if time.perf_counter() - self.last >= COST_FLUSH_SECONDS:
            self.flush()

    def flush(self, final: bool = False) -> None:
        self.last = time.perf_counter()
        if not self.summary["written"]:
            return
        run = {"shard": self.summary["shard"], "device": self.device, "written": self.summary["written"],
               "device_seconds": round(self.summary["teacher_seconds"], 3),
               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
               "finished": final}
        current = {"concepts": {k: {"images": v["images"], "device_seconds": v["teacher_seconds"]}
                                for k, v in self.summary["per_concept"].items()},
                   "runs": [run], "teacher": self.t_hash}
        atomic_write_json(self.path, _add_costs(self.base, current))


class _BatchStore:
    """Stores edited batches one at a time: in a background thread when ``background`` (the teacher
    edits the next batch meanwhile; a GPU teacher leaves the CPU idle then, and the file writes
    and fsyncs wait outside the GIL), else at once. At most one batch is in flight, so memory stays
    bounded and batches reach the manifest in order; a failed store raises at the next submit or
    at ``close``."""

    def __init__(self, background: bool):
        self._pool = None
        if background:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(1, thread_name_prefix="distill-store")
        self._pending = None

    def submit(self, store, done) -> None:
        self.wait()
        if self._pool is None:
            done(store())
        else:
            self._pending = (self._pool.submit(store), done)

    def wait(self) -> None:
        if self._pending is not None:
            future, done = self._pending
            self._pending = None
            done(future.result())

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None


def _store_batch(batch, edited, seeds, concept, out, source_sha, t_hash, manifest) -> list[dict]:
    """PNG-encode a batch's targets, write them durably, then append their manifest lines."""
    settings = concept.settings
    new, files = [], []
    for (_, src), img, pseed in zip(batch, edited, seeds):
        data = _png_bytes(img)
        rel_target = f"targets/{concept.name}/{src.id}.png"
        files.append((out / rel_target, data))
        rec = {"concept": concept.name, "instruction": concept.instruction, "role": concept.role,
               "kind": concept.kind, "source_id": src.id, "split": src.split,
               "source": f"sources/{src.id}.png", "target": rel_target,
               "source_sha256": source_sha[src.id], "target_sha256": sha256_bytes(data),
               "size": list(img.size), "seed": pseed, "teacher": t_hash}
        if settings:
            rec["teacher_settings"] = settings
        new.append(rec)
    _write_many(files)  # complete and durable under their names before any line names them
    _append_lines(manifest, new)  # after the batch's images are on disk
    return new


def _run_batch(batch, teacher, out, seed, t_hash, source_sha, records, manifest, summary, settings_ok=False,
               store: _BatchStore | None = None) -> None:
    concept = batch[0][0]
    images = [src.image for _, src in batch]
    seeds = [pair_seed(seed, concept.name, src.id) for _, src in batch]
    settings = concept.settings
    t0 = time.perf_counter()
    if settings and settings_ok:
        edited = teacher.edit(images, concept.instruction, seeds, settings=settings)
    else:
        edited = teacher.edit(images, concept.instruction, seeds)
    took = time.perf_counter() - t0
    summary["teacher_seconds"] += took
    per = summary["per_concept"].setdefault(concept.name, {"images": 0, "teacher_seconds": 0.0})
    per["images"] += len(images)
    per["teacher_seconds"] += took
    if not isinstance(edited, (list, tuple)) or len(edited) != len(images):
        raise InputError(f"teacher {teacher.name!r}", "distillation", f"one edited image per input ({len(images)})")
    for (_, src), img in zip(batch, edited):
        if not isinstance(img, Image.Image) or img.size != src.image.size:
            got = img.size if isinstance(img, Image.Image) else type(img).__name__
            raise InputError(f"teacher {teacher.name!r}", "distillation",
                             f"PIL images of the input size {src.image.size}, got {got} for concept {concept.name!r}")

    # Own copies (convert copies): a teacher may reuse the buffers behind the images it returned.
    edited = [img.convert("RGB") for img in edited]

    def done(new: list[dict]) -> None:  # on this thread, once the batch is on disk
        for rec in new:
            records[(rec["concept"], rec["source_id"])] = rec
        summary["written"] += len(new)

    (store or _BatchStore(background=False)).submit(
        lambda: _store_batch(batch, edited, seeds, concept, out, source_sha, t_hash, manifest), done)
