"""Stage 1, the distilled data: every base and new concept of a configuration, resumable."""
from __future__ import annotations

from pathlib import Path

from e2gan.config import Config
from e2gan.io import atomic_write_json


def ensure_data(cfg: Config, runs: str | Path = "runs", progress: bool = True,
                shard: str | None = None) -> tuple[Path, dict]:
    """Distil every base and new concept of ``cfg`` (resumable); returns the folder and a summary.

    ``shard`` ("i/n") distils only this worker's disjoint share; merge with `distill --merge-shards`.
    """
    from e2gan.data.concepts import load_concepts, select_names_or_roles
    from e2gan.data.distill import distill
    from e2gan.data.sources import load_sources
    from e2gan.teachers.data_key import data_dir
    from e2gan.teachers.loading import load_teacher

    out = data_dir(cfg, runs)
    concepts = load_concepts(cfg.data.concepts_file or None)
    wanted = select_names_or_roles(concepts, cfg.data.base_concepts + cfg.data.new_concepts)
    teacher = load_teacher(cfg.data.teacher)
    sources = load_sources(cfg.data.sources, cfg.data.resolution, crops_per_photo=cfg.data.crops_per_photo,
                           seed=cfg.data.seed, n_test=cfg.eval.n_test, n_val=cfg.eval.n_val)
    summary = distill(sources, wanted, teacher, out, seed=cfg.data.seed, progress=progress, shard=shard)
    if shard is None:  # shards run at once into one folder: only the merged run describes it
        atomic_write_json(out / "data.json", {"config": cfg.to_dict()["data"], "last_distill": summary})
    return out, summary
