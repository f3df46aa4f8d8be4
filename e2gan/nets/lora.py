"""Per-concept adaptation with LoRA (peft): layer groups -> target modules, rank patterns, save/merge.

A concept adapter is two files: ``adapter.safetensors`` (the LoRA matrices and the new concept's
embedding rows) and ``adapter.json`` (groups, ranks, alpha, target modules, and the sha256 of the
base generator it was trained on). Loading onto a different base is refused.

With the CLIP concept encoder the new concept has no learnt rows: its tokens are the frozen text
model's output for its instruction. The adapter stores them (``concept_tokens``) with the
instruction, so it loads and deploys without CLIP. They count in ``bytes_fp32`` (what a concept
costs on disk) but not in ``params`` (what a concept trains): a CLIP concept's params are its
LoRA matrices alone, its bytes are 4 x (LoRA params + n_tokens x text width).
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from e2gan.errors import InputError
from e2gan.io import atomic_write, atomic_write_json, sha256_file

ADAPTER_WEIGHTS, ADAPTER_META = "adapter.safetensors", "adapter.json"


@dataclass
class LoraSpec:
    """Which groups get LoRA, at which rank each, and the scaling alpha (per group: alpha_ratio x rank)."""

    ranks: dict[str, int]
    alpha_ratio: float = 2.0              # alpha = ratio x rank (DESIGN §7 default: r4 / alpha 8)
    dropout: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def groups(self) -> list[str]:
        return list(self.ranks)


def parse_ranks(groups: list[str], ranks: str | int | list[int] | dict[str, int], valid: tuple[str, ...],
                where: str = "--ranks") -> dict[str, int]:
    """Ranks per group from an int (uniform), a list aligned with ``groups``, or 'g=r,g=r' text."""
    unknown = [g for g in groups if g not in valid]
    if unknown:
        raise InputError(f"unknown layer group(s) {unknown}", "--groups", f"some of {list(valid)}")
    if not groups:
        raise InputError("no layer groups", "--groups", f"some of {list(valid)}")
    if isinstance(ranks, str):
        text = ranks.strip()
        if "=" in text:
            out = {}
            for part in text.split(","):
                g, _, r = part.partition("=")
                out[g.strip()] = _int_rank(r, where)
            return parse_ranks(list(out), out, valid, where)
        values = [_int_rank(r, where) for r in text.split(",")]
        ranks = values[0] if len(values) == 1 else values
    if isinstance(ranks, int):
        out = {g: ranks for g in groups}
    elif isinstance(ranks, dict):
        out = {g: ranks[g] for g in groups if g in ranks}
        if set(out) != set(groups):
            raise InputError(f"ranks for {sorted(ranks)}", where, f"one rank for each of {groups}")
    else:
        if len(ranks) != len(groups):
            raise InputError(f"{len(ranks)} ranks for {len(groups)} groups", where, "one rank per group")
        out = dict(zip(groups, ranks))
    for g, r in out.items():
        if not isinstance(r, int) or r <= 0:
            raise InputError(f"rank {r!r} for group '{g}'", where, "a positive integer")
    return out


def _int_rank(text: str, where: str) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise InputError(f"rank {text!r}", where, "a positive integer") from None
    if value <= 0:
        raise InputError(f"rank {value}", where, "a positive integer")
    return value


def lora_config(generator: nn.Module, spec: LoraSpec):
    """A peft LoraConfig targeting the Conv2d/Linear leaves of the chosen groups, rank per group."""
    import re

    from peft import LoraConfig

    targets, rank_pattern, alpha_pattern = [], {}, {}
    for group, rank in spec.ranks.items():
        for name in generator.group_modules(group):
            targets.append(name)
            rank_pattern[re.escape(name)] = rank
            alpha_pattern[re.escape(name)] = spec.alpha_ratio * rank
    if not targets:
        raise InputError(f"groups {spec.groups}", "LoRA", "groups that contain Conv2d/Linear layers")
    first = next(iter(spec.ranks.values()))
    return LoraConfig(r=first, lora_alpha=spec.alpha_ratio * first, target_modules=targets,
                      rank_pattern=rank_pattern, alpha_pattern=alpha_pattern, lora_dropout=spec.dropout,
                      bias="none", init_lora_weights=True)


def add_lora(generator: nn.Module, spec: LoraSpec) -> nn.Module:
    """Inject LoRA in place; freezes every base weight (only LoRA matrices stay trainable)."""
    from peft import inject_adapter_in_model

    for p in generator.parameters():
        p.requires_grad_(False)
    model = inject_adapter_in_model(lora_config(generator, spec), generator)
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name)
    return model


class _MergedWeightForward:
    """The forward of one peft LoRA Conv2d/Linear as a single op on the merged weight W + s·B·A.

    peft computes ``base(x) + s * B(A(x))``: two more convolutions per layer, forward and backward,
    whose narrow (rank-wide) outputs run far below the kernels' speed, and an add and a multiply
    over the whole activation. The same function of x, A and B is ``conv(x, W + s·B·A)``: B·A is a
    tiny product, the layer runs one convolution as a full fine-tune does, and autograd carries the
    weight gradient back to A and B. Equal up to float rounding (tests/nets/test_lora.py). Anything
    else — adapters disabled or merged, several adapters, dropout, a variant (DoRA) — takes
    peft's own forward. A callable instance attribute (not a bound method) so that the model still
    deep-copies and pickles.
    """

    def __init__(self, layer: nn.Module):
        self.layer = layer

    def __call__(self, x, *args, **kwargs):
        layer = self.layer
        active = layer.active_adapters
        name = active[0] if len(active) == 1 else None
        if (args or kwargs or name is None or layer.disable_adapters or layer.merged or name not in layer.lora_A
                or name in getattr(layer, "lora_variant", {})
                or not isinstance(layer.lora_dropout[name], nn.Identity)):
            return type(layer).forward(layer, x, *args, **kwargs)
        base = layer.get_base_layer()
        weight = base.weight + self.delta(layer, base, name)
        if isinstance(base, nn.Conv2d):
            return base._conv_forward(x, weight, base.bias)
        return nn.functional.linear(x, weight, base.bias)


    @staticmethod
    def delta(layer: nn.Module, base: nn.Module, name: str):
        """s·B·A shaped like the base weight, as one matmul (peft's conv-of-weights needs a conv call)."""
        a, b = layer.lora_A[name].weight, layer.lora_B[name].weight
        if isinstance(base, nn.Conv2d) and base.groups != 1:
            return layer.get_delta_weight(name)
        return (b.flatten(1) @ a.flatten(1)).view_as(base.weight) * layer.scaling[name]


def use_merged_weight_forward(model: nn.Module, enable: bool = True) -> int:
    """Make every peft LoRA Conv2d/Linear of ``model`` run as one op on its merged weight
    (``_MergedWeightForward``; ``enable=False`` restores peft's forward). Returns the layers changed."""
    from peft.tuners.lora import Conv2d as LoraConv2d
    from peft.tuners.lora import Linear as LoraLinear

    n = 0
    for module in model.modules():
        if isinstance(module, (LoraConv2d, LoraLinear)) and isinstance(module.get_base_layer(), (nn.Conv2d, nn.Linear)):
            if enable:
                module.forward = _MergedWeightForward(module)
            else:
                module.__dict__.pop("forward", None)
            n += 1
    return n


def lora_param_count(generator: nn.Module, ranks: dict[str, int]) -> int:
    """LoRA parameters a rank assignment costs, computed from layer shapes (no injection)."""
    total = 0
    for group, r in ranks.items():
        for name in generator.group_modules(group):
            m = generator.get_submodule(name)
            if isinstance(m, nn.Linear):
                total += r * (m.in_features + m.out_features)
            else:  # Conv2d: A is (r, in, kh, kw), B is (out, r, 1, 1)
                kh, kw = m.kernel_size
                total += r * (m.in_channels // m.groups * kh * kw + m.out_channels)
    return total


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA delta into its base weight and remove the LoRA wrappers (a plain generator)."""
    from peft.tuners.lora import LoraLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge(safe_merge=True)
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.get_base_layer())
    return model


CACHED_KEYS = ("concept_tokens",)  # stored but not learnt: in bytes, not in params


def adapter_state(model: nn.Module, concept_ids: list[int]) -> dict[str, torch.Tensor]:
    """LoRA matrices plus the new concept's embedding rows (table) or cached CLIP tokens: everything
    a concept needs stored."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if "lora_" in k}
    emb = model.concepts
    if hasattr(emb, "table"):
        table = emb.table().detach().cpu()
        state["concept_embedding"] = table[concept_ids].contiguous()
    elif isinstance(getattr(emb, "tokens", None), torch.Tensor):
        state["concept_tokens"] = emb.tokens[concept_ids].detach().cpu().contiguous()
    return state


def save_adapter(run_dir: str | Path, model: nn.Module, spec: LoraSpec, concept: str, concept_ids: list[int],
                 base_weights: str | Path) -> dict:
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    state = adapter_state(model, concept_ids)
    atomic_write(run_dir / ADAPTER_WEIGHTS, lambda p: save_file(state, str(p)))
    emb = model.concepts
    meta = {"concept": concept, "concept_ids": concept_ids, "groups": spec.groups, "ranks": spec.ranks,
            "alpha_ratio": spec.alpha_ratio, "base_sha256": sha256_file(base_weights),
            "base": str(base_weights),
            "params": sum(v.numel() for k, v in state.items() if k not in CACHED_KEYS),
            "cached_values": sum(v.numel() for k, v in state.items() if k in CACHED_KEYS),
            "bytes_fp32": sum(v.numel() * 4 for v in state.values()),
            "file_bytes": (run_dir / ADAPTER_WEIGHTS).stat().st_size,
            "concept_encoder": "clip" if "concept_tokens" in state else "table"}
    if "concept_tokens" in state:
        meta["instructions"] = [emb.instructions[i] for i in concept_ids]
    atomic_write_json(run_dir / ADAPTER_META, meta)
    return meta


def load_adapter(base_run: str | Path, adapter_dir: str | Path) -> tuple[nn.Module, dict]:
    """Base generator + a saved adapter -> the adapted (unmerged) generator, in eval mode."""
    from safetensors.torch import load_file

    from e2gan.nets.registry import load_generator

    adapter_dir, base_run = Path(adapter_dir), Path(base_run)
    meta_path = adapter_dir / ADAPTER_META
    if not meta_path.exists():
        raise InputError("no adapter", str(adapter_dir), f"a folder with {ADAPTER_META} and {ADAPTER_WEIGHTS}")
    try:
        meta = json.loads(meta_path.read_text())
        expected = meta["base_sha256"]
    except (ValueError, KeyError, TypeError):
        raise InputError("unreadable adapter metadata", str(meta_path), "an adapter.json written by e2gan") from None
    base_weights = base_run / "generator.safetensors"
    if base_weights.exists() and sha256_file(base_weights) != expected:
        raise InputError(f"adapter was trained on another base than {base_run}: {adapter_dir}", str(meta_path),
                         f"the base whose generator.safetensors has sha256 {expected[:12]}… "
                         f"(recorded: {meta.get('base', '?')})")
    generator, _ = load_generator(base_run)
    try:
        state = load_file(str(adapter_dir / ADAPTER_WEIGHTS))
    except Exception as exc:  # not a safetensors file (adapters are never unpickled)
        raise InputError("unreadable adapter weights", str(adapter_dir / ADAPTER_WEIGHTS),
                         f"a safetensors file written by e2gan ({str(exc).splitlines()[0][:160]})") from None
    rows = state.pop("concept_embedding", None)
    tokens = state.pop("concept_tokens", None)
    if tokens is not None:
        ids = generator.concepts.add_cached(tokens, meta.get("instructions") or [meta["concept"]] * len(tokens))
        assert ids == meta["concept_ids"], (ids, meta["concept_ids"])
    if rows is not None:
        ids = generator.concepts.add_concepts(len(meta["concept_ids"]))
        with torch.no_grad():
            generator.concepts.tables[-1].copy_(rows)
        assert ids == meta["concept_ids"], (ids, meta["concept_ids"])
    model = add_lora(generator, LoraSpec(ranks=meta["ranks"], alpha_ratio=meta["alpha_ratio"]))
    missing = model.load_state_dict(state, strict=False)
    if missing.unexpected_keys:
        raise InputError("adapter weights do not fit the base", str(adapter_dir / ADAPTER_WEIGHTS),
                         f"keys of this architecture (unexpected: {missing.unexpected_keys[:3]})")
    return model.eval(), meta



def merge_adapter(base: str | Path, adapter: str | Path, out: str | Path | None = None) -> dict:
    """Base run + saved LoRA adapter -> a plain generator (generator.safetensors + model.json) in ``out``.

    ``adapter``: the adapt run (or folder) holding adapter.json, or that file itself; ``out``
    defaults to ``<adapter>/merged`` and may be neither input. The merge is checked against the
    unmerged adapter on one image at the base's training resolution (config.json, else 64).
    The model.json is of kind 'adapt', like the adapt run's own merged model, so ``e2gan export``
    bakes in the new concept. Returns the concept, the adapter's ``adapter_params`` and ``ranks``,
    the merged generator's ``params``, ``merge_max_abs_diff``, ``out`` and ``weights`` (its path).
    """
    from e2gan.config import ModelConfig
    from e2gan.nets.params import count_params
    from e2gan.nets.registry import save_generator

    base, adapter = Path(base), Path(adapter)
    if adapter.is_file() and adapter.name == ADAPTER_META:
        adapter = adapter.parent
    meta_path, base_weights = adapter / ADAPTER_META, base / "generator.safetensors"
    if not (base / "model.json").is_file() or not base_weights.is_file():
        raise InputError("no trained generator", str(base), "a base run holding model.json and generator.safetensors")
    if not meta_path.is_file():
        raise InputError("no adapter", str(adapter),
                         "a LoRA adapt run (or folder) holding adapter.json and adapter.safetensors")
    out = Path(out) if out else adapter / "merged"
    if out.resolve() in (base.resolve(), adapter.resolve()):
        raise InputError(f"output folder {out}", "--out", "a folder other than the base and adapter runs")
    model, meta = load_adapter(base, adapter)  # refuses an adapter trained on another base
    base_meta = json.loads((base / "model.json").read_text())
    base_concepts = list(base_meta["concepts"])
    try:  # a parity check at the base's training resolution
        res = int(json.loads((base / "config.json").read_text())["data"]["resolution"])
    except (OSError, ValueError, KeyError, TypeError):
        res = 64
    x = torch.randn(1, 3, res, res, generator=torch.Generator().manual_seed(0))
    cid = torch.tensor(meta["concept_ids"][:1])
    with torch.no_grad():
        before = model(x, cid)
        generator = merge_lora(model)
        diff = float((generator(x, cid) - before).abs().max())
    extra = {"kind": "adapt", "merged": True, "method": "lora", "n_base_concepts": len(base_concepts),
             "base": str(base), "adapter": str(adapter), "adapter_ranks": meta["ranks"], "merge_max_abs_diff": diff}
    if base_meta.get("data"):
        extra["data"] = base_meta["data"]
    out.mkdir(parents=True, exist_ok=True)
    weights = save_generator(out, generator, ModelConfig(**base_meta["model"]), [*base_concepts, meta["concept"]],
                             extra=extra)
    return {"concept": meta["concept"], "adapter_params": meta["params"], "ranks": meta["ranks"],
            "params": count_params(generator), "merge_max_abs_diff": diff, "out": out, "weights": weights}

def random_ranks(groups: list[str], budget: int, generator: nn.Module, seed: int = 0,
                 choices: tuple[int, ...] = (1, 2, 4, 8, 16)) -> dict[str, int]:
    """The paper's 'random' reference: ranks drawn per group, the draw closest to ``budget`` params."""
    rng = random.Random(seed)
    best, best_gap = None, None
    for _ in range(200):
        ranks = {g: rng.choice(choices) for g in groups}
        gap = abs(lora_param_count(generator, ranks) - budget)
        if best_gap is None or gap < best_gap:
            best, best_gap = ranks, gap
    return best
