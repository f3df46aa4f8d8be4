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
atomically before their manifest lines; a batch's lines are appended with one write + fsync,
and a torn last line (a kill mid-append) is dropped on the next run. At the end the manifest
is rewritten atomically with one line per pair.

Greyscale sources: pairs where the edit cannot change a grey image are skipped (and counted).
The teacher decides through ``affects(image, instruction)`` when it has one; otherwise
concepts of kind ``colour`` are skipped on greyscale sources.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from e2gan.errors import InputError
from e2gan.io import atomic_write_bytes, atomic_write_json, atomic_write_text, sha256_bytes, sha256_file
from e2gan.sources import SourceImage, is_greyscale
from e2gan.teachers.base import Concept, Teacher, check_concept_name

MANIFEST = "manifest.jsonl"
TEACHER_FILE = "teacher.json"
RECORD_KEYS = ("concept", "instruction", "role", "kind", "source_id", "split", "source", "target",
               "source_sha256", "target_sha256", "size", "seed", "teacher")
SOURCE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def pair_seed(seed: int, concept: str, source_id: str) -> int:
    digest = hashlib.sha256(f"{seed}:{concept}:{source_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


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


def _write_source(out: Path, src: SourceImage) -> str:
    """Write sources/<id>.png unless an identical image is already there; return its sha256."""
    path = out / "sources" / f"{src.id}.png"
    data = _png_bytes(src.image.convert("RGB"))
    digest = sha256_bytes(data)
    if path.exists():
        existing = sha256_file(path)
        if existing == digest:
            return digest
        with Image.open(path) as old:  # same pixels, other encoder settings: keep the file
            same = np.array_equal(np.asarray(old.convert("RGB")), np.asarray(src.image.convert("RGB")))
        if same:
            return existing
        raise InputError(str(path), "distillation output folder",
                         f"the same image for source {src.id!r}; this folder was made from other "
                         "sources or at another resolution: use a new folder")
    atomic_write_bytes(path, data)
    return digest


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
    progress: bool = True,
) -> dict:
    """Edit every source with every concept; resumable. Returns a summary of what was done."""
    start = time.perf_counter()
    _validate(sources, concepts, batch_size)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_hash = _check_teacher_file(out, teacher.describe())
    manifest = out / MANIFEST
    _repair_manifest(manifest)
    records = _parse_manifest(manifest) if manifest.exists() else {}
    lines_before = sum(1 for raw in manifest.read_bytes().split(b"\n") if raw.strip()) if manifest.exists() else 0
    source_sha = {s.id: _write_source(out, s) for s in sources}
    affects = getattr(teacher, "affects", None)
    grey = {s.id: is_greyscale(s.image) for s in sources}

    summary = {"written": 0, "skipped_existing": 0, "skipped_greyscale": 0,
               "pairs": len(sources) * len(concepts), "seconds": 0.0, "teacher_seconds": 0.0}
    pending: list[tuple[Concept, SourceImage]] = []
    refreshed = False
    for concept in concepts:
        for src in sources:
            if grey[src.id] and not (affects(src.image, concept.instruction) if affects else concept.kind != "colour"):
                summary["skipped_greyscale"] += 1
                continue
            rec = records.get((concept.name, src.id))
            target = out / "targets" / concept.name / f"{src.id}.png"
            if (rec is not None and target.is_file()
                    and rec.get("instruction") == concept.instruction
                    and rec.get("seed") == pair_seed(seed, concept.name, src.id)
                    and rec.get("source_sha256") == source_sha[src.id]
                    and rec.get("teacher") == t_hash
                    and rec.get("target_sha256") == sha256_file(target)):
                summary["skipped_existing"] += 1
                # Metadata that does not change the target (role, kind, split) is kept current.
                fresh = {**rec, "role": concept.role, "kind": concept.kind, "split": src.split}
                if fresh != rec:
                    records[(concept.name, src.id)] = fresh
                    refreshed = True
                continue
            pending.append((concept, src))

    by_concept: dict[str, list[tuple[Concept, SourceImage]]] = {}
    for pair in pending:  # a teacher call edits one concept at a time
        by_concept.setdefault(pair[0].name, []).append(pair)
    with tqdm(total=len(pending), desc="distill", unit="pair", file=sys.stderr, disable=not progress) as bar:
        for pairs in by_concept.values():
            for i in range(0, len(pairs), batch_size):
                batch = pairs[i : i + batch_size]
                _run_batch(batch, teacher, out, seed, t_hash, source_sha, records, manifest, summary)
                bar.update(len(batch))

    if refreshed or summary["written"] or lines_before != len(records):
        atomic_write_text(manifest, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records.values()))
    summary["seconds"] = round(time.perf_counter() - start, 3)
    summary["teacher_seconds"] = round(summary["teacher_seconds"], 3)
    return summary


def _run_batch(batch, teacher, out, seed, t_hash, source_sha, records, manifest, summary) -> None:
    concept = batch[0][0]
    images = [src.image for _, src in batch]
    seeds = [pair_seed(seed, concept.name, src.id) for _, src in batch]
    t0 = time.perf_counter()
    edited = teacher.edit(images, concept.instruction, seeds)
    summary["teacher_seconds"] += time.perf_counter() - t0
    if not isinstance(edited, (list, tuple)) or len(edited) != len(images):
        raise InputError(f"teacher {teacher.name!r}", "distillation", f"one edited image per input ({len(images)})")
    new = []
    for (_, src), img, pseed in zip(batch, edited, seeds):
        if not isinstance(img, Image.Image) or img.size != src.image.size:
            got = img.size if isinstance(img, Image.Image) else type(img).__name__
            raise InputError(f"teacher {teacher.name!r}", "distillation",
                             f"PIL images of the input size {src.image.size}, got {got} for concept {concept.name!r}")
        data = _png_bytes(img.convert("RGB"))
        rel_target = f"targets/{concept.name}/{src.id}.png"
        atomic_write_bytes(out / rel_target, data)
        rec = {"concept": concept.name, "instruction": concept.instruction, "role": concept.role,
               "kind": concept.kind, "source_id": src.id, "split": src.split,
               "source": f"sources/{src.id}.png", "target": rel_target,
               "source_sha256": source_sha[src.id], "target_sha256": sha256_bytes(data),
               "size": list(img.size), "seed": pseed, "teacher": t_hash}
        new.append(rec)
    _append_lines(manifest, new)  # after the batch's images are on disk
    for rec in new:
        records[(rec["concept"], rec["source_id"])] = rec
    summary["written"] += len(new)
