"""Stand-in weights: files that declare themselves random, so no number made with them passes as real.

Smoke runs and tests use random-weight files with the real files' names and interfaces (clean-fid's
Inception, torchvision's AlexNet trunk for LPIPS, a diffusers pipeline). Each carries a note saying
so, inside the file itself, so a copy keeps its label wherever it is put:

- TorchScript file (``torch.jit.save(..., _extra_files={KEY: note})``): an extra file ``KEY``;
- ``torch.save``'d dict: a string entry ``KEY`` beside the tensors;
- diffusers pipeline folder: a ``"_e2gan_stand_in"`` entry in ``model_index.json`` (diffusers
  ignores keys that start with ``_``).

A real file has none of these, and every reader returns None for it. Whatever reads a weights file
for a metric or a teacher copies the note into the protocol it records.
"""
from __future__ import annotations

import json
import zipfile
from functools import lru_cache
from pathlib import Path

KEY = "e2gan_stand_in"
INDEX_KEY = "_e2gan_stand_in"
TEACHER_FILE = "teacher.json"  # as e2gan.data.manifest.TEACHER_FILE (stand_in sits below the data layer)


@lru_cache(maxsize=32)
def _weights_note(path: str, mtime_ns: int, size: int) -> str | None:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            extra = [n for n in names if n.endswith(f"/extra/{KEY}")]
            if extra:
                return zf.read(extra[0]).decode("utf-8")
            if not any(n.endswith("/data.pkl") for n in names) or any(n.endswith("/constants.pkl") for n in names):
                return None  # not a torch.save'd object (a TorchScript file without the note)
    except (OSError, zipfile.BadZipFile):
        return None  # legacy (non-zip) torch files and anything else carry no note
    import torch

    try:  # mmap: the tensors are not read, only the pickled structure
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # unreadable as plain data: its own loader reports that, not this check
        return None
    note = obj.get(KEY) if isinstance(obj, dict) else None
    return note if isinstance(note, str) else None


def weights_note(path: str | Path) -> str | None:
    """The stand-in note a weights file carries, or None (a real file). Cached per (path, mtime, size)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return None
    return _weights_note(str(p), st.st_mtime_ns, st.st_size)


def folder_note(folder: str | Path) -> str | None:
    """The stand-in note of a diffusers pipeline folder (in its model_index.json), or None."""
    index = Path(folder) / "model_index.json"
    try:
        note = json.loads(index.read_text("utf-8")).get(INDEX_KEY)
    except (OSError, ValueError, AttributeError):
        return None
    return note if isinstance(note, str) else None


def data_teacher_note(data_root: str | Path) -> str | None:
    """The stand-in note of the teacher a distilled data folder was made with, or None."""
    try:
        note = json.loads((Path(data_root) / TEACHER_FILE).read_text("utf-8")).get("stand_in")
    except (OSError, ValueError, AttributeError):
        return None
    return note if isinstance(note, str) else None


def teacher_protocol(data_root: str | Path) -> dict:
    """``{"teacher_stand_in": note}`` for a result's protocol when the targets came from a stand-in teacher."""
    note = data_teacher_note(data_root)
    return {"teacher_stand_in": note} if note else {}


def protocol_stand_ins(protocol: dict) -> list[str]:
    """What in a result's protocol ran on stand-in weights: 'FID/KID backbone', 'perceptual', 'teacher'."""
    found = []
    if isinstance(protocol.get("backbone"), dict) and protocol["backbone"].get("stand_in"):
        found.append("FID/KID backbone")
    if isinstance(protocol.get("perceptual_weights"), dict) and protocol["perceptual_weights"].get("stand_in"):
        found.append("perceptual")
    if protocol.get("teacher_stand_in"):
        found.append("teacher")
    return found
