"""Shards of a distillation: which pairs a shard owns, and folding finished shards into the folder.

``shard=(i, n)`` edits only the pairs with ``shard_of(concept, source_id, n) == i``: the n shards
partition the work exactly and disjointly, and a pair keeps its shard when sources or concepts
are added. Each shard appends to its own manifest and cost file (``e2gan.data.manifest.shard_file``)
and never writes ``manifest.jsonl``; ``merge_shards`` (or a distillation run without a shard)
folds them in and removes them, once every shard has finished.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from e2gan.data.cost import COST_FILE, add_costs, read_cost
from e2gan.data.manifest import (MANIFEST, TEACHER_FILE, manifest_files, manifest_text, read_records,
                                 repair_manifest, shard_files)
from e2gan.errors import InputError
from e2gan.io import atomic_write_json, atomic_write_text


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


def check_shard(shard) -> tuple[int, int] | None:
    """A shard as given (None, "i/n" or (i, n)) -> (i, n), or None for no shard (or "0/1")."""
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


def merge_shards(out_dir: str | Path) -> dict:
    """Fold every shard's manifest and cost file into ``manifest.jsonl`` / ``distill_cost.json``.

    No teacher needed (nothing is edited or checked against the sources: run ``verify_manifest``
    after, or ``distill`` without a shard, which also merges). Run it once every shard has finished.
    """
    out = Path(out_dir)
    if not (out / TEACHER_FILE).is_file():
        raise InputError(str(out), "merge_shards", f"a distillation folder (with {TEACHER_FILE})")
    own = out / MANIFEST
    repair_manifest(own)
    files = manifest_files(out, None)
    records, _ = read_records(files)
    shards = [f for f in files if f != own]
    if shards or not own.exists():
        atomic_write_text(own, manifest_text(records.values()))
    return {"pairs": len(records), "shards_merged": merge_shard_files(out, shards)}


def merge_shard_files(out: Path, manifests: list[Path]) -> int:
    """After manifest.jsonl holds their lines: add shard costs to distill_cost.json, remove shard files."""
    shard_costs = shard_files(out, "distill_cost")
    if shard_costs:
        main = read_cost(out / COST_FILE) or {}
        for f in shard_costs:
            part = read_cost(f)
            if part:
                main = add_costs(main, part)
        atomic_write_json(out / COST_FILE, main)
    for f in [*manifests, *shard_costs]:
        f.unlink(missing_ok=True)
    return len(manifests)
