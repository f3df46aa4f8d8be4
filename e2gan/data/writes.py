"""How distilled images reach the disk: PNG encoding, durable atomic writes, one manifest append per batch.

Images are written atomically before their manifest lines: a batch's PNGs go to temp files, are
made durable together and renamed onto their names (``e2gan.io.atomic_write_many``; sources
likewise, in chunks of ``SOURCE_CHUNK``); then the batch's lines are appended with one write +
fsync (``e2gan.data.manifest.append_lines``).

``WRITE_MODE`` (all atomic per file: temp, durable, rename): "pipelined" (as "batched", but in a
background thread while the teacher edits the next batch), "batched" (a batch's temps made durable
by one barrier, atomic_write_many's "auto"), "batched-fsync" (the batch's temps fsynced
concurrently) or "per-file" (temp + fsync + rename for each PNG in turn, the path before
batching). "auto": pipelined for a teacher on an accelerator (the CPU idles while it edits),
batched for a CPU teacher (a writer thread would compete with it for the cores; measured slower
in the benchmarks). The benchmarks time every mode side by side.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from e2gan.data.manifest import append_lines
from e2gan.data.sources import SourceImage
from e2gan.errors import InputError
from e2gan.io import atomic_write_bytes, atomic_write_many, sha256_bytes, sha256_file

SOURCE_CHUNK = 64   # sources encoded, then written and fsynced together, this many at a time
WRITE_MODES = ("auto", "pipelined", "batched", "batched-fsync", "per-file")
WRITE_MODE = "auto"


def resolve_write_mode(mode: str, device: str) -> str:
    """The write mode ``mode`` means for a teacher running on ``device`` ("auto" picks)."""
    if mode not in WRITE_MODES:
        raise ValueError(f"e2gan.data.writes.WRITE_MODE {mode!r}: one of {WRITE_MODES}")
    if mode != "auto":
        return mode
    return "batched" if device.split(":")[0].strip().lower() in ("cpu", "") else "pipelined"


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def source_png(out: Path, src: SourceImage) -> tuple[str, bytes | None]:
    """(sha256 of sources/<id>.png, the PNG to write or None when an identical image is already there)."""
    path = out / "sources" / f"{src.id}.png"
    data = png_bytes(src.image.convert("RGB"))
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


def write_source(out: Path, src: SourceImage) -> str:
    """Write sources/<id>.png unless an identical image is already there; return its sha256."""
    digest, data = source_png(out, src)
    if data is not None:
        atomic_write_bytes(out / "sources" / f"{src.id}.png", data)
    return digest


def write_sources(out: Path, sources: list[SourceImage]) -> dict[str, str]:
    """Every source's sha256, writing the missing ones (``WRITE_MODE``: fsynced per chunk or per file)."""
    if WRITE_MODE == "per-file":
        return {s.id: write_source(out, s) for s in sources}
    digests: dict[str, str] = {}
    for i in range(0, len(sources), SOURCE_CHUNK):
        todo = []
        for src in sources[i : i + SOURCE_CHUNK]:
            digests[src.id], data = source_png(out, src)
            if data is not None:
                todo.append((out / "sources" / f"{src.id}.png", data))
        write_many(todo)
    return digests


def write_many(files: list[tuple[Path, bytes]]) -> None:
    resolve_write_mode(WRITE_MODE, "cpu")  # refuses an unknown mode
    if WRITE_MODE == "per-file":
        for path, data in files:
            atomic_write_bytes(path, data)
    else:
        atomic_write_many(files, barrier="fsync" if WRITE_MODE == "batched-fsync" else "auto")


class BatchStore:
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


def store_batch(batch, edited, seeds, concept, out, source_sha, t_hash, manifest) -> list[dict]:
    """PNG-encode a batch's targets, write them durably, then append their manifest lines."""
    settings = concept.settings
    new, files = [], []
    for (_, src), img, pseed in zip(batch, edited, seeds):
        data = png_bytes(img)
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
    write_many(files)  # complete and durable under their names before any line names them
    append_lines(manifest, new)  # after the batch's images are on disk
    return new
