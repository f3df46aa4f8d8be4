"""A network's size in parameters: recorded by the LoRA surgery and reported by the metrics above."""
from __future__ import annotations

from torch import nn


def count_params(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
