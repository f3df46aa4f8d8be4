"""Config -> networks, and the trained generator on disk (safetensors + a small JSON).

A run keeps its generator as ``generator.safetensors`` beside ``model.json`` (architecture,
concept list, steps); evaluation and export load it from there, never from a pickle.

With ``model.concept_encoder = "clip:<model>"`` the generator's concept tokens are the cached
output of a frozen CLIP text model (``e2gan.nets.text_encoder``): ``make_generator`` needs each
concept's instruction (``concept_instructions``), ``model.json`` records the encoder
(``describe()``: model, fingerprint, widths, instructions) and ``load_generator`` rebuilds it from
the saved tokens without loading CLIP, which is loaded only when a new concept is added.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from e2gan.config import DiscConfig, ModelConfig, clip_model_of
from e2gan.errors import InputError
from e2gan.io import atomic_write, atomic_write_json


def make_generator(model: ModelConfig, n_concepts: int, instructions: Sequence[str] | None = None,
                   concept_encoder: nn.Module | None = None) -> nn.Module:
    """The generator ``model`` describes, for ``n_concepts`` concepts.

    instructions: one per concept, in concept-id order; needed (only) when
    ``model.concept_encoder`` is ``clip:<model>``, whose tokens are encoded from them once.
    concept_encoder: a ready encoder instead (``load_generator`` passes a shell of saved tokens).
    """
    from e2gan.nets.factory import build_generator

    if model.arch == "e2gan":
        clip = clip_model_of(model.concept_encoder)
        if concept_encoder is None and clip is not None:
            from e2gan.nets.text_encoder import CLIPConceptEncoder

            if instructions is None or len(instructions) != n_concepts:
                got = "none" if instructions is None else f"{len(instructions)}"
                raise InputError(f"{got} concept instructions for {n_concepts} concepts",
                                 f"model.concept_encoder = {model.concept_encoder!r}",
                                 "one instruction per concept (make_generator(..., instructions=...))")
            concept_encoder = CLIPConceptEncoder(clip, list(instructions), n_tokens=model.n_tokens,
                                                 strict_length=True)
        return build_generator("e2gan", n_concepts=n_concepts, width=model.width,
                               n_blocks_before=model.n_blocks_before, n_blocks_after=model.n_blocks_after,
                               norm=model.norm, attn_heads=model.attn_heads, n_tokens=model.n_tokens,
                               lowres_skip=model.lowres_skip, concept_encoder=concept_encoder)
    return build_generator(model.arch, ngf=model.width, n_blocks=model.n_blocks,
                           norm=model.norm if model.norm in ("instance", "batch") else "instance")


def concept_instructions(concepts_file: str | Path | None, names: Sequence[str]) -> list[str]:
    """The instruction of each named concept, from a concepts file (empty/None: the packaged one)."""
    from e2gan.data.concepts import load_concepts

    by_name = {c.name: c.instruction for c in load_concepts(concepts_file or None)}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise InputError(f"concept(s) {missing}", f"concepts file {str(concepts_file or 'packaged')!r}",
                         f"names defined there: {', '.join(sorted(by_name))}")
    return [by_name[n] for n in names]


def _clip_shell(model: ModelConfig, meta: dict, n_concepts: int, where: str) -> nn.Module:
    """The CLIP concept encoder of a saved generator, from model.json: its tokens come from the weights."""
    from e2gan.nets.text_encoder import CLIPConceptEncoder

    enc = meta.get("concept_encoder")
    if not isinstance(enc, dict) or enc.get("kind") != "clip":
        raise InputError("model.json without its CLIP concept encoder", where,
                         "a model.json written by save_generator (with a 'concept_encoder' entry)")
    hidden, dim = int(enc["hidden_size"]), int(enc["dim"])
    return CLIPConceptEncoder.cached(
        n_concepts, n_tokens=int(enc["n_tokens"]), hidden_size=hidden, token_dim=dim if dim != hidden else None,
        normalize=bool(enc.get("normalize", True)), model=clip_model_of(model.concept_encoder),
        provenance={k: enc[k] for k in ("source", "revision", "fingerprint") if k in enc},
        instructions=enc.get("instructions", []), strict_length=True)


def read_checkpoint(path: str | Path, hint: str = "") -> dict:
    """A Lightning checkpoint loaded with ``weights_only=True``: a truncated file, or a pickle naming
    arbitrary callables, is refused in one line and never executed. ``hint``: what the user can do."""
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError, OSError, ValueError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InputError("unloadable or unsafe checkpoint", str(path),
                         f"a Lightning checkpoint of tensors and plain data, loadable with weights_only=True "
                         f"({hint + '; ' if hint else ''}{reason})") from None


def make_discriminator(disc: DiscConfig) -> nn.Module:
    from e2gan.nets.factory import build_discriminator

    return build_discriminator(in_channels=6, ndf=disc.ndf, n_layers=disc.n_layers, norm=disc.norm)


def save_generator(run_dir: str | Path, generator: nn.Module, model: ModelConfig,
                   concepts: list[str], extra: dict | None = None) -> Path:
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    state = {k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
    atomic_write(run_dir / "generator.safetensors", lambda p: save_file(state, str(p)))
    meta = {"model": dataclasses.asdict(model), "concepts": list(concepts), **(extra or {})}
    describe = getattr(getattr(generator, "concepts", None), "describe", None)
    if callable(describe):  # the CLIP concept encoder: what load_generator rebuilds it from
        meta["concept_encoder"] = describe()
    atomic_write_json(run_dir / "model.json", meta)
    return run_dir / "generator.safetensors"


def save_discriminator(run_dir: str | Path, discriminator: nn.Module) -> Path:
    """The base run keeps its discriminator so adaptation can start from it (adapt.disc = base|frozen)."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in discriminator.state_dict().items()}
    path = Path(run_dir) / "discriminator.safetensors"
    atomic_write(path, lambda p: save_file(state, str(p)))
    return path


def generator_from_meta(meta: dict, where: str, concepts_file: str | Path | None = None) -> nn.Module:
    """The generator a run's ``model.json`` metadata describes, untrained, to ``load_state_dict`` into.

    Built with the base concept count (``n_base_concepts``, else all of ``concepts``): added concepts
    live in extra embedding chunks (or cached token rows) that loading re-creates. A CLIP concept
    encoder is rebuilt from ``meta["concept_encoder"]`` as a shell of the saved tokens (no CLIP
    loaded). A meta without that entry is refused, naming ``where``, unless ``concepts_file`` is
    given (``""``: the packaged one; e.g. a base run still training, whose meta comes from its
    config): then each concept's instruction comes from there and CLIP encodes the tokens.
    After loading the weights, pass the generator to ``finish_loading``.
    """
    model = ModelConfig(**meta["model"])
    n_concepts = meta.get("n_base_concepts", len(meta["concepts"]))
    if model.arch == "e2gan" and clip_model_of(model.concept_encoder):
        if "concept_encoder" in meta or concepts_file is None:
            return make_generator(model, n_concepts, concept_encoder=_clip_shell(model, meta, n_concepts, where))
        return make_generator(model, n_concepts,
                              instructions=concept_instructions(concepts_file, meta["concepts"][:n_concepts]))
    return make_generator(model, n_concepts)


def finish_loading(generator: nn.Module, meta: dict) -> nn.Module:
    """A ``generator_from_meta`` generator once its weights are loaded: in eval mode, and a CLIP shell's
    instructions (from ``meta``) cut to the concepts whose tokens the weights held."""
    model = ModelConfig(**meta["model"])
    if model.arch == "e2gan" and clip_model_of(model.concept_encoder) and "concept_encoder" in meta:
        shell = generator.concepts
        shell.instructions = list(meta["concept_encoder"].get("instructions", []))[:shell.n_concepts]
    return generator.eval()


def load_generator(run_dir: str | Path) -> tuple[nn.Module, dict]:
    """The generator of a finished run, in eval mode, with its metadata."""
    from safetensors.torch import load_file

    run_dir = Path(run_dir)
    meta_path, weights = run_dir / "model.json", run_dir / "generator.safetensors"
    if not meta_path.exists() or not weights.exists():
        raise InputError("no trained generator", str(run_dir),
                         "a run directory holding model.json and generator.safetensors (train it first)")
    meta = json.loads(meta_path.read_text())
    generator = generator_from_meta(meta, str(meta_path))
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own SafetensorError for a file that is not one
        raise InputError("unreadable generator weights", str(weights),
                         f"a safetensors file written by e2gan ({str(exc).splitlines()[0][:160]})") from None
    try:
        generator.load_state_dict(state)
    except RuntimeError as exc:
        model = ModelConfig(**meta["model"])
        raise InputError("weights do not fit the architecture", str(weights),
                         f"a checkpoint of {model.arch} width {model.width} ({str(exc).splitlines()[0]})") from None
    return finish_loading(generator, meta), meta
