"""Distillation: sources × concepts → teacher-edited pairs on disk plus ``manifest.jsonl``.

The folder's format (files, manifest fields, shard files) is ``e2gan.data.manifest``'s; how images
reach the disk is ``e2gan.data.writes``; shards are ``e2gan.data.shards``; the cost file is
``e2gan.data.cost``. The teacher's full description lives once in ``teacher.json``; re-running into
a folder made by a differently configured teacher is refused rather than mixing two teachers'
targets.

``seed`` per pair is derived from (run seed, concept, source id), so a pair's target does not
depend on which other pairs are in the run or in what order they are made.

Resuming: a pair is done when its target exists, its manifest line matches (target hash,
instruction, seed, source hash, teacher) — anything else is redone. Images are written durably
before their manifest lines, and a torn last line (a kill mid-append) is dropped on the next run.
At the end the manifest is rewritten atomically with one line per pair.

Greyscale sources: pairs where the edit cannot change a grey image are skipped (and counted).
The teacher decides through ``affects(image, instruction)`` when it has one; otherwise
concepts of kind ``colour`` are skipped on greyscale sources.

Per-concept teacher settings (``Concept.teacher_settings``, e.g. guidance for one concept) go to
``teacher.edit(..., settings=...)`` and are recorded as ``teacher_settings`` on the pair (only
when a concept has any); changing them redoes that concept's pairs.

Shards may run at once into one folder (shared disk) or into copies of it; a run without a shard
(``distill`` again, which finds all work done, or ``merge_shards`` without a teacher) folds the
shard files into ``manifest.jsonl`` and ``distill_cost.json``; run it after every shard has finished.

Cost: ``distill_cost.json`` accumulates the teacher's device-seconds and images per concept over
every run and shard, separately from any training cost.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import re
import sys
import time
from pathlib import Path
from typing import Callable

from PIL import Image
from tqdm import tqdm

from e2gan.data import writes
from e2gan.data.concepts import Concept, check_concept_name
from e2gan.data.cost import COST_FILE, CostLog
from e2gan.data.manifest import (MANIFEST, TEACHER_FILE, manifest_files, manifest_text, read_records,
                                 repair_manifest, shard_file, teacher_hash)
from e2gan.data.shards import check_shard, merge_shard_files, shard_of
from e2gan.data.sources import SourceImage, is_greyscale
from e2gan.errors import InputError
from e2gan.io import atomic_write_json, atomic_write_text, remove_stale_temps, sha256_file
from e2gan.teachers.base import Teacher

SOURCE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def pair_seed(seed: int, concept: str, source_id: str) -> int:
    digest = hashlib.sha256(f"{seed}:{concept}:{source_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


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
    shard = check_shard(shard)
    settings_ok = _teacher_takes_settings(teacher, concepts)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)  # half-written files of a killed run (never read, but never left either)
    description = teacher.describe()
    t_hash = _check_teacher_file(out, description)
    own = out / (shard_file("manifest", shard) if shard else MANIFEST)
    repair_manifest(own)
    read_files = manifest_files(out, shard)
    records, origin = read_records(read_files)
    own_keys = {k for k, f in origin.items() if f == own}  # pairs whose latest line is in our file
    start_keys = set(records)
    lines_before = sum(1 for raw in own.read_bytes().split(b"\n") if raw.strip()) if own.exists() else 0
    source_sha = writes.write_sources(out, sources)
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
    cost = CostLog(out / (shard_file("distill_cost", shard) if shard else COST_FILE), t_hash, device, summary)
    by_concept: dict[str, list[tuple[Concept, SourceImage]]] = {}
    for pair in pending:  # a teacher call edits one concept at a time
        by_concept.setdefault(pair[0].name, []).append(pair)
    store = writes.BatchStore(background=writes.resolve_write_mode(writes.WRITE_MODE, device) == "pipelined")
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
            atomic_write_text(own, manifest_text(r for k, r in records.items() if k in own_keys))
    else:
        merged = [f for f in read_files if f != own]
        # Lines appended for new pairs only, to a file that held one line per pair: it already reads as
        # the rewrite would write it (same lines, same order), so it is not written a second time.
        appended_only = (lines_before == len(start_keys) and not refreshed and not merged
                         and not any((c.name, src.id) in start_keys for c, src in pending))
        if not appended_only and (refreshed or summary["written"] or lines_before != len(records) or merged):
            atomic_write_text(own, manifest_text(records.values()))
    summary["teacher_seconds"] = round(summary["teacher_seconds"], 3)
    for c in summary["per_concept"].values():
        c["teacher_seconds"] = round(c["teacher_seconds"], 3)
    summary["seconds"] = round(time.perf_counter() - start, 3)
    cost.flush(final=True)
    if not shard:
        summary["shards_merged"] = merge_shard_files(out, merged)
    return summary


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


def teacher_device(teacher: Teacher, description: dict) -> str:
    return str(getattr(teacher, "device_name", None) or description.get("device") or "cpu")


def _run_batch(batch, teacher, out, seed, t_hash, source_sha, records, manifest, summary, settings_ok=False,
               store: writes.BatchStore | None = None) -> None:
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

    (store or writes.BatchStore(background=False)).submit(
        lambda: writes.store_batch(batch, edited, seeds, concept, out, source_sha, t_hash, manifest), done)
