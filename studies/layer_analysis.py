"""Crucial-layer analysis: which layer groups of the base generator a new concept needs to change.

The paper places LoRA on five groups (first down-sampling, DS, transformer block, US, last
up-sampling) and says they were "identified", without the procedure. Two explicit procedures:

(a) **Per-group sensitivity.** LoRA on one group alone, every group at the same rank and for the
    same step budget (``adapt.steps``); the quality it reaches is compared with a reference that
    trains nothing: the base generator with the new concept's embedding initialised as the
    adaptation initialises it (``adapt.embedding_init``). ``gain`` is the improvement over that
    reference (positive = better, whatever the metric's direction); ``gain per 1k params`` divides
    it by the group's LoRA parameters. The reference is *untrained*: every cell also learns the
    concept embedding, so part of each gain is the embedding's and is shared by all groups. Read
    the quality ranking beside the per-parameter one.
(b) **Weight change of a full fine-tune.** Fine-tune the whole base on the concept for the same
    budget and measure, per group, ``sqrt(sum ΔW²) / sqrt(sum W²)`` over the group's parameters.

Every cell is an ordinary adaptation run (``e2gan.pipeline.adapt.ensure_adapt``), so an
interrupted analysis resumes where it stopped; several concepts and seeds are averaged.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Iterable

from e2gan.config import CRUCIAL, Config, apply_overrides, layer_group_names
from e2gan.errors import InputError
from e2gan.io import atomic_write_json, atomic_write_text

# Metric key in result.json -> higher is better.
METRICS = {"psnr": True, "ssim": True, "fid": False, "kid_mean": False, "perceptual": False}
METRIC_ALIASES = {"kid": "kid_mean", "lpips": "perceptual"}
METRIC_TITLES = {"psnr": "PSNR dB", "ssim": "SSIM", "fid": "FID", "kid_mean": "KID", "perceptual": "perceptual"}


def metric_direction(metric: str) -> tuple[str, bool]:
    """(result.json key, higher is better) for a metric name; bad names are an InputError."""
    key = METRIC_ALIASES.get(metric, metric)
    if key not in METRICS:
        raise InputError(f"metric '{metric}'", "--metric", f"one of {sorted(set(METRICS) | set(METRIC_ALIASES))}")
    return key, METRICS[key]


def parse_seeds(text: str | Iterable[int] | None, default: int) -> list[int]:
    """'0,1,2' -> [0, 1, 2]; None -> [default]."""
    if text is None:
        return [default]
    if isinstance(text, str):
        try:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        except ValueError:
            raise InputError(f"seeds {text!r}", "--seeds", "comma-separated integers, e.g. 0,1,2") from None
    else:
        seeds = [int(s) for s in text]
    if not seeds:
        raise InputError(f"seeds {text!r}", "--seeds", "at least one integer seed")
    return list(dict.fromkeys(seeds))


def cell_config(cfg: Config, **adapt: object) -> Config:
    """A copy of ``cfg`` with ``adapt`` keys overridden (validated)."""
    return apply_overrides(copy.deepcopy(cfg), {"adapt": adapt}, "study cell")


def cell_quality(result: dict, metric: str) -> float:
    """The metric of one run (mean over its concepts), NaN when missing."""
    value = result["metrics"]["mean_over_concepts"].get(metric)
    return float("nan") if value is None else float(value)


def study_key(cfg: Config, protocol: dict) -> str:
    """A short stable hash of everything that decides a study's cells and tables."""
    blob = json.dumps({"config": cfg.to_dict(), "protocol": protocol}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def default_out_dir(kind: str, cfg: Config, concepts: list[str], key: str, runs: str | Path) -> Path:
    return Path(runs) / f"{kind}-{cfg.preset}-{'+'.join(concepts)}-{key}"


def _mean(values: list[float]) -> float:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else float("nan")


def _sd(values: list[float]) -> float:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if len(vals) < 2:
        return float("nan")
    m = sum(vals) / len(vals)
    return math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))


# --------------------------------------------------------------------------- pure computations

def group_param_counts(generator, groups: Iterable[str]) -> dict[str, int]:
    """Parameters of each layer group of an E2GAN generator."""
    counts = {g: 0 for g in groups}
    for name, p in generator.named_parameters():
        head = name.split(".", 1)[0]
        if head in counts:
            counts[head] += p.numel()
    return counts


def relative_weight_change(base, tuned, groups: Iterable[str]) -> dict[str, float]:
    """Per group ``sqrt(sum ΔW²) / sqrt(sum W²)`` over the group's parameters (base as W).

    Parameters are matched by name; a group whose base weights are all zero gives NaN.
    """
    import torch

    tuned_params = dict(tuned.named_parameters())
    out = {}
    with torch.no_grad():
        for g in groups:
            num = den = 0.0
            found = False
            for name, w in base.named_parameters():
                if name.split(".", 1)[0] != g:
                    continue
                if name not in tuned_params or tuned_params[name].shape != w.shape:
                    raise InputError(f"parameter '{name}'", "weight-change analysis",
                                     "two generators of the same architecture")
                found = True
                num += float((tuned_params[name].double() - w.double()).pow(2).sum())
                den += float(w.double().pow(2).sum())
            if not found:
                raise InputError(f"layer group '{g}'", "weight-change analysis", "a group with parameters")
            out[g] = math.sqrt(num) / math.sqrt(den) if den > 0 else float("nan")
    return out


def ranked_table(groups: list[str], *, params: dict[str, int], lora_params: dict[str, int],
                 quality: dict[str, list[float]], gain: dict[str, list[float]],
                 weight_change: dict[str, list[float]] | None, higher_is_better: bool,
                 metric: str = "psnr", crucial: Iterable[str] = CRUCIAL):
    """The ranked crucial-layer table: one row per group, best gain per parameter first.

    ``quality`` and ``gain`` hold one value per (concept, seed) cell; ``gain`` is already signed so
    that positive means better. Ranks are 1 = most crucial (highest gain per parameter, best
    quality, largest relative weight change); missing values rank last.
    """
    import pandas as pd

    crucial = set(crucial)
    title = METRIC_TITLES.get(metric, metric)
    rows = []
    for g in groups:
        mean_gain = _mean(gain.get(g, []))
        lp = lora_params.get(g, 0)
        rows.append({
            "group": g,
            "paper LoRA group": "yes" if g in crucial else "no",
            "params": params.get(g, 0),
            "LoRA params": lp,
            title: _mean(quality.get(g, [])),
            f"{title} sd": _sd(quality.get(g, [])),
            "gain": mean_gain,
            "gain per 1k params": mean_gain / lp * 1000 if lp else float("nan"),
            "rel. weight change": _mean(weight_change.get(g, [])) if weight_change else float("nan"),
        })
    df = pd.DataFrame(rows).set_index("group")
    df["rank: gain/param"] = df["gain per 1k params"].rank(ascending=False, method="min", na_option="bottom")
    df["rank: quality"] = df[title].rank(ascending=not higher_is_better, method="min", na_option="bottom")
    df["rank: weight change"] = df["rel. weight change"].rank(ascending=False, method="min", na_option="bottom")
    for col in ("rank: gain/param", "rank: quality", "rank: weight change"):
        df[col] = df[col].astype(int)
    return df.sort_values(["rank: gain/param", "rank: quality"], kind="stable")


# --------------------------------------------------------------------------- training-backed cells

def untrained_reference(cfg: Config, concept: str, seed: int, data_root: Path, base_run: Path) -> dict:
    """Metrics of the base generator with the new concept's embedding initialised but not trained.

    Uses the adaptation's own ``build`` (same embedding initialisation and seed) and the shared
    ``predict``/``score`` path on the validation split, so it is measured exactly like every cell
    (the analysis chooses layers, so it never looks at the test split).
    """
    from e2gan.data.dataset import PairedDataset
    from e2gan.metrics.evaluation import predict, score
    from lightning_modules.adaptation import build

    ref_cfg = cell_config(cfg, method="full", seed=seed)
    parts = build(ref_cfg, base_run, data_root, concept)
    generator = parts["generator"].eval()
    dataset = PairedDataset(data_root, [concept], "val", {c: i for i, c in enumerate(parts["concepts"])})
    pred = predict(generator, dataset, batch_size=cfg.eval.batch_size)
    scores = score(pred, backbone=cfg.eval.backbone, perceptual=cfg.eval.perceptual,
                   reference="teacher targets, val split", clip=None, per_image=False)
    return {"metrics": {"mean_over_concepts": scores["mean_over_concepts"]}, "protocol": scores["protocol"],
            "embedding_init": parts["embedding_init"] or cfg.adapt.embedding_init}


def _cached_reference(path: Path, cfg, concept, seed, data_root, base_run) -> dict:
    if path.exists():
        return json.loads(path.read_text())
    ref = untrained_reference(cfg, concept, seed, data_root, base_run)
    atomic_write_json(path, ref)
    return ref


class LayerAnalysis:
    """What `analyze_layers` produced: the ranked table, the protocol, each cell, the files."""

    def __init__(self, table, protocol: dict, cells: list[dict], out_dir: Path, files: dict[str, Path]):
        self.table, self.protocol, self.cells, self.out_dir, self.files = table, protocol, cells, out_dir, files

    def summary(self) -> str:
        p, t = self.protocol, self.table
        by_gain = ">".join(t.index)
        by_change = ">".join(t.sort_values("rank: weight change", kind="stable").index) if p["weight_change"] else "–"
        return (f"crucial layers ({p['metric']}, {'higher' if p['higher_is_better'] else 'lower'} is better; "
                f"{len(p['concepts'])} concept(s) x {len(p['seeds'])} seed(s), rank {p['rank']}, "
                f"{p['steps']} steps): by gain/param {by_gain}; by weight change {by_change} -> {self.out_dir}")


def analyze_layers(cfg: Config, concepts: list[str], data_root: Path, base_run: Path,
                   runs: str | Path = "runs", *, rank: int | None = None, metric: str = "psnr",
                   seeds: Iterable[int] | None = None, groups: Iterable[str] | None = None,
                   weight_change: bool = True, out_dir: str | Path | None = None,
                   progress: bool = True) -> LayerAnalysis:
    """Run (or resume) the crucial-layer analysis and write table.csv, table.md and analysis.json.

    rank: LoRA rank for every group (default ``cfg.adapt.rank``); groups: which groups (default all
    of the generator's, ResNet blocks included); seeds: adaptation seeds (default ``cfg.adapt.seed``).
    """
    from tqdm import tqdm

    from e2gan.nets.registry import load_generator
    from e2gan.nets.lora import lora_param_count
    from e2gan.markdown_table import to_markdown
    from e2gan.pipeline.adapt import ensure_adapt
    from e2gan.pipeline.evaluate import val_quality

    if not concepts:
        raise InputError("no concept", "--concept", "at least one new concept")
    metric_key, higher = metric_direction(metric)
    valid = layer_group_names(cfg.model)
    groups = list(groups) if groups else list(valid)
    unknown = [g for g in groups if g not in valid]
    if unknown:
        raise InputError(f"unknown layer group(s) {unknown}", "--groups", f"some of {list(valid)}")
    rank = int(rank if rank is not None else cfg.adapt.rank)
    if rank <= 0:
        raise InputError(f"rank {rank}", "--rank", "a positive integer")
    seeds = parse_seeds(seeds, cfg.adapt.seed)
    concepts = list(dict.fromkeys(concepts))
    protocol = {
        "study": "crucial-layer analysis", "metric": metric_key, "higher_is_better": higher,
        "steps": cfg.adapt.steps, "max_time_s": cfg.adapt.max_time_s, "rank": rank,
        "alpha_ratio": cfg.adapt.alpha_ratio, "lora_lr": cfg.adapt.lr, "full_lr": cfg.train.lr_g,
        "embedding_init": cfg.adapt.embedding_init, "disc": cfg.adapt.disc, "concepts": concepts,
        "seeds": seeds, "groups": groups, "weight_change": weight_change,
        "reference": "untrained: base generator + new concept embedding initialised by adapt.embedding_init, "
                     "nothing trained (validation split, same predict/score path)",
        "split": "every quality and gain here is on the validation split (the analysis chooses layers); "
                 "each cell's result.json keeps its test-split numbers",
        "gain": f"per (concept, seed): {'quality - reference' if higher else 'reference - quality'} "
                "(positive = better), then the mean",
        "weight_change_measure": "full fine-tune, same steps: sqrt(sum dW^2)/sqrt(sum W^2) over the group's parameters",
        "averaging": "mean over concepts and seeds; sd over the same cells",
    }
    key = study_key(cfg, {k: protocol[k] for k in ("metric", "rank", "concepts", "seeds", "groups", "weight_change")})
    out = Path(out_dir) if out_dir else default_out_dir("analysis", cfg, concepts, key, runs)
    out.mkdir(parents=True, exist_ok=True)
    protocol.update(base=str(base_run), key=key)

    base, _ = load_generator(base_run)
    params = group_param_counts(base, groups)
    lora_params = {g: lora_param_count(base, {g: rank}) for g in groups}
    empty = [g for g, n in lora_params.items() if n == 0]
    if empty:
        raise InputError(f"group(s) {empty} have no Conv2d/Linear layer", "--groups", "groups LoRA can target")

    jobs = [(c, s, g) for c in concepts for s in seeds for g in groups]
    if weight_change:
        jobs += [(c, s, None) for c in concepts for s in seeds]
    quality: dict[str, list[float]] = {g: [] for g in groups}
    gain: dict[str, list[float]] = {g: [] for g in groups}
    change: dict[str, list[float]] = {g: [] for g in groups}
    cells, references, full_quality = [], {}, []
    sign = 1.0 if higher else -1.0
    t0 = time.perf_counter()
    bar = tqdm(jobs, desc="analyze-layers", unit="cell", disable=not progress)
    for concept, seed, group in bar:
        if (concept, seed) not in references:
            ref = _cached_reference(out / "reference" / f"{concept}-s{seed}-val.json", cfg, concept, seed,
                                    data_root, base_run)
            references[(concept, seed)] = cell_quality(ref, metric_key)
        ref_q = references[(concept, seed)]
        if group is None:
            bar.set_postfix_str(f"{concept} s{seed} full fine-tune")
            run_dir, result = ensure_adapt(cell_config(cfg, method="full", seed=seed), concept, data_root,
                                           base_run, runs, progress=progress)
            tuned, _ = load_generator(run_dir)
            ratios = relative_weight_change(base, tuned, groups)
            for g, v in ratios.items():
                change[g].append(v)
            q = val_quality(run_dir, [concept], metric_key, data_root)
            full_quality.append(q)
            cells.append({"concept": concept, "seed": seed, "method": "full", "run": str(run_dir), "quality": q,
                          "gain": sign * (q - ref_q), "weight_change": ratios,
                          "params_trainable": result["cost"]["params_trainable"]})
            continue
        bar.set_postfix_str(f"{concept} s{seed} LoRA {group}")
        run_dir, result = ensure_adapt(cell_config(cfg, method="lora", groups=[group], ranks={}, rank=rank, seed=seed),
                                       concept, data_root, base_run, runs, progress=progress)
        q = val_quality(run_dir, [concept], metric_key, data_root)
        quality[group].append(q)
        gain[group].append(sign * (q - ref_q))
        cells.append({"concept": concept, "seed": seed, "method": "lora", "group": group, "rank": rank,
                      "run": str(run_dir), "quality": q, "gain": sign * (q - ref_q),
                      "quality_test": cell_quality(result, metric_key),
                      "params_trainable": result["cost"]["params_trainable"], "lora_params": lora_params[group],
                      "backbone": result["protocol"].get("backbone", {}).get("name")})
    bar.close()

    table = ranked_table(groups, params=params, lora_params=lora_params, quality=quality, gain=gain,
                         weight_change=change if weight_change else None, higher_is_better=higher,
                         metric=metric_key)
    protocol.update(reference_quality=_mean(list(references.values())),
                    full_finetune_quality=_mean(full_quality) if weight_change else None,
                    backbone=next((c.get("backbone") for c in cells if c.get("backbone")), None),
                    seconds=time.perf_counter() - t0)
    files = _write(out, table, protocol, cells, to_markdown)
    return LayerAnalysis(table, protocol, cells, out, files)


def _write(out: Path, table, protocol: dict, cells: list[dict], to_markdown) -> dict[str, Path]:
    title = METRIC_TITLES.get(protocol["metric"], protocol["metric"])
    decimals = {"params": 0, "LoRA params": 0, title: 3, f"{title} sd": 3, "gain": 3, "gain per 1k params": 4,
                "rel. weight change": 4, "rank: gain/param": 0, "rank: quality": 0, "rank: weight change": 0}
    md = (f"# Crucial-layer analysis ({', '.join(protocol['concepts'])})\n\n"
          f"Metric {protocol['metric']} ({'higher' if protocol['higher_is_better'] else 'lower'} is better), "
          f"LoRA rank {protocol['rank']} on one group at a time, {protocol['steps']} steps, "
          f"seeds {protocol['seeds']}, backbone {protocol.get('backbone')}.\n"
          f"Reference (untrained, embedding initialised '{protocol['embedding_init']}'): "
          f"{protocol['reference_quality']:.3f}."
          + (f" Full fine-tune: {protocol['full_finetune_quality']:.3f}." if protocol["weight_change"] else "")
          + "\n\n" + to_markdown(table, decimals))
    files = {"csv": out / "table.csv", "markdown": out / "table.md", "json": out / "analysis.json"}
    atomic_write_text(files["csv"], table.to_csv())
    atomic_write_text(files["markdown"], md)
    atomic_write_json(files["json"], {"protocol": protocol, "cells": cells,
                                      "table": json.loads(table.reset_index().to_json(orient="records"))})
    return files
