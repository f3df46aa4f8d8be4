"""Config -> networks, and the trained generator on disk (safetensors + a small JSON).

A run keeps its generator as ``generator.safetensors`` beside ``model.json`` (architecture,
concept list, steps); evaluation and export load it from there, never from a pickle.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from torch import nn

from e2gan.config import DiscConfig, ModelConfig
from e2gan.errors import InputError
from e2gan.io import atomic_write, atomic_write_json


def make_generator(model: ModelConfig, n_concepts: int) -> nn.Module:
    from e2gan.nets import build_generator

    if model.arch == "e2gan":
        return build_generator("e2gan", n_concepts=n_concepts, width=model.width,
                               n_blocks_before=model.n_blocks_before, n_blocks_after=model.n_blocks_after,
                               norm=model.norm, attn_heads=model.attn_heads, n_tokens=model.n_tokens,
                               lowres_skip=model.lowres_skip)
    return build_generator(model.arch, ngf=model.width, n_blocks=model.n_blocks,
                           norm=model.norm if model.norm in ("instance", "batch") else "instance")


def make_discriminator(disc: DiscConfig) -> nn.Module:
    from e2gan.nets import build_discriminator

    return build_discriminator(in_channels=6, ndf=disc.ndf, n_layers=disc.n_layers, norm=disc.norm)


def save_generator(run_dir: str | Path, generator: nn.Module, model: ModelConfig,
                   concepts: list[str], extra: dict | None = None) -> Path:
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    state = {k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
    atomic_write(run_dir / "generator.safetensors", lambda p: save_file(state, str(p)))
    meta = {"model": dataclasses.asdict(model), "concepts": list(concepts), **(extra or {})}
    atomic_write_json(run_dir / "model.json", meta)
    return run_dir / "generator.safetensors"


def save_discriminator(run_dir: str | Path, discriminator: nn.Module) -> Path:
    """The base run keeps its discriminator so adaptation can start from it (adapt.disc = base|frozen)."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in discriminator.state_dict().items()}
    path = Path(run_dir) / "discriminator.safetensors"
    atomic_write(path, lambda p: save_file(state, str(p)))
    return path


def load_generator(run_dir: str | Path) -> tuple[nn.Module, dict]:
    """The generator of a finished run, in eval mode, with its metadata."""
    from safetensors.torch import load_file

    run_dir = Path(run_dir)
    meta_path, weights = run_dir / "model.json", run_dir / "generator.safetensors"
    if not meta_path.exists() or not weights.exists():
        raise InputError("no trained generator", str(run_dir),
                         "a run directory holding model.json and generator.safetensors (train it first)")
    meta = json.loads(meta_path.read_text())
    model = ModelConfig(**meta["model"])
    # Added concepts live in extra embedding chunks that loading re-creates: build with the base count.
    generator = make_generator(model, n_concepts=meta.get("n_base_concepts", len(meta["concepts"])))
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own SafetensorError for a file that is not one
        raise InputError("unreadable generator weights", str(weights),
                         f"a safetensors file written by e2gan ({str(exc).splitlines()[0][:160]})") from None
    try:
        generator.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError("weights do not fit the architecture", str(weights),
                         f"a checkpoint of {model.arch} width {model.width} ({str(exc).splitlines()[0]})") from None
    return generator.eval(), meta
