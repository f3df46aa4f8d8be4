"""Evaluation: the one shared ``predict()`` path, then quality metrics per concept and overall.

Validation, reports and export checks all call ``predict`` so a number always comes from the same
pixels. Every metric block carries the protocol it was measured with.
"""
from __future__ import annotations

import math
from collections import defaultdict

import torch
from torch import nn
from torch.utils.data import DataLoader

from e2gan.data import PairedDataset, to_uint8


@torch.no_grad()
def predict(generator: nn.Module, dataset: PairedDataset, batch_size: int = 32,
            device: str | torch.device = "cpu") -> dict:
    """Run ``generator`` over ``dataset`` in order: uint8 sources, targets and outputs."""
    generator = generator.to(device).eval()
    srcs, tgts, outs = [], [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        src = batch["source"].to(device)
        out = generator(src, batch["concept_id"].to(device))
        srcs.append(to_uint8(batch["source"]))
        tgts.append(to_uint8(batch["target"]))
        outs.append(to_uint8(out.cpu()))
    return {
        "sources": torch.cat(srcs), "targets": torch.cat(tgts), "outputs": torch.cat(outs),
        "concepts": [p.concept for p in dataset.pairs], "source_ids": [p.source_id for p in dataset.pairs],
    }


def _set_psnr_uint8(a: torch.Tensor, b: torch.Tensor) -> float:
    from e2gan.metrics.quality import set_psnr

    return set_psnr(a.float() / 255.0, b.float() / 255.0)


def score(pred: dict, *, backbone: str = "effnet-lite0", perceptual: str = "auto",
          reference: str = "teacher targets, test split", device: str = "cpu") -> dict:
    """Metrics per concept and overall (images pooled over concepts), plus the identity baseline.

    ``identity_psnr`` is the PSNR of the unedited source against the target: a model that has
    learnt nothing scores about that, so it is the floor to beat.
    """
    from e2gan.metrics.quality import evaluate_images

    by_concept: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(pred["concepts"]):
        by_concept[c].append(i)
    per_concept, protocol = {}, None
    for concept, idx in sorted(by_concept.items()):
        ix = torch.tensor(idx)
        res = evaluate_images(pred["outputs"][ix], pred["targets"][ix], backbone=backbone,
                              perceptual=perceptual, reference=reference, device=device)
        m = dict(res["metrics"])
        m["identity_psnr"] = _set_psnr_uint8(pred["sources"][ix], pred["targets"][ix])
        m["n"] = len(idx)
        per_concept[concept] = m
        protocol = res["protocol"]
    keys = [k for k in next(iter(per_concept.values())) if k != "n"]
    mean = {k: _finite_mean([m[k] for m in per_concept.values()]) for k in keys}
    protocol = dict(protocol or {})
    protocol.update(n=len(pred["concepts"]), n_per_concept={c: len(v) for c, v in by_concept.items()},
                    averaging="mean over concepts of per-concept metrics (FID/KID per concept)")
    return {"mean_over_concepts": mean, "per_concept": per_concept, "protocol": protocol}


def _finite_mean(values: list[float]) -> float:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(vals) / len(vals) if vals else float("nan")


def run_cost(generator: nn.Module, cfg, train_summary: dict | None, n_concepts_trained: int) -> dict:
    """Training cost of a run: wall time (evaluation excluded), counted FLOPs, params, bytes, memory."""
    from e2gan.metrics.cost import bytes_of_tensors, count_params
    from e2gan.metrics.train_cost import gan_step_flops
    from e2gan.models import make_discriminator

    disc = make_discriminator(cfg.disc)
    s = train_summary or {}
    flops_step = s.get("flops_per_step") or gan_step_flops(generator, disc, cfg.train.batch_size,
                                                           cfg.data.resolution, cfg.train.lambda_l1)
    steps, world = int(s.get("gan_step", 0)), int(s.get("world_size", 1))
    # Adaptation records what actually trained (LoRA, one embedding row) and what a concept stores;
    # a base run trains and stores its whole generator.
    return {
        "train_seconds": s.get("train_seconds"),
        "steps": steps,
        "images_seen": s.get("images_seen"),
        "batch_size": cfg.train.batch_size,
        "world_size": world,
        "flops_per_step": flops_step,
        "train_flops": flops_step * steps * world,
        "flops_counter": "torch.utils.flop_counter (G+D forward and backward, one batch)",
        "params_total": count_params(generator),
        "params_trainable": s.get("params_trainable", count_params(generator)),
        "params_discriminator": count_params(disc),
        "params_discriminator_trainable": s.get("params_discriminator_trainable", count_params(disc)),
        "bytes_stored": s.get("bytes_stored", bytes_of_tensors(generator.state_dict())),
        "concepts_trained": n_concepts_trained,
        "peak_memory": s.get("peak_memory"),
        "stopped_by": s.get("stopped_by"),
    }


def evaluate_run(run_dir, concepts: list[str] | None = None, split: str = "test",
                 device: str = "cpu", data_root=None, progress: bool = True) -> dict:
    """Evaluate a finished run on ``split``: writes ``result.json`` and ``samples.png`` in the run."""
    import json
    from pathlib import Path

    from e2gan.config import apply_overrides, Config
    from e2gan.env import environment
    from e2gan.errors import InputError
    from e2gan.models import load_generator
    from e2gan.reporting.grids import save_triplet_grid
    from e2gan.results import make_result, write_result

    run_dir = Path(run_dir)
    generator, meta = load_generator(run_dir)
    cfg_path = run_dir / "config.json"
    cfg = apply_overrides(Config(preset=json.loads(cfg_path.read_text()).get("preset", "tiny")),
                          json.loads(cfg_path.read_text()), str(cfg_path))
    trained = meta["concepts"]
    concepts = concepts or trained
    unknown = [c for c in concepts if c not in trained]
    if unknown:
        raise InputError(f"concept(s) {unknown} not trained in this run", str(run_dir / "model.json"),
                         f"one of {trained}")
    root = Path(data_root or meta.get("data", ""))
    dataset = PairedDataset(root, concepts, split, {c: i for i, c in enumerate(trained)})
    pred = predict(generator, dataset, batch_size=cfg.eval.batch_size, device=device)
    scores = score(pred, backbone=cfg.eval.backbone, perceptual=cfg.eval.perceptual,
                   reference=f"teacher targets, {split} split", device=device)
    train_summary = json.loads((run_dir / "train.json").read_text()) if (run_dir / "train.json").exists() else None
    protocol = dict(scores["protocol"], split=split, resolution=cfg.data.resolution,
                    checkpoint="last", data=str(root), preset=cfg.preset)
    result = make_result(run=run_dir.name, kind=meta.get("kind", "base"), metrics={k: scores[k] for k in ("mean_over_concepts", "per_concept")},
                         protocol=protocol, cost=run_cost(generator, cfg, train_summary, len(trained)),
                         config=cfg.to_dict(), env=environment(device, cfg.train.seed), concepts=concepts,
                         **{k: meta[k] for k in ("method", "base") if k in meta})
    write_result(run_dir, result)
    save_triplet_grid(_sample_rows(pred), run_dir / "samples.png", header=("source", "teacher", "model"),
                      row_labels=tuple(_sample_labels(pred)), label_px=90)
    return result


def _sample_indices(pred: dict, per_concept: int = 2) -> list[int]:
    seen: dict[str, int] = defaultdict(int)
    out = []
    for i, c in enumerate(pred["concepts"]):
        if seen[c] < per_concept:
            seen[c] += 1
            out.append(i)
    return out


def _sample_rows(pred: dict) -> torch.Tensor:
    ix = torch.tensor(_sample_indices(pred))
    return torch.stack([pred["sources"][ix], pred["targets"][ix], pred["outputs"][ix]], 1)


def _sample_labels(pred: dict) -> list[str]:
    return [pred["concepts"][i] for i in _sample_indices(pred)]
