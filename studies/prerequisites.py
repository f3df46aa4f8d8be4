"""Which concepts a configuration names, and where its distilled data lives.

The cached stages that build the data, the base and each adaptation are in ``e2gan.pipeline``.
"""
from __future__ import annotations

from pathlib import Path

from e2gan.config import Config


def select_names_or_roles(concepts: list, items: list[str]) -> list:
    """Each item is a concept name or a role ('base', 'new', 'all'); order kept, no repeats."""
    from e2gan.teachers import select_concepts

    out = []
    for item in items:
        out += [c for c in select_concepts(concepts, item) if c not in out]
    return out


def concept_names(cfg: Config) -> tuple[list[str], list[str]]:
    """(base concept names, new concept names) from the config's concepts file."""
    from e2gan.teachers import load_concepts

    concepts = load_concepts(cfg.data.concepts_file or None)
    return ([c.name for c in select_names_or_roles(concepts, cfg.data.base_concepts)],
            [c.name for c in select_names_or_roles(concepts, cfg.data.new_concepts)])


def data_dir(cfg: Config, runs: str | Path = "runs") -> Path:
    return Path(runs) / "data" / f"{cfg.preset}-{cfg.data_key()}"
