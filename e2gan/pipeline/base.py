"""Stage 2, the base model: trained once on a configuration's base concepts, resumed or reused."""
from __future__ import annotations

import json
import time
from pathlib import Path

from e2gan.config import Config
from e2gan.io import atomic_write_json


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

    from e2gan.data.concepts import concept_names
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
