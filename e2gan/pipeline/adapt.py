"""Stage 3, adaptation: one new concept's run, trained (or resumed, or reused) and evaluated.

The caching of "adapt" lives here; the LoRA surgery is in ``e2gan.nets.lora`` and the training
loop in ``lightning_modules.adaptation``.
"""
from __future__ import annotations

from pathlib import Path

from e2gan.config import Config


def adapt_dir(cfg: Config, concept: str, runs: str | Path = "runs") -> Path:
    key = _keyed_config(cfg).key("data", "model", "disc", "train", "adapt")
    return Path(runs) / f"adapt-{cfg.preset}-{concept}-{cfg.adapt.method}-s{cfg.adapt.seed}-{key}"


# The train fields an adaptation replaces with its own (``training_config``): they reach a run only
# through its base model.
BASE_ONLY_TRAIN_FIELDS = ("steps", "max_time_s", "seed", "lr_d")


def _keyed_config(cfg: Config) -> Config:
    """The config a run's name is hashed from. A run without a base (scratch, pix2pix) is keyed with
    the base-only train fields at the preset's values: two studies whose bases train for different
    budgets then share their scratch runs instead of training identical copies, and the keys of runs
    at the preset's budget stay what they were."""
    if cfg.adapt.method in ("lora", "full"):
        return cfg
    import copy

    from e2gan.config import apply_overrides
    from e2gan.presets import get_preset

    preset = get_preset(cfg.preset).train
    return apply_overrides(copy.deepcopy(cfg), {"train": {f: getattr(preset, f) for f in BASE_ONLY_TRAIN_FIELDS}}, "run key")


def training_subset(cfg: Config, data_root: Path, concept: str, base_run: Path | None) -> list[int] | None:
    """Indices of the training pairs to adapt on (None: all of them)."""
    import torch

    from e2gan.data.dataset import PairedDataset
    from e2gan.data.selection import select_indices
    from e2gan.metrics.selection_features import selection_features

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


def adapt_is_done(run_dir: str | Path) -> bool:
    """A finished run, which ``ensure_adapt`` reuses instead of training: its weights and result."""
    return (Path(run_dir) / "result.json").exists() and (Path(run_dir) / "generator.safetensors").exists()


def ensure_adapt(cfg: Config, concept: str, data_root: Path, base_run: Path | None,
                 runs: str | Path = "runs", progress: bool = True, run_dir: Path | None = None,
                 extra_callbacks: list | None = None) -> tuple[Path, dict | None]:
    """Adapt (or resume, or reuse) one new concept; evaluates it into the run's result.json."""
    from e2gan.metrics.evaluation import evaluate_run
    from e2gan.results import read_result
    from lightning_modules.adaptation import adapt

    run_dir = Path(run_dir) if run_dir else adapt_dir(cfg, concept, runs)
    if adapt_is_done(run_dir):
        return run_dir, read_result(run_dir)
    if cfg.adapt.method in ("scratch", "pix2pix"):
        base_run = None
    indices = training_subset(cfg, data_root, concept, base_run)
    summary = adapt(cfg, base_run, data_root, concept, run_dir, progress=progress, train_indices=indices,
                    extra_callbacks=extra_callbacks)
    if summary is None:
        return run_dir, None
    return run_dir, evaluate_run(run_dir, concepts=[concept])
