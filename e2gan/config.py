"""Typed configuration: small dataclasses, loaded from TOML and validated on load.

A config file (or a study spec) overrides only what differs from its preset; every unknown key
or out-of-range value is an `InputError` naming the key and what is allowed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2gan.errors import InputError


@dataclass
class DataConfig:
    resolution: int = 64
    sources: str = "builtin"          # "builtin" or a folder of images
    crops_per_photo: int = 8
    teacher: str = "procedural"       # "procedural" | "module:callable" | "diffusers:<model>"
    concepts_file: str = ""           # empty: the packaged concepts file
    base_concepts: list[str] = field(default_factory=lambda: ["base"])  # names or a role
    new_concepts: list[str] = field(default_factory=lambda: ["new"])
    seed: int = 0


@dataclass
class ModelConfig:
    arch: str = "e2gan"               # e2gan | pix2pix | pix2pix-resize
    width: int = 16                   # E2GAN base width (ngf for pix2pix)
    n_blocks_before: int = 2
    n_blocks_after: int = 1
    n_blocks: int = 9                 # pix2pix only
    norm: str = "instance"
    attn_heads: int = 4
    n_tokens: int = 4
    lowres_skip: bool = False         # identity skip around DS -> TB -> US (not in the paper's figure)
    # Where the cross-attention tokens come from (e2gan only; pix2pix takes no concept):
    #   "table"          a learnt embedding table, n_tokens rows per concept (a new concept learns its rows)
    #   "clip:<model>"   a frozen CLIP text model (local folder, diffusers pipeline folder or hub id)
    #                    encodes each concept's instruction once; the first n_tokens positions are
    #                    cached (padded; at most 77) and nothing of it trains. A new concept needs only
    #                    its instruction. Set n_tokens to cover the instructions (e.g. 16 or 77): an
    #                    instruction longer than n_tokens (start and end tokens included) is refused.
    concept_encoder: str = "table"


@dataclass
class DiscConfig:
    ndf: int = 32
    n_layers: int = 2
    norm: str = "batch"


@dataclass
class TrainConfig:
    steps: int = 1200
    batch_size: int = 16
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_l1: float = 100.0
    gan_mode: str = "vanilla"         # vanilla (BCE, pix2pix) | lsgan
    ckpt_every: int = 200             # steps between checkpoints (and between validations)
    max_time_s: float = 0.0           # 0: no wall-time budget
    seed: int = 0
    num_workers: int = 0
    accelerator: str = "cpu"          # cpu | gpu | auto
    devices: int = 1
    precision: str = "32-true"        # "16-mixed" / "bf16-mixed" on a GPU; "bf16-mixed" on a CPU with native bf16
    strategy: str = "auto"            # auto | ddp (GANs: find_unused_parameters=True)


CRUCIAL = ["down", "ds", "tb", "us", "up"]


def layer_group_names(model: "ModelConfig") -> tuple[str, ...]:
    """The E2GAN generator's layer groups for this block count (rb1.. before DS, the rest after US)."""
    before = [f"rb{i + 1}" for i in range(model.n_blocks_before)]
    after = [f"rb{model.n_blocks_before + i + 1}" for i in range(model.n_blocks_after)]
    return ("down", *before, "ds", "tb", "us", *after, "up")  # the paper's LoRA placement (its Fig. 3)


@dataclass
class AdaptConfig:
    """How a new concept is learnt: the method and every axis the paper leaves open."""

    method: str = "lora"              # lora | full | scratch | pix2pix
    groups: list[str] = field(default_factory=lambda: list(CRUCIAL))
    rank: int = 4                     # uniform rank when `ranks` is empty
    ranks: dict = field(default_factory=dict)   # per-group ranks, e.g. {tb = 8, up = 2}
    alpha_ratio: float = 2.0          # LoRA alpha = ratio x rank (r4 / alpha 8)
    lr: float = 2e-3                  # LoRA learning rate
    lr_g: float = 0.0                 # generator learning rate of full / scratch / pix2pix (0: train.lr_g, the base's)
    embedding_init: str = "mean"      # random | mean | nearest (the base concept the base model edits closest)
    disc: str = "fresh"               # fresh | base | frozen
    lr_d: float = 2e-4
    steps: int = 300
    max_time_s: float = 0.0           # 0: budget by steps only
    train_pairs: int = 0              # 0: every training pair; else a subset of this size
    selection: str = "random"         # random | kmeans (nearest to cluster centres)
    selection_features: str = "encoder"   # what k-means clusters: encoder | effnet-lite0 | clip
    pix2pix_ngf: int = 64
    pix2pix_blocks: int = 9
    seed: int = 0
    curve_points: int = 0             # validations per run for the learning curve (0: once per epoch)
    precision: str = ""               # the adaptation's training precision ("": train.precision, the base's)


@dataclass
class EvalConfig:
    backbone: str = "effnet-lite0"    # effnet-lite0 (offline proxy) | inception
    perceptual: str = "auto"          # auto | lpips-alex | lpips-vgg | proxy
    batch_size: int = 32
    # Images per concept in the test split (reported numbers) and the validation split (every
    # choice a study makes): the built-in set's sizes, a folder's caps. They decide which sources
    # are distilled, so they are part of the data folder's key (``e2gan.teachers.data_key``).
    n_test: int = 500
    n_val: int = 250


@dataclass
class Config:
    preset: str = "tiny"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    disc: DiscConfig = field(default_factory=DiscConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def key(self, *sections: str) -> str:
        """A short stable hash of the named sections: caches (data, base model) are keyed by it.

        The held-out concept list is left out: which concepts are held out changes no model.
        """
        d = self.to_dict()
        d["data"].pop("new_concepts")
        if d["data"]["sources"] == "builtin":
            # The built-in set is split by photograph since this version: a base cached from the
            # earlier split trained on crops of today's test photos and must not be reused.
            d["data"]["split"] = BUILTIN_SPLIT
        if d["model"]["concept_encoder"] == "table":  # the default: keys of earlier runs stay valid
            d["model"].pop("concept_encoder")
        if d["adapt"]["selection_features"] == "encoder":  # the default: keys of earlier runs stay valid
            d["adapt"].pop("selection_features")
        if not d["adapt"]["curve_points"]:  # the default: keys of earlier runs stay valid
            d["adapt"].pop("curve_points")
        if not d["adapt"]["precision"]:  # the default (the base's precision): keys of earlier runs stay valid
            d["adapt"].pop("precision")
        if d["adapt"]["lr_g"] == d["train"]["lr_g"]:  # the base's rate spelled out is the default (0)
            d["adapt"]["lr_g"] = 0.0
        if not d["adapt"]["train_pairs"]:  # every pair is used: no subset is selected, so no selection rule
            d["adapt"]["selection"] = "random"
        blob = json.dumps({s: d[s] for s in sections}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:10]


# The built-in set's split rule (``e2gan.data.sources``): in every data and base key, so caches made
# under an earlier rule are never reused.
BUILTIN_SPLIT = "by-photo-v1"


CHOICES = {
    ("model", "arch"): ("e2gan", "pix2pix", "pix2pix-resize"),
    ("model", "norm"): ("instance", "batch", "group", "none"),
    ("disc", "norm"): ("batch", "instance", "none"),
    ("train", "gan_mode"): ("vanilla", "lsgan"),
    ("train", "accelerator"): ("cpu", "gpu", "cuda", "auto"),
    ("train", "strategy"): ("auto", "ddp"),
    ("train", "precision"): ("32-true", "32", "16-mixed", "bf16-mixed"),
    ("adapt", "precision"): ("", "32-true", "32", "16-mixed", "bf16-mixed"),
    ("adapt", "method"): ("lora", "full", "scratch", "pix2pix"),
    ("adapt", "embedding_init"): ("random", "mean", "nearest"),
    ("adapt", "disc"): ("fresh", "base", "frozen"),
    ("adapt", "selection"): ("random", "kmeans"),
    ("adapt", "selection_features"): ("encoder", "effnet-lite0", "clip"),
    ("eval", "backbone"): ("effnet-lite0", "inception"),
    ("eval", "perceptual"): ("auto", "lpips-alex", "lpips-vgg", "proxy"),
}
POSITIVE = {
    ("data", "resolution"), ("data", "crops_per_photo"), ("model", "width"), ("model", "attn_heads"),
    ("model", "n_tokens"), ("model", "n_blocks"), ("disc", "ndf"), ("disc", "n_layers"),
    ("train", "steps"), ("train", "batch_size"), ("train", "lr_g"), ("train", "lr_d"),
    ("train", "ckpt_every"), ("train", "devices"), ("eval", "batch_size"), ("eval", "n_test"),
    ("eval", "n_val"), ("adapt", "rank"),
    ("adapt", "lr"), ("adapt", "lr_d"), ("adapt", "steps"), ("adapt", "alpha_ratio"),
    ("adapt", "pix2pix_ngf"), ("adapt", "pix2pix_blocks"),
}
NON_NEGATIVE = {("model", "n_blocks_before"), ("model", "n_blocks_after"), ("train", "lambda_l1"),
                ("train", "max_time_s"), ("train", "num_workers"), ("adapt", "max_time_s"),
                ("adapt", "train_pairs"), ("adapt", "curve_points"), ("adapt", "lr_g")}


def _merge_section(obj: Any, values: dict, where: str, section: str) -> None:
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in values.items():
        if key not in fields:
            raise InputError(f"unknown key '{section}.{key}'", where, f"one of {sorted(fields)}")
        current = getattr(obj, key)
        if isinstance(current, bool) != isinstance(value, bool) or not isinstance(value, type(current)):
            ok = isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool)
            if not ok:
                raise InputError(f"'{section}.{key}' = {value!r}", where,
                                 f"a {type(current).__name__}")
            value = float(value)
        setattr(obj, key, value)


CONCEPT_ENCODERS = ("table", "clip:<local folder or hub id>")


def clip_model_of(concept_encoder: str) -> str | None:
    """The text model of a ``clip:<model>`` concept encoder; None for the learnt table."""
    return concept_encoder[len("clip:"):].strip() if concept_encoder.startswith("clip:") else None


def validate(cfg: Config, where: str = "config") -> Config:
    d = cfg.to_dict()
    enc = cfg.model.concept_encoder
    if enc != "table" and not clip_model_of(enc):
        raise InputError(f"'model.concept_encoder' = {enc!r}", where, f"one of {list(CONCEPT_ENCODERS)}")
    for (section, key), allowed in CHOICES.items():
        if d[section][key] not in allowed:
            raise InputError(f"'{section}.{key}' = {d[section][key]!r}", where, f"one of {list(allowed)}")
    for section, key in POSITIVE:
        if not d[section][key] > 0:
            raise InputError(f"'{section}.{key}' = {d[section][key]!r}", where, "a positive number")
    for section, key in NON_NEGATIVE:
        if d[section][key] < 0:
            raise InputError(f"'{section}.{key}' = {d[section][key]!r}", where, "a number >= 0")
    valid_groups = layer_group_names(cfg.model)
    bad_groups = [g for g in [*cfg.adapt.groups, *cfg.adapt.ranks] if g not in valid_groups]
    if bad_groups:
        raise InputError(f"unknown layer group(s) {bad_groups}", where, f"some of {list(valid_groups)}")
    bad_ranks = {g: r for g, r in cfg.adapt.ranks.items() if not isinstance(r, int) or isinstance(r, bool) or r <= 0}
    if bad_ranks:
        raise InputError(f"'adapt.ranks' = {bad_ranks}", where, "positive integer ranks")
    if cfg.model.arch == "e2gan" and cfg.data.resolution % 8:
        raise InputError(f"'data.resolution' = {cfg.data.resolution}", where,
                         "a multiple of 8 for the E2GAN generator")
    if cfg.model.arch.startswith("pix2pix") and cfg.data.resolution % 4:
        raise InputError(f"'data.resolution' = {cfg.data.resolution}", where, "a multiple of 4 for pix2pix")
    return cfg


def apply_overrides(cfg: Config, overrides: dict, where: str) -> Config:
    """Overlay a nested dict (from TOML or a study spec) onto ``cfg`` in place."""
    sections = {f.name for f in dataclasses.fields(cfg)} - {"preset"}
    for section, values in overrides.items():
        if section == "preset":
            continue
        if section not in sections:
            raise InputError(f"unknown section '{section}'", where, f"one of {sorted(sections)}")
        if not isinstance(values, dict):
            raise InputError(f"'{section}' = {values!r}", where, "a table of keys")
        _merge_section(getattr(cfg, section), values, where, section)
    return validate(cfg, where)


def load_toml(path: str | Path) -> dict:
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise InputError("config file not found", str(path), "an existing TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError("malformed TOML", str(path), str(exc)) from None
