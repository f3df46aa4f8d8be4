"""What the deploy entry points read from and write into a run directory.

The training resolution (config.json, else result.json), the concept to bake in, where a run's
.tflite and its sidecar are, and the write into result.json (only when the run has one).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from e2gan.errors import InputError

__all__ = ["run_resolution", "resolve_concept", "record", "locate", "sidecar"]


def run_resolution(run_dir: Path) -> int | None:
    """The run's training resolution (config.json, else result.json's config); None if neither says."""
    for name, path in (("config.json", ("data", "resolution")), ("result.json", ("config", "data", "resolution"))):
        f = run_dir / name
        if f.exists():
            try:
                node: Any = json.loads(f.read_text())
                for k in path:
                    node = node[k]
                return int(node)
            except (KeyError, TypeError, ValueError):
                continue
    return None


def resolve_concept(meta: dict, concept: str | int | None, where: str) -> tuple[int, str]:
    """(id, name) of the concept a name or id picks; none given: an adapted run's new one, else the first."""
    concepts = list(meta.get("concepts") or [])
    if not concepts:
        return 0, ""
    if concept is None:  # an adapted run's new concept is the last one; a base run: the first
        idx = len(concepts) - 1 if meta.get("kind") == "adapt" else 0
        return idx, concepts[idx]
    if isinstance(concept, int) or (isinstance(concept, str) and concept.isdigit()):
        idx = int(concept)
        if not 0 <= idx < len(concepts):
            raise InputError(f"concept id {idx}", where, f"an id in 0..{len(concepts) - 1} ({', '.join(concepts)})")
        return idx, concepts[idx]
    if concept not in concepts:
        raise InputError(f"concept {concept!r}", where, f"one of {', '.join(concepts)}")
    return concepts.index(concept), concept


def record(run_dir: Path | None, key: tuple[str, ...], value: dict) -> bool:
    """Write into the run's result.json when there is one; False otherwise."""
    if run_dir is None or not (run_dir / "result.json").exists():
        return False
    from e2gan.results import update_result

    update_result(run_dir, key, value)
    return True


def locate(target: str | Path, model_name: str | None) -> tuple[Path | None, Path | None]:
    """(run_dir or None, tflite path or None) from a run directory or a .tflite path."""
    t = Path(target)
    if t.is_dir():
        if not (t / "model.json").exists():
            raise InputError("not a run directory", str(t), "a run holding model.json (or a .tflite file)")
        return t, t / "export" / (model_name or "model.tflite")
    if t.suffix == ".tflite":
        if not t.is_file():
            raise InputError("no such .tflite", str(t), "an exported model file")
        run = t.parent.parent if t.parent.name == "export" and (t.parent.parent / "model.json").exists() else None
        return run, t
    raise InputError("latency target", str(t), "a run directory or a .tflite file")


def sidecar(tflite: Path) -> dict:
    """The export record written beside a .tflite ({} when missing or unreadable)."""
    side = tflite.with_suffix(".json")
    try:
        return json.loads(side.read_text()) if side.exists() else {}
    except json.JSONDecodeError:
        return {}

