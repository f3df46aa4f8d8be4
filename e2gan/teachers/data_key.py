"""The distilled data folder's key: what the pairs are made from, by content, not by place.

It fingerprints the teacher's model folder, the sources folder and the concepts file, so it sits
with the teachers (above the data layer it also reads), not in the config that only holds the names.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from e2gan import config
from e2gan.config import Config
from e2gan.data.concepts import PACKAGED_CONCEPTS, load_concepts
from e2gan.data.sources import IMAGE_SUFFIXES
from e2gan.teachers.diffusion_spec import parse_spec
from e2gan.teachers.pretrained import fingerprint_folder

# Teacher options that choose where and in what batches the teacher runs, not what it makes.
PLACEMENT_OPTIONS = ("device", "max_batch")


def data_key(cfg: Config) -> str:
    """Key of the distilled data folder (a hash of ``data_identity``).

    The concept lists are left out because distillation only adds the concepts a folder
    lacks, so every concept selection shares one folder. What identifies the data is content,
    not where it sits, so shards on many GPUs and machines land in one folder and
    ``--merge-shards`` combines them: see ``data_identity``.
    """
    return hashlib.sha256(json.dumps(data_identity(cfg), sort_keys=True).encode()).hexdigest()[:10]


def data_identity(cfg: Config) -> dict:
    """The data section as the data key sees it.

    - ``teacher``: a ``diffusers:`` spec becomes its model and options with ``device`` and
      ``max_batch`` dropped (where and how many at once: per-image seeds make the pairs the
      same) and options sorted; a local model folder is named by its basename and a
      fingerprint of its files (configs hashed whole, weights by size and first/last MiB,
      see ``teachers.pretrained.fingerprint_folder``), not its absolute path. A hub id stays.
      ``procedural`` and plug-in specs stay as written.
    - ``sources``: a folder becomes its image count and a hash of the sorted relative paths
      and sizes of the images it holds; ``builtin`` stays.
    - ``concepts_file``: a file becomes a hash of each concept's name, instruction and
      teacher settings (what the pairs depend on; roles and notes are left out); empty (the
      packaged file) and packaged names stay.

    - ``n_test`` / ``n_val`` (from ``eval``) and, for the built-in set, its split rule.

    Otherwise defaults map to themselves.
    """
    d = {k: v for k, v in cfg.to_dict()["data"].items() if k not in ("base_concepts", "new_concepts")}
    d.update(n_test=cfg.eval.n_test, n_val=cfg.eval.n_val)  # how many val/test sources are distilled
    if d["sources"] == "builtin":
        d["split"] = config.BUILTIN_SPLIT  # read at call time: the same rule Config.key uses
    d["teacher"] = _teacher_identity(d["teacher"])
    d["sources"] = _sources_identity(d["sources"])
    d["concepts_file"] = _concepts_identity(d["concepts_file"])
    return d


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _teacher_identity(spec: str) -> Any:
    if not isinstance(spec, str) or not spec.strip().startswith("diffusers:"):
        return spec
    model, options = parse_spec(spec.strip())
    options = {k: v for k, v in sorted(options.items()) if k not in PLACEMENT_OPTIONS}
    folder = Path(model).expanduser()
    if folder.is_dir():
        files = fingerprint_folder(folder, options.get("variant") or None)
        ident: Any = {"folder": folder.resolve().name, "fingerprint": _digest(sorted(files.items()))}
    else:
        ident = model
    return {"kind": "diffusers", "model": ident, "options": options}


def _sources_identity(sources: str) -> Any:
    folder = Path(sources).expanduser()
    if sources == "builtin" or not folder.is_dir():
        return sources
    listing = sorted((p.relative_to(folder).as_posix(), p.stat().st_size) for p in folder.rglob("*")
                     if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)  # what folder_sources reads
    return {"folder_images": len(listing), "listing": _digest(listing)}


def _concepts_identity(concepts_file: str) -> Any:
    if not concepts_file or (concepts_file in PACKAGED_CONCEPTS and not Path(concepts_file).exists()):
        return concepts_file
    if not Path(concepts_file).expanduser().is_file():
        return concepts_file  # reading it fails later, with the loader's own message
    concepts = load_concepts(Path(concepts_file).expanduser())
    return {"concepts": _digest(sorted((c.name, c.instruction, list(map(list, c.teacher_settings)))
                                       for c in concepts))}


def data_dir(cfg: Config, runs: str | Path = "runs") -> Path:
    """Where ``cfg``'s distilled data lives under ``runs``: one folder per preset and data key."""
    return Path(runs) / "data" / f"{cfg.preset}-{data_key(cfg)}"
