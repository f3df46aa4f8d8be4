"""Concept encoders: map concept ids to the token sequence the transformer block cross-attends to.

Any encoder works with the generator if it has an integer attribute `dim` and
`forward(concept_ids: LongTensor[B]) -> Tensor[B, T, dim]`.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from e2gan.errors import InputError


class ConceptEmbedding(nn.Module):
    """A learnt table of `n_tokens` tokens per concept.

    The table is stored as a list of chunks (`tables.0` holds the base concepts, each
    `add_concepts` call appends one more) so a new concept's rows can be trained while the base
    rows stay frozen: `requires_grad` is per parameter, not per row. A checkpoint of a grown
    table loads into a model built with only the base concepts (the chunks are re-created).
    """

    def __init__(self, n_concepts: int, n_tokens: int = 4, dim: int = 64, init_std: float = 1.0):
        super().__init__()
        if n_concepts < 1 or n_tokens < 1 or dim < 1:
            raise InputError(f"n_concepts={n_concepts}, n_tokens={n_tokens}, dim={dim}",
                             "ConceptEmbedding", "all >= 1")
        self.n_tokens, self.dim, self.init_std = n_tokens, dim, init_std
        # Unit-scale tokens, like a normalised text encoder's output, so cross-attention sees a
        # signal as strong as the image tokens from the start.
        self.tables = nn.ParameterList([nn.Parameter(torch.randn(n_concepts, n_tokens, dim) * init_std)])

    @property
    def n_concepts(self) -> int:
        return sum(t.shape[0] for t in self.tables)

    def table(self) -> Tensor:
        """All rows, [n_concepts, n_tokens, dim]."""
        return self.tables[0] if len(self.tables) == 1 else torch.cat(list(self.tables), 0)

    def forward(self, concept_ids: Tensor) -> Tensor:
        return self.table()[concept_ids]

    @torch.no_grad()
    def add_concepts(self, k: int = 1, init: str | int = "random") -> list[int]:
        """Append `k` concepts as a new chunk and return their ids.

        init: 'random' (same distribution as the base table), 'mean' (mean of all existing rows),
        or an int: copy that existing concept's rows (e.g. the nearest base concept).
        """
        if k < 1:
            raise InputError(f"k={k}", "add_concepts", "k >= 1")
        old = self.table().detach()
        if init == "random":
            new = torch.randn(k, self.n_tokens, self.dim, device=old.device, dtype=old.dtype) * self.init_std
        elif init == "mean":
            new = old.mean(0, keepdim=True).repeat(k, 1, 1)
        elif isinstance(init, int) and not isinstance(init, bool) and 0 <= init < old.shape[0]:
            new = old[init:init + 1].repeat(k, 1, 1)
        else:
            raise InputError(f"init {init!r}", "add_concepts",
                             f"'random', 'mean' or an existing concept id in 0..{old.shape[0] - 1}")
        first = old.shape[0]
        self.tables.append(nn.Parameter(new.clone()))
        return list(range(first, first + k))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A checkpoint with added chunks loads into a model built with only the base concepts:
        # grow placeholder chunks first, the ParameterList then copies the values in.
        base = self.tables[0]
        while f"{prefix}tables.{len(self.tables)}" in state_dict:
            shape = state_dict[f"{prefix}tables.{len(self.tables)}"].shape
            self.tables.append(nn.Parameter(base.new_empty(shape)))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
