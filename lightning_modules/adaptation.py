"""Learn one new concept: scratch | pix2pix | full fine-tune | LoRA on chosen groups of the base.

All four go through the same PairedGANModule and `fit`; only the generator, which parameters
train, the discriminator's treatment and the learning rates differ.

The new concept's tokens: with the learnt table (``model.concept_encoder = "table"``) a new row
chunk initialised by ``adapt.embedding_init`` that always trains; with a CLIP base the frozen text
model encodes the concept's instruction (from ``data.concepts_file``) once, nothing of it trains
and ``adapt.embedding_init`` does not apply (recorded as ``"clip"``).
"""
from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path

import lightning as L
import torch
from torch import nn

from e2gan.config import Config, ModelConfig, apply_overrides, clip_model_of
from e2gan.data.dataset import PairedDataset
from e2gan.errors import InputError
from e2gan.io import atomic_write_json
from e2gan.metrics.cost import bytes_of_tensors
from e2gan.metrics.train_cost import gan_step_flops
from e2gan.nets.lora import LoraSpec, add_lora, merge_lora, save_adapter, use_merged_weight_forward
from e2gan.nets.params import count_params
from e2gan.nets.registry import concept_instructions, load_generator, make_discriminator, make_generator, save_generator
from lightning_modules.training import fit, long_lived_objects_frozen


def _lora_spec(cfg: Config) -> LoraSpec:
    a = cfg.adapt
    ranks = {g: int(a.ranks.get(g, a.rank)) for g in a.groups}
    return LoraSpec(ranks=ranks, alpha_ratio=a.alpha_ratio)


@torch.no_grad()
def nearest_base_concept(generator: nn.Module, data_root: Path, concept: str, n_base: int, limit: int = 32) -> int:
    """The base concept whose edit, applied by the base model, lands closest to the new targets."""
    ds = PairedDataset(data_root, [concept], "train", {concept: 0}, check_hashes=False)
    idx = list(range(min(limit, len(ds))))
    src = torch.stack([ds[i]["source"] for i in idx])
    tgt = torch.stack([ds[i]["target"] for i in idx])
    generator.eval()
    errors = [float((generator(src, torch.full((len(idx),), k, dtype=torch.long)) - tgt).pow(2).mean())
              for k in range(n_base)]
    generator.train()
    return min(range(n_base), key=errors.__getitem__)


def _load_base_discriminator(cfg: Config, base_run: Path) -> nn.Module:
    from safetensors.torch import load_file

    path = base_run / "discriminator.safetensors"
    if not path.exists():
        raise InputError("the base run kept no discriminator", str(path), "a base trained by this version, or adapt.disc = 'fresh'")
    disc = make_discriminator(cfg.disc)
    disc.load_state_dict(load_file(str(path)))
    return disc


def build(cfg: Config, base_run: Path | None, data_root: Path, concept: str) -> dict:
    """Generator, discriminator, concept index and what trains, for ``cfg.adapt.method``."""
    a = cfg.adapt
    L.seed_everything(a.seed, verbose=False)
    # A rate of its own for full / scratch / pix2pix (a sweep's choice), else the base's.
    out: dict = {"spec": None, "lr_g": a.lr_g or cfg.train.lr_g, "embedding_init": None}
    if a.method in ("scratch", "pix2pix"):
        model = (dataclasses.replace(cfg.model, arch="pix2pix", width=a.pix2pix_ngf, n_blocks=a.pix2pix_blocks)
                 if a.method == "pix2pix" else cfg.model)
        clip = model.arch == "e2gan" and clip_model_of(model.concept_encoder) is not None
        instructions = concept_instructions(cfg.data.concepts_file, [concept]) if clip else None
        out.update(generator=make_generator(model, n_concepts=1, instructions=instructions), model_cfg=model,
                   concepts=[concept], n_base=1, concept_id=0)
    else:
        if base_run is None:
            raise InputError(f"method '{a.method}' without a base", "--base", "a finished base run directory")
        generator, meta = load_generator(base_run)
        generator.train()
        base_concepts = meta["concepts"]
        if concept in base_concepts:
            raise InputError(f"concept '{concept}' is already in the base", str(base_run / "model.json"),
                             f"a concept outside {base_concepts}")
        table = hasattr(generator.concepts, "table")
        if table:
            init: str | int = a.embedding_init
            if init == "nearest":
                init = nearest_base_concept(generator, data_root, concept, len(base_concepts))
                out["embedding_init"] = base_concepts[init]
            (concept_id,) = generator.concepts.add_concepts(1, init)
        else:  # CLIP: the frozen text model encodes the instruction (loaded now, not at evaluation)
            (concept_id,) = generator.concepts.add_concepts(concept_instructions(cfg.data.concepts_file, [concept]))
            out["embedding_init"] = "clip"
        if a.method == "lora":
            out["spec"] = _lora_spec(cfg)
            generator = add_lora(generator, out["spec"])
            use_merged_weight_forward(generator)   # one conv per LoRA layer: a step no slower than a full one
            out["lr_g"] = a.lr
        if table:
            generator.concepts.tables[-1].requires_grad_(True)  # the new concept's tokens always learn
        out.update(generator=generator, model_cfg=ModelConfig(**meta["model"]),
                   concepts=[*base_concepts, concept], n_base=len(base_concepts), concept_id=concept_id)
    if a.disc == "fresh" or a.method in ("scratch", "pix2pix"):
        out["discriminator"] = make_discriminator(cfg.disc)
    else:
        out["discriminator"] = _load_base_discriminator(cfg, base_run)
        if a.disc == "frozen":
            out["discriminator"].requires_grad_(False)
    return out


def training_config(cfg: Config, lr_g: float) -> Config:
    """The adaptation's budget in the training loop's names: the one place ``adapt.*`` becomes ``train.*``.

    ``fit`` is the one GAN loop, for the base and for every adaptation, and reads ``cfg.train``. Up to
    here an adaptation's values keep the names the user gave them (``e2gan adapt --steps`` sets
    ``adapt.steps``, a study spec's ``[adapt]`` table the same keys); here they map onto the loop's:

    - ``adapt.steps`` -> ``train.steps`` (and ``train.ckpt_every`` is capped at it)
    - ``adapt.max_time_s`` -> ``train.max_time_s``
    - ``lr_g`` (``adapt.lr`` for LoRA; ``adapt.lr_g``, or ``train.lr_g`` when it is 0, otherwise:
      see ``build``) -> ``train.lr_g``
    - ``adapt.lr_d`` -> ``train.lr_d``, ``adapt.seed`` -> ``train.seed``
    - ``adapt.precision``, when set, -> ``train.precision`` (else the base's precision)

    The copy is what the run's ``config.json`` records; ``cfg`` itself is left unchanged.
    """
    a = cfg.adapt
    return apply_overrides(copy.deepcopy(cfg), {"train": {
        "steps": a.steps, "max_time_s": a.max_time_s, "lr_g": lr_g, "lr_d": a.lr_d,
        "ckpt_every": min(cfg.train.ckpt_every, a.steps), "seed": a.seed,
        **({"precision": a.precision} if a.precision else {})}}, "adapt")


def adapt(cfg: Config, base_run: Path | None, data_root: Path, concept: str, run_dir: Path,
          progress: bool = True, train_indices: list[int] | None = None,
          extra_callbacks: list | None = None) -> dict | None:
    """Train the new concept, save adapter and/or generator; returns the training summary."""
    # From the start, not only during fit: in a long-lived worker a full collector pass over the
    # heap it already holds otherwise lands in model building or FLOP counting (~0.5 s measured).
    with long_lived_objects_frozen():
        return _adapt(cfg, base_run, data_root, concept, run_dir, progress, train_indices, extra_callbacks)


def _adapt(cfg: Config, base_run: Path | None, data_root: Path, concept: str, run_dir: Path,
           progress: bool, train_indices: list[int] | None, extra_callbacks: list | None) -> dict | None:
    run_dir = Path(run_dir)
    a = cfg.adapt
    parts = build(cfg, base_run, data_root, concept)
    generator, disc = parts["generator"], parts["discriminator"]
    train_cfg = training_config(cfg, parts["lr_g"])
    trainable = {k: v for k, v in generator.named_parameters() if v.requires_grad}
    flops_step = gan_step_flops(generator, disc, cfg.train.batch_size, cfg.data.resolution, cfg.train.lambda_l1)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "config.json", train_cfg.to_dict())
    t0 = time.perf_counter()
    summary = fit(train_cfg, run_dir, data_root, [concept], {concept: parts["concept_id"]}, generator, disc,
                  progress=progress, train_indices=train_indices, extra_callbacks=extra_callbacks,
                  curve_points=a.curve_points)
    if summary is None:
        return None
    summary.update(fit_wall_seconds=time.perf_counter() - t0, method=a.method, concept=concept,
                   params_trainable=sum(v.numel() for v in trainable.values()),
                   params_discriminator_trainable=sum(p.numel() for p in disc.parameters() if p.requires_grad),
                   flops_per_step=flops_step, embedding_init=parts["embedding_init"] or
                   (a.embedding_init if a.method in ("lora", "full") else None),
                   train_pairs=len(train_indices) if train_indices is not None else None)
    # Counted FLOPs to each point, as the run's train_flops is counted (per step, every device).
    for point in summary.get("curve") or []:
        point["flops"] = point["step"] * flops_step * summary.get("world_size", 1)
    extra = {"gan_step": summary["gan_step"], "data": str(data_root), "kind": "adapt", "method": a.method,
             "n_base_concepts": parts["n_base"], "base": str(base_run) if base_run else None}
    if parts["spec"] is not None:
        base_weights = Path(base_run) / "generator.safetensors"
        meta = save_adapter(run_dir, generator, parts["spec"], concept, [parts["concept_id"]], base_weights)
        summary["bytes_stored"] = meta["bytes_fp32"]
        summary["lora_ranks"] = parts["spec"].ranks
        generator = merge_lora(generator)
    else:  # full fine-tune, scratch and pix2pix store a whole generator per concept
        summary["bytes_stored"] = bytes_of_tensors(generator.state_dict())
    save_generator(run_dir, generator, parts["model_cfg"], parts["concepts"], extra=extra)
    summary["params_generator"] = count_params(generator)
    atomic_write_json(run_dir / "train.json", summary)
    return summary
