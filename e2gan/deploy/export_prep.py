"""The module litert-torch is handed: LoRA merged, concept id baked in, reflection pads as slices,
and the layers the converter is known to get wrong refused before converting.

Measured with litert-torch 0.10.0 (see DESIGN §5): a ConvTranspose2d with stride > 1 converts
only with padding=0 (any kernel, any output_padding) or with kernel - 2*padding == stride and no
output_padding. Odd kernels with padding (pix2pix's k3 s2 p1 op1) fail to legalize; with
padding *and* output_padding (e.g. k4 s2 p1 op1) it converts but computes wrong values.
"""
from __future__ import annotations

import copy
import inspect
import sys
from typing import Any

import torch
from torch import Tensor, nn

from e2gan.errors import InputError

__all__ = ["ConceptBound", "SliceReflectionPad2d", "REFLECT_PADS", "slice_reflection_pads", "takes_concepts",
           "merged_copy", "n_concepts", "check_exportable"]

# How ReflectionPad2d reaches the .tflite: "slices" (SliceReflectionPad2d: the same values from
# row/column slices and one concatenation per side pair) or "mirror-pad" (the converter's own
# lowering, MIRROR_PAD). Measured with ai-edge-litert 2.3.0 on 2 CPU threads: the E²GAN width-16
# generator at 64² runs 2.2x faster with slices (1.39 vs 3.03 ms); the benchmarks time both.
REFLECT_PADS = ("slices", "mirror-pad")


class ConceptBound(nn.Module):
    """``generator(x, concept_ids)`` as ``f(x)`` with a constant concept id (one per image)."""

    def __init__(self, generator: nn.Module, concept_id: int):
        super().__init__()
        self.generator = generator
        self.concept_id = int(concept_id)
        self.register_buffer("concept_ids", torch.tensor([int(concept_id)], dtype=torch.long), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.generator(x, self.concept_ids.expand(x.shape[0]))


class SliceReflectionPad2d(nn.Module):
    """``nn.ReflectionPad2d`` from slices and concatenation: bit-identical values, and ops the
    LiteRT CPU runtime runs fast (see ``REFLECT_PADS``). Padding: (left, right, top, bottom)."""

    def __init__(self, padding: tuple[int, int, int, int]):
        super().__init__()
        self.left, self.right, self.top, self.bottom = (int(v) for v in padding)

    @staticmethod
    def _reflect(x: Tensor, dim: int, before: int, after: int) -> Tensor:
        if not (before or after):
            return x
        n = x.shape[dim]
        # Reflection excludes the edge itself: rows before..1 first, then n-2..n-1-after.
        parts = ([x.narrow(dim, i, 1) for i in range(before, 0, -1)] + [x]
                 + [x.narrow(dim, n - 1 - i, 1) for i in range(1, after + 1)])
        return torch.cat(parts, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self._reflect(self._reflect(x, -2, self.top, self.bottom), -1, self.left, self.right)


def slice_reflection_pads(module: nn.Module, copied: bool) -> tuple[nn.Module, int]:
    """``module`` (copied first unless it already is a copy) with every ReflectionPad2d as slices."""
    if not any(isinstance(m, nn.ReflectionPad2d) for m in module.modules()):
        return module, 0
    module = module if copied else copy.deepcopy(module)
    swapped = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ReflectionPad2d):
                setattr(parent, name, SliceReflectionPad2d(tuple(child.padding)))
                swapped += 1
    return module, swapped


def takes_concepts(generator: nn.Module) -> bool:
    """Whether forward takes concept ids as a required second argument (E²GAN; pix2pix does not)."""
    params = list(inspect.signature(generator.forward).parameters.values())
    return len(params) >= 2 and params[1].default is inspect.Parameter.empty


def merged_copy(generator: nn.Module) -> tuple[nn.Module, bool]:
    """A copy with LoRA folded into the base weights when the generator still carries peft LoRA layers."""
    if "peft" not in sys.modules:  # LoRA layers exist only if peft was imported; don't pay its import
        return generator, False
    from peft.tuners.lora import LoraLayer

    if not any(isinstance(m, LoraLayer) for m in generator.modules()):
        return generator, False
    from e2gan.nets.lora import merge_lora

    return merge_lora(copy.deepcopy(generator)), True


def n_concepts(generator: nn.Module) -> int | None:
    """How many concepts the generator's embedding holds (None: not a concept-conditioned net)."""
    concepts = getattr(generator, "concepts", None)
    n = getattr(concepts, "n_concepts", None)
    return int(n) if n is not None else None


# ----------------------------------------------------------------------------- known-bad layers
def _pair(v: Any) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _conv_transpose_problem(m: nn.ConvTranspose2d) -> str | None:
    k, s, p, op = _pair(m.kernel_size), _pair(m.stride), _pair(m.padding), _pair(m.output_padding)
    for kk, ss, pp, oo in zip(k, s, p, op):
        if ss <= 1 or pp == 0:
            continue
        if kk - 2 * pp != ss:
            return "fails to legalize it (kernel - 2*padding != stride)"
        if oo:
            return "converts it but computes wrong values (padding with output_padding)"
    return None


def check_exportable(module: nn.Module) -> None:
    """Raise a one-line InputError naming the first layer LiteRT is known not to convert correctly."""
    for name, m in module.named_modules():
        if isinstance(m, nn.ConvTranspose2d):
            problem = _conv_transpose_problem(m)
            if problem:
                k, s, p, op = (_pair(getattr(m, a)) for a in ("kernel_size", "stride", "padding", "output_padding"))
                desc = f"ConvTranspose2d k{k[0]} s{s[0]} p{p[0]} op{op[0]}"
                raise InputError(f"layer '{name or type(module).__name__}' ({desc})", "export to LiteRT",
                                 f"a convertible layer: litert-torch {problem}; use resize-conv up-sampling "
                                 "(arch 'pix2pix-resize') or ConvTranspose2d with padding=0 or kernel=2*padding+stride")

