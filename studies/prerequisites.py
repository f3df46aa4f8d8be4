"""Shared prerequisites, built once and keyed by their configuration: distilled data, base models.

Every study trial and every CLI command that needs the data or the base model of a preset asks
for it here; a second request with the same configuration reuses what is on disk.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from e2gan.config import Config
from e2gan.io import atomic_write_json


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


def ensure_data(cfg: Config, runs: str | Path = "runs", progress: bool = True,
                shard: str | None = None) -> tuple[Path, dict]:
    """Distil every base and new concept of ``cfg`` (resumable); returns the folder and a summary.

    ``shard`` ("i/n") distils only this worker's disjoint share; merge with `distill --merge-shards`.
    """
    from e2gan.distill import distill
    from e2gan.sources import load_sources
    from e2gan.teachers import load_concepts, load_teacher

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


def base_dir(cfg: Config, runs: str | Path = "runs") -> Path:
    return Path(runs) / f"base-{cfg.preset}-{cfg.key('data', 'model', 'disc', 'train')}"


def base_is_complete(run_dir: Path, cfg: Config) -> bool:
    train = run_dir / "train.json"
    if not (train.exists() and (run_dir / "generator.safetensors").exists()):
        return False
    summary = json.loads(train.read_text())
    return summary.get("gan_step", 0) >= cfg.train.steps or summary.get("stopped_by") == "time"


def ensure_base(cfg: Config, data_root: Path, runs: str | Path = "runs", progress: bool = True,
                run_dir: Path | None = None) -> tuple[Path, dict | None]:
    """Train (or resume, or reuse) the base model on the base concepts of ``cfg``.

    Returns the run directory and the training summary (None on non-zero DDP ranks).
    """
    import lightning as L

    from e2gan.nets.registry import concept_instructions, make_discriminator, make_generator, save_discriminator, save_generator
    from lightning_modules.training import fit, read_train_summary

    run_dir = Path(run_dir) if run_dir else base_dir(cfg, runs)
    if base_is_complete(run_dir, cfg):
        return run_dir, read_train_summary(run_dir)
    base, _ = concept_names(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "config.json", cfg.to_dict())
    L.seed_everything(cfg.train.seed, workers=True, verbose=False)
    generator = make_generator(cfg.model, n_concepts=len(base),
                               instructions=concept_instructions(cfg.data.concepts_file, base))
    discriminator = make_discriminator(cfg.disc)
    t0 = time.perf_counter()
    summary = fit(cfg, run_dir, data_root, base, {c: i for i, c in enumerate(base)}, generator,
                  discriminator, progress=progress)
    if summary is None:
        return run_dir, None
    summary["fit_wall_seconds"] = time.perf_counter() - t0
    save_generator(run_dir, generator, cfg.model, base, extra={"gan_step": summary["gan_step"],
                                                               "data": str(data_root), "kind": "base"})
    save_discriminator(run_dir, discriminator)
    atomic_write_json(run_dir / "train.json", summary)
    return run_dir, summary


def adapt_dir(cfg: Config, concept: str, runs: str | Path = "runs") -> Path:
    key = cfg.key("data", "model", "disc", "train", "adapt")
    return Path(runs) / f"adapt-{cfg.preset}-{concept}-{cfg.adapt.method}-s{cfg.adapt.seed}-{key}"


def training_subset(cfg: Config, data_root: Path, concept: str, base_run: Path | None) -> list[int] | None:
    """Indices of the training pairs to adapt on (None: all of them)."""
    import torch

    from e2gan.data import PairedDataset
    from e2gan.selection import select_indices, selection_features

    a = cfg.adapt
    if not a.train_pairs:
        return None
    ds = PairedDataset(data_root, [concept], "train", {concept: 0}, check_hashes=False)
    features = None
    if a.selection == "kmeans":
        sources = torch.stack([ds[i]["source"] for i in range(len(ds))])
        generator = None
        if a.selection_features == "encoder" and base_run is not None:
            from e2gan.nets.registry import load_generator

            generator = load_generator(base_run)[0]
        # encoder with no base (scratch / pix2pix): pixels at low resolution
        features = selection_features(a.selection_features, sources, generator)
    return select_indices(a.selection, a.train_pairs, len(ds), features, seed=a.seed)


def ensure_adapt(cfg: Config, concept: str, data_root: Path, base_run: Path | None,
                 runs: str | Path = "runs", progress: bool = True, run_dir: Path | None = None,
                 extra_callbacks: list | None = None) -> tuple[Path, dict | None]:
    """Adapt (or resume, or reuse) one new concept; evaluates it into the run's result.json."""
    from e2gan.metrics.evaluation import evaluate_run
    from e2gan.results import read_result
    from lightning_modules.adaptation import adapt

    run_dir = Path(run_dir) if run_dir else adapt_dir(cfg, concept, runs)
    if (run_dir / "result.json").exists() and (run_dir / "generator.safetensors").exists():
        return run_dir, read_result(run_dir)
    if cfg.adapt.method in ("scratch", "pix2pix"):
        base_run = None
    indices = training_subset(cfg, data_root, concept, base_run)
    summary = adapt(cfg, base_run, data_root, concept, run_dir, progress=progress, train_indices=indices,
                    extra_callbacks=extra_callbacks)
    if summary is None:
        return run_dir, None
    return run_dir, evaluate_run(run_dir, concepts=[concept])
