"""Evaluation: the one shared ``predict()`` path, then quality metrics per concept and overall.

Validation, reports and export checks all call ``predict`` so a number always comes from the same
pixels. Every metric block carries the protocol it was measured with.
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from e2gan.data.dataset import PairedDataset, to_uint8
from e2gan.data.manifest import instructions_in_manifest


@torch.no_grad()
def predict(generator: nn.Module, dataset: PairedDataset, batch_size: int = 32,
            device: str | torch.device = "cpu") -> dict:
    """Run ``generator`` over ``dataset`` in order: uint8 sources, targets and outputs."""
    generator = generator.to(device).eval()
    srcs, tgts, outs = [], [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        src = batch["source"].to(device).contiguous(memory_format=torch.channels_last)  # as training runs
        out = generator(src, batch["concept_id"].to(device))
        srcs.append(to_uint8(batch["source"]))
        tgts.append(to_uint8(batch["target"]))
        outs.append(to_uint8(out.cpu()))
    return {
        "sources": torch.cat(srcs), "targets": torch.cat(tgts), "outputs": torch.cat(outs),
        "concepts": [p.concept for p in dataset.pairs], "source_ids": [p.source_id for p in dataset.pairs],
        "instructions": instructions_in_manifest(dataset.root, {p.concept for p in dataset.pairs}),
    }


def _set_psnr_uint8(a: torch.Tensor, b: torch.Tensor) -> float:
    from e2gan.metrics.quality import set_psnr

    return set_psnr(a.float() / 255.0, b.float() / 255.0)


def score(pred: dict, *, backbone: str = "effnet-lite0", perceptual: str = "auto",
          reference: str = "teacher targets, test split", device: str = "cpu", clip="auto",
          per_image: bool = False, feature_cache=None) -> dict:
    """Metrics per concept and overall (images pooled over concepts), plus the identity baseline.

    ``identity_psnr`` is the PSNR of the unedited source against the target: a model that has
    learnt nothing scores about that, so it is the floor to beat.

    ``clip``: "auto" looks for local CLIP weights (``e2gan.metrics.clip.find_clip``) and adds
    ``clip_score`` and ``clip_directional`` per concept when found; a ``ClipScorer`` uses that
    one; None skips them. ``protocol["clip"]`` says which model and texts, or why not.

    per_image: also FID∞, the floors and the collapse check per concept, and the per-image
    arrays (``e2gan.metrics.per_image``) under ``"per_image"`` and ``"collapse"``. feature_cache: a
    folder for the targets' and sources' backbone features, shared by every run of a concept.
    """
    from e2gan.metrics.features import get_backbone
    from e2gan.metrics.per_image import FeatureCache, concept_extras
    from e2gan.metrics.clip import SOURCE_CAPTION, get_scorer
    from e2gan.metrics.quality import evaluate_images

    if clip == "auto":
        clip, clip_note = get_scorer(device)
    else:
        clip_note = "off (not requested)" if clip is None else ""
    instructions = pred.get("instructions") or {}

    by_concept: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(pred["concepts"]):
        by_concept[c].append(i)
    per_concept, protocol = {}, None
    arrays: dict[str, list] = defaultdict(list)
    collapse, order = {}, []
    extractor = get_backbone(backbone, device) if per_image or feature_cache else None
    cache = FeatureCache(feature_cache)
    for concept, idx in sorted(by_concept.items()):
        ix = torch.tensor(idx)
        keep: dict = {}
        tf = cache(pred["targets"][ix], extractor) if feature_cache else None
        res = evaluate_images(pred["outputs"][ix], pred["targets"][ix], backbone=backbone,
                              perceptual=perceptual, reference=reference, device=device, keep=keep,
                              target_features=tf)
        m = dict(res["metrics"])
        if per_image:
            extra, arr = concept_extras(pred["outputs"][ix], pred["targets"][ix], pred["sources"][ix], keep, extractor,
                                        cache=cache)
            collapse[concept] = extra.pop("collapse")
            m.update(extra)
            for k, v in arr.items():
                arrays[k].append(v)
            order += idx
        m["identity_psnr"] = _set_psnr_uint8(pred["sources"][ix], pred["targets"][ix])
        if clip is not None and concept in instructions:
            m.update(clip.score(pred["outputs"][ix], pred["sources"][ix], instructions[concept], SOURCE_CAPTION))
        m["n"] = len(idx)
        per_concept[concept] = m
        protocol = res["protocol"]
    keys = [k for k in dict.fromkeys(k for m in per_concept.values() for k in m) if k != "n"]
    # A metric no concept measured (KID's spread from one subset) stays None over concepts too.
    mean = {k: _finite_mean(vals) if any(v is not None for v in vals) else None
            for k in keys for vals in [[m.get(k) for m in per_concept.values()]]}
    protocol = dict(protocol or {})
    protocol.update(n=len(pred["concepts"]), n_per_concept={c: len(v) for c, v in by_concept.items()},
                    averaging="mean over concepts of per-concept metrics (FID/KID per concept)")
    if clip is None:
        protocol["clip"] = clip_note
    else:
        texts = {c: {"edited": instructions[c], "source": SOURCE_CAPTION} for c in sorted(by_concept) if c in instructions}
        protocol["clip"] = dict(clip.describe(), texts=texts,
                                missing_instruction=sorted(c for c in by_concept if c not in instructions))
    out = {"mean_over_concepts": mean, "per_concept": per_concept, "protocol": protocol}
    if per_image:
        import numpy as np

        out["per_image"] = {"concept": [pred["concepts"][i] for i in order],
                            "source_id": [str(pred["source_ids"][i]) for i in order],
                            **{k: np.concatenate(v) for k, v in arrays.items()}}
        out["collapse"] = {"collapsed": any(v["collapsed"] for v in collapse.values()),
                           "by": [f"{c}: {b}" for c, v in collapse.items() for b in v["by"]],
                           "per_concept": collapse,
                           "across_seeds": "checked at the study level (same outputs across seeds)"}
        protocol["fid_inf"] = ("least squares FID_n = FID_inf + k/n over random paired subsets of "
                               "20%..100% of N (Chong & Forsyth 2020)")
        protocol["floors"] = ("floor_identity_*: unedited sources vs targets; floor_halves_*: two disjoint "
                              "halves of the targets (N/2 each)")
    return out


def _finite_mean(values: list[float]) -> float:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(vals) / len(vals) if vals else float("nan")


def run_cost(generator: nn.Module, cfg, train_summary: dict | None, n_concepts_trained: int) -> dict:
    """Training cost of a run: wall time (evaluation excluded), counted FLOPs, params, bytes, memory."""
    from e2gan.metrics.cost import bytes_of_tensors
    from e2gan.nets.params import count_params
    from e2gan.metrics.train_cost import gan_step_flops
    from e2gan.nets.registry import make_discriminator

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
        # The learning curve (val split) up to this run's or checkpoint's step, FLOPs counted like train_flops.
        "curve": [{**p, "flops": p.get("flops", p["step"] * flops_step * world)}
                  for p in s.get("curve") or [] if p["step"] <= steps],
    }


def resolve_target(target) -> tuple:
    """(run directory, checkpoint file or None) for a run directory or a ``.ckpt`` inside it.

    A checkpoint's run is the folder above ``checkpoints/`` (or the checkpoint's own folder).
    """
    from e2gan.errors import InputError

    p = Path(target)
    if p.is_dir():
        return p, None
    if p.is_file() and p.suffix == ".ckpt":
        return (p.parent.parent if p.parent.name == "checkpoints" else p.parent), p
    raise InputError("no run or checkpoint", str(p),
                     "a run directory, or a Lightning .ckpt in its checkpoints/ folder (e.g. step-000200.ckpt)")


def result_path(target, result: dict):
    """Where ``evaluate_run(target)`` wrote ``result``: result.json, or result-<checkpoint>.json."""
    run_dir, _ = resolve_target(target)
    label = result.get("protocol", {}).get("checkpoint", "last")
    return run_dir / ("result.json" if label == "last" else f"result-{label}.json")


def _read_checkpoint(ckpt) -> dict:
    """A Lightning checkpoint with generator weights, loaded with ``weights_only=True``."""
    from e2gan.errors import InputError
    from e2gan.nets.registry import read_checkpoint

    data = read_checkpoint(ckpt)
    if not isinstance(data, dict) or not isinstance(data.get("state_dict"), dict) or \
            not any(str(k).startswith("generator.") for k in data["state_dict"]):
        raise InputError("checkpoint without generator weights", str(ckpt),
                         "a checkpoint written by e2gan training (state_dict with generator.* keys)")
    return data


def checkpoint_label(ckpt, data: dict) -> str:
    """'step-000200' from the checkpoint's own step counter (last.ckpt gets its step too)."""
    step = data.get("gan_step")
    if isinstance(step, int) and not isinstance(step, bool) and step >= 0:
        return f"step-{step:06d}"
    stem = Path(ckpt).stem
    return stem if stem.startswith("step-") else f"ckpt-{stem}"


def load_checkpoint_generator(ckpt, run_dir, cfg) -> tuple[nn.Module, dict, dict]:
    """(generator in eval mode, model metadata, checkpoint dict) from a Lightning checkpoint.

    The architecture comes from the run's ``model.json`` (``generator_from_meta``, as for
    ``load_generator``), or, for a base run still training (no model.json yet), from its
    ``config.json``. LoRA checkpoints get their adapters re-injected (ranks from adapter.json, else
    the run's adapt config), are loaded, then merged, as the final weights are.
    """
    import dataclasses
    import json

    from e2gan.config import ModelConfig
    from e2gan.errors import InputError
    from e2gan.nets.registry import finish_loading, generator_from_meta

    run_dir = Path(run_dir)
    data = _read_checkpoint(ckpt)
    state = {k[len("generator."):]: v for k, v in data["state_dict"].items() if k.startswith("generator.")}
    if (run_dir / "model.json").is_file():
        meta = json.loads((run_dir / "model.json").read_text())
    else:  # a base run that has not finished: its config says what it trains
        from e2gan.data.concepts import concept_names
        from e2gan.teachers.data_key import data_dir

        meta = {"model": dataclasses.asdict(cfg.model), "concepts": concept_names(cfg)[0], "kind": "base",
                "data": str(data_dir(cfg, run_dir.parent))}
    # A meta without a CLIP encoder entry (the config's) takes the instructions from the concepts file.
    generator = generator_from_meta(meta, str(run_dir / "model.json"), concepts_file=cfg.data.concepts_file)
    lora = any("lora_" in k for k in state)
    if lora:
        from e2gan.nets.lora import ADAPTER_META, LoraSpec, add_lora, merge_lora

        if (run_dir / ADAPTER_META).is_file():
            a = json.loads((run_dir / ADAPTER_META).read_text())
            spec = LoraSpec(ranks=a["ranks"], alpha_ratio=a["alpha_ratio"])
        else:
            spec = LoraSpec(ranks={g: int(cfg.adapt.ranks.get(g, cfg.adapt.rank)) for g in cfg.adapt.groups},
                            alpha_ratio=cfg.adapt.alpha_ratio)
        generator = add_lora(generator, spec)
    try:  # an added concept's embedding chunk is re-created on load (ConceptEmbedding)
        generator.load_state_dict(state)
    except RuntimeError as exc:
        model = ModelConfig(**meta["model"])
        raise InputError("checkpoint does not fit the run's architecture", str(ckpt),
                         f"a checkpoint of {model.arch} width {model.width} ({str(exc).splitlines()[0][:200]})") from None
    if lora:
        generator = merge_lora(generator)
    return finish_loading(generator, meta), meta, data


def _checkpoint_summary(data: dict, train_summary: dict | None) -> dict:
    """The training summary as of a checkpoint: its step, training seconds and images seen."""
    s = dict(train_summary or {})
    clock = next((v for k, v in (data.get("callbacks") or {}).items()
                  if str(k).startswith("TrainClock") and isinstance(v, dict)), {})
    s.update(gan_step=int(data.get("gan_step", 0)), train_seconds=clock.get("train_seconds"),
             images_seen=clock.get("images_seen"), stopped_by="checkpoint", peak_memory=None)
    return s


def evaluate_run(run_dir, concepts: list[str] | None = None, split: str = "test",
                 device: str = "cpu", data_root=None, progress: bool = True, clip="auto") -> dict:
    """Evaluate a finished run, or one of its Lightning checkpoints, on ``split``.

    A run directory: its final weights (generator.safetensors); ``protocol.checkpoint = "last"``;
    writes ``result.json`` and ``samples.png`` in the run.
    A ``.ckpt`` file (``runs/<run>/checkpoints/step-000200.ckpt``): the generator weights from the
    checkpoint (loaded with ``weights_only=True``), the architecture from the run's model.json /
    config.json; ``protocol.checkpoint = "step-000200"``; writes ``result-step-000200.json`` and
    ``samples-step-000200.png`` beside result.json, never over it. Costs are as of that step.
    """
    import json

    from e2gan.config import apply_overrides, Config
    from e2gan.env import environment
    from e2gan.errors import InputError
    from e2gan.io import atomic_write_json
    from e2gan.nets.registry import load_generator
    from e2gan.image_grid import save_triplet_grid
    from e2gan.results import _finite, make_result, write_result

    target = run_dir
    run_dir, ckpt = resolve_target(target)
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise InputError("no config.json", str(run_dir), "a run directory written by e2gan train-base or adapt")
    raw = json.loads(cfg_path.read_text())
    cfg = apply_overrides(Config(preset=raw.get("preset", "tiny")), raw, str(cfg_path))
    train_summary = json.loads((run_dir / "train.json").read_text()) if (run_dir / "train.json").exists() else None
    if ckpt is None:
        generator, meta = load_generator(run_dir)
        label, ckpt_protocol = "last", {}
    else:
        generator, meta, data = load_checkpoint_generator(ckpt, run_dir, cfg)
        label = checkpoint_label(ckpt, data)
        ckpt_protocol = {"checkpoint_file": str(ckpt.relative_to(run_dir)) if ckpt.is_relative_to(run_dir) else str(ckpt),
                         "checkpoint_step": int(data.get("gan_step", 0))}
        train_summary = _checkpoint_summary(data, train_summary)
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
                   reference=f"teacher targets, {split} split", device=device, clip=clip,
                   per_image=True, feature_cache=run_dir.parent / FEATURE_CACHE)
    from e2gan.stand_in import teacher_protocol

    protocol = dict(scores["protocol"], split=split, resolution=cfg.data.resolution,
                    checkpoint=label, **ckpt_protocol, data=str(root), preset=cfg.preset, **teacher_protocol(root))
    result = make_result(run=run_dir.name, kind=meta.get("kind", "base"), metrics={k: scores[k] for k in ("mean_over_concepts", "per_concept")},
                         protocol=protocol, cost=run_cost(generator, cfg, train_summary, len(trained)),
                         config=cfg.to_dict(), env=environment(device, cfg.train.seed), concepts=concepts,
                         collapsed=scores["collapse"], **{k: meta[k] for k in ("method", "base") if k in meta})
    _save_per_image(run_dir, label, pred, scores, cfg.eval.backbone, result)
    if ckpt is None:
        write_result(run_dir, result)
        samples = run_dir / "samples.png"
    else:  # a checkpoint's numbers never replace the run's own result.json
        atomic_write_json(result_path(target, result), _finite(result))
        samples = run_dir / f"samples-{label}.png"
    save_triplet_grid(_sample_rows(pred), samples, header=("source", "teacher", "model"),
                      row_labels=tuple(_sample_labels(pred)), label_px=90)
    return result


FEATURE_CACHE = "feature-cache"  # beside the runs: targets' and sources' features, shared by all runs


def _save_per_image(run_dir: Path, label: str, pred: dict, scores: dict, backbone: str, result: dict) -> None:
    """scores.npz (per-image arrays) and predictions.npz (sample pixels for reports) beside result.json."""
    from e2gan.metrics.per_image import predictions_name, save_predictions, save_scores, scores_name

    arr = dict(scores["per_image"])
    concepts, ids = arr.pop("concept"), arr.pop("source_id")
    save_scores(run_dir / scores_name(label), concepts, ids, arr, backbone)
    save_predictions(run_dir / predictions_name(label), pred)
    result["protocol"].update(per_image_file=scores_name(label), predictions_file=predictions_name(label))


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
