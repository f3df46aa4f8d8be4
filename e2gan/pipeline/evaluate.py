"""Stage 4, evaluation, cached: a run's test-split result.json and its validation-split scores.

``result.json`` holds the test split's numbers, the ones a report shows. Choosing ranks, crucial
layers or NSGA-II trade-offs by those numbers would make them optimistic, so studies choose on the
validation split (disjoint from test by photograph) instead. ``val_result`` scores a run's final
generator on the val split through the same ``predict``/``score`` path as ``evaluate_run`` and
caches the scores as ``result-val.json`` beside ``result.json`` (never over it), keyed by the
generator file's hash so a retrained run is scored again.
"""
from __future__ import annotations

import json
from pathlib import Path

from e2gan.io import atomic_write_json, sha256_file

VAL_FILE = "result-val.json"


def ensure_result(run_dir: str | Path, concepts: list[str] | None = None) -> dict:
    """The run's test-split result: read from its result.json, or evaluated into it when missing."""
    from e2gan.metrics.evaluation import evaluate_run
    from e2gan.results import read_result

    run_dir = Path(run_dir)
    if (run_dir / "result.json").exists():
        return read_result(run_dir)
    return evaluate_run(run_dir, concepts=concepts)


def val_result(run_dir: str | Path, concepts: list[str], data_root: str | Path | None = None) -> dict:
    """``{"metrics": {"mean_over_concepts", "per_concept"}, "protocol": ...}`` of ``run_dir`` on the
    val split of ``concepts`` (cached)."""
    from e2gan.config import Config, apply_overrides
    from e2gan.data.dataset import PairedDataset
    from e2gan.metrics.evaluation import FEATURE_CACHE, predict, score
    from e2gan.nets.registry import load_generator

    run_dir = Path(run_dir)
    path = run_dir / VAL_FILE
    weights = sha256_file(run_dir / "generator.safetensors")
    if path.exists():
        cached = json.loads(path.read_text())
        if cached.get("generator_sha256") == weights and cached.get("concepts") == list(concepts):
            return cached
    raw = json.loads((run_dir / "config.json").read_text())
    cfg = apply_overrides(Config(preset=raw.get("preset", "tiny")), raw, str(run_dir / "config.json"))
    generator, meta = load_generator(run_dir)
    root = Path(data_root or meta.get("data", ""))
    dataset = PairedDataset(root, list(concepts), "val", {c: i for i, c in enumerate(meta["concepts"])},
                            check_hashes=False)
    pred = predict(generator, dataset, batch_size=cfg.eval.batch_size)
    # No CLIP and no per-image extras: a choice needs the metric, not the report's extras.
    # (the targets' features come from the same cache beside the runs that evaluate_run uses)
    scores = score(pred, backbone=cfg.eval.backbone, perceptual=cfg.eval.perceptual,
                   reference="teacher targets, val split", clip=None, per_image=False,
                   feature_cache=run_dir.parent / FEATURE_CACHE)
    result = {"concepts": list(concepts), "generator_sha256": weights, "split": "val",
              "metrics": {k: scores[k] for k in ("mean_over_concepts", "per_concept")},
              "protocol": dict(scores["protocol"], split="val")}
    atomic_write_json(path, result)
    return result


def val_quality(run_dir: str | Path, concepts: list[str], metric: str, data_root: str | Path | None = None) -> float:
    """One metric of ``val_result`` (mean over concepts), NaN when missing."""
    value = val_result(run_dir, concepts, data_root)["metrics"]["mean_over_concepts"].get(metric)
    return float("nan") if value is None else float(value)
