"""What every command shares: the config flags and how they override the preset (the one map from a
flag to its config key), the DDP worker-rank test, concept and budget checks, which specs and
report folders a command means."""
from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=None, help="tiny | small | paper (default: the config's, else tiny)")
    p.add_argument("--config", default=None, help="TOML file overriding the preset")
    p.add_argument("--sources", default=None, help="folder of source images (default: built-in photos)")
    p.add_argument("--teacher", default=None,
                   help="procedural | diffusers:<hub id or folder>[?steps=20&guidance_scale=7.5&...] | module:callable")
    p.add_argument("--concepts-file", default=None, help="procedural | ffhq | scenery | a concepts TOML file")
    p.add_argument("--resolution", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="training steps (one G+D update each)")
    p.add_argument("--max-time", type=float, default=None, help="training wall-time budget in seconds")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--accelerator", default=None, help="cpu | gpu | auto")
    p.add_argument("--devices", type=int, default=None, help="number of devices (processes under DDP)")
    p.add_argument("--strategy", default=None, help="auto | ddp")
    p.add_argument("--precision", default=None, help="32-true | 16-mixed (GPU) | bf16-mixed (GPU, or a CPU with native bf16)")
    p.add_argument("--runs", default="runs", help="folder for runs, data and caches (default: runs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


# Each configuration flag: (attribute, section, key); "budget" is config_from_args' budget_section.
FLAG_FIELDS = (("sources", "data", "sources"), ("teacher", "data", "teacher"),
               ("concepts_file", "data", "concepts_file"), ("resolution", "data", "resolution"),
               ("steps", "budget", "steps"), ("max_time", "budget", "max_time_s"),
               ("batch_size", "train", "batch_size"), ("seed", "train", "seed"),
               ("accelerator", "train", "accelerator"), ("devices", "train", "devices"),
               ("strategy", "train", "strategy"), ("precision", "budget", "precision"),
               ("method", "adapt", "method"), ("rank", "adapt", "rank"), ("alpha_ratio", "adapt", "alpha_ratio"),
               ("lr", "adapt", "lr"), ("disc", "adapt", "disc"), ("embedding_init", "adapt", "embedding_init"),
               ("train_pairs", "adapt", "train_pairs"), ("selection", "adapt", "selection"),
               ("selection_features", "adapt", "selection_features"), ("adapt_seed", "adapt", "seed"))


def refuse_config_flags(args, command: str) -> None:
    """One line for a configuration flag that ``command`` would apply to its first stages only.

    reproduce's studies build each cell's configuration from the preset, the --config file and the
    spec: a flag would reach the data and the base model but not the cells, which would then train
    (and be compared with) a base of their own.
    """
    from e2gan.errors import InputError

    given = [attr for attr, _, _ in FLAG_FIELDS if getattr(args, attr, None) is not None]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise InputError(f"{flag} with {command}", flag,
                         f"the setting in a --config TOML file (e.g. [train] precision = 'bf16-mixed'), "
                         f"which every stage and study cell of {command} reads")


def config_from_args(args, budget_section: str = "train"):
    """Preset, then --config, then flags. ``budget_section``: where --steps/--max-time go."""
    from e2gan.config import apply_overrides
    from e2gan.presets import load_config

    cfg = load_config(args.config, args.preset)
    over: dict[str, dict] = {"data": {}, "train": {}, "adapt": {}}
    for attr, section, key in FLAG_FIELDS:
        section = budget_section if section == "budget" else section
        value = getattr(args, attr, None)
        if value is not None:
            over[section][key] = value
    if getattr(args, "max_time", None) is not None and getattr(args, "steps", None) is None:
        over[budget_section]["steps"] = 10 ** 9  # --max-time alone: the time budget, not the preset's steps, stops it
    if getattr(args, "groups", None):
        over["adapt"]["groups"] = [g.strip() for g in args.groups.split(",") if g.strip()]
    if getattr(args, "ranks", None):
        from e2gan.nets.lora import parse_ranks
        from e2gan.config import layer_group_names

        groups = over["adapt"].get("groups", cfg.adapt.groups)
        over["adapt"]["ranks"] = parse_ranks(groups, args.ranks, layer_group_names(cfg.model))
        over["adapt"]["groups"] = list(over["adapt"]["ranks"])
    return apply_overrides(cfg, over, "command line")


def is_worker_rank() -> bool:
    """True in the extra processes that DDP's launcher starts by re-running this command."""
    return int(os.environ.get("LOCAL_RANK", "0")) > 0 or int(os.environ.get("NODE_RANK", "0")) > 0


def check_new_concepts(cfg, concepts: list[str]) -> None:
    """Every name must be a new concept of the configuration's concepts file (nothing runs before)."""
    from e2gan.errors import InputError
    from e2gan.data.concepts import concept_names

    new = concept_names(cfg)[1]
    unknown = [c for c in concepts if c not in new]
    if unknown:
        raise InputError(f"concept(s) {unknown}", "--concept", f"new concepts of this configuration: {new}")


def data_and_base(args, cfg):
    """The distilled data and the base run a per-concept study adapts from (trained if missing).

    Checks the concepts and seeds first, so bad input fails before anything is trained.
    """
    from studies.layer_analysis import parse_seeds
    from e2gan.pipeline.base import ensure_base
    from e2gan.pipeline.data import ensure_data

    parse_seeds(args.seeds, cfg.adapt.seed)
    check_new_concepts(cfg, args.concept)
    progress = not args.no_progress
    data, _ = ensure_data(cfg, args.runs, progress=progress)
    base = Path(args.base) if args.base else ensure_base(cfg, data, args.runs, progress=progress)[0]
    return data, base


def param_count(text: str) -> int:
    """'120000', '120k' or '0.12M' -> a parameter count."""
    from e2gan.errors import InputError

    t = str(text).strip().lower()
    scale = {"k": 1e3, "m": 1e6}.get(t[-1:], 1)
    try:
        value = float(t[:-1] if scale != 1 else t) * scale
    except ValueError:
        raise InputError(f"budget {text!r}", "--budget", "a parameter count such as 90000, 90k or 0.09M") from None
    if value <= 0:
        raise InputError(f"budget {text!r}", "--budget", "a positive parameter count")
    return int(round(value))


def specs_from_args(args):
    from studies.spec import builtin_specs, load_spec

    every = [p.stem for p in builtin_specs()]
    if args.specs in (None, "", "all"):
        names = every
    elif args.specs == "none":  # the base model and its report only
        names = []
    else:
        names = [n.strip() for n in args.specs.split(",") if n.strip()]
    return [load_spec(name).with_user_config(args.config) for name in names]


def reports_root(args) -> Path:
    """Where this run's reports go: under the runs folder unless --reports says otherwise, so the
    committed reference report (reports/<preset>/) is never written over by default."""
    return Path(args.reports) if args.reports else Path(args.runs) / "reports"


def reference_root(args) -> Path | None:
    """The committed reference reports: --reference, else the checkout's own reports/ folder."""
    if args.reference:
        return Path(args.reference)
    found = Path(__file__).resolve().parents[2] / "reports"
    return found if found.is_dir() else None
