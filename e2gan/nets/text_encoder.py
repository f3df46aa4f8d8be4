"""A CLIP text concept encoder: a frozen ``transformers.CLIPTextModel`` turns each concept's
instruction into the tokens the generator's transformer block cross-attends to.

An alternative to the learnt ``ConceptEmbedding`` table with the same interface: ``.dim`` and
``forward(concept_ids[B]) -> [B, T, dim]``. The text model runs once per concept, when the
concept is added; its output (``last_hidden_state``, T = ``n_tokens`` positions, padded or
truncated) is cached in the ``tokens`` buffer, so training and inference never run CLIP, the
text model's weights are neither in ``parameters()`` nor in the ``state_dict``, and a saved
generator loads without them (``CLIPConceptEncoder.cached(...)`` rebuilds the shapes; the
buffer grows to the checkpoint's size on load). The only trainable part is the optional
``proj`` (Linear hidden -> token_dim) when ``token_dim`` differs from the text model's width.

``normalize=True`` (default) applies a per-token LayerNorm without affine parameters at caching
time: CLIP's hidden states have a few very large components (notably at the start token) and the
generator's cross-attention has no norm on its keys and values. Off gives the raw CLIP states
that Stable Diffusion's UNet sees.

``model`` is a hub id (``openai/clip-vit-large-patch14``), a local folder holding a
CLIPTextModel (config.json + weights + tokenizer files), or a diffusers pipeline folder (its
``text_encoder`` and ``tokenizer`` subfolders are used). Offline, a hub id is looked up in the
local cache only; missing -> one ``InputError`` saying how to provide a folder.

A shell that knows its ``model`` (``cached(..., model=...)``, as ``load_generator`` builds it)
loads the text model on the first ``add_concepts`` only, so evaluating or exporting a trained
generator never needs CLIP, while adapting it to a new concept does; the text model found then
must fingerprint like the one the cached tokens came from.

Cost of a concept: the cached tokens are the frozen text model's output, not learnt, so they
count in no trainable-parameter figure; they are stored (``n_tokens x hidden`` fp32 values per
concept, in the generator and in a concept's adapter, which thus loads and deploys without
CLIP) and so count in bytes stored.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from e2gan.errors import InputError


def load_clip_text(model: str | Path, *, revision: str | None = None, device: str | torch.device = "cpu"):
    """(text model in eval mode with requires_grad off, tokenizer, provenance dict) from a folder or hub id."""
    from transformers import CLIPTextModel, CLIPTokenizer

    from e2gan.teachers.pretrained import fingerprint_folder, resolve_pretrained

    where = "CLIP concept encoder"
    path, prov = resolve_pretrained(str(model), revision=revision, markers=("model_index.json", "config.json"),
                                    where=where, what="text model")
    text_path, tok_path = path, path
    folder = prov["folder"]
    if folder is not None and (folder / "model_index.json").is_file():  # a diffusers pipeline folder
        text_path, tok_path = str(folder / "text_encoder"), str(folder / "tokenizer")
    kwargs = {"local_files_only": True} if folder is not None else {"revision": revision}
    try:
        text = CLIPTextModel.from_pretrained(text_path, **kwargs)
        tokenizer = CLIPTokenizer.from_pretrained(tok_path, **kwargs)
    except (OSError, ValueError, KeyError, TypeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise InputError(f"text model {str(model)!r}", where,
                         f"a folder or hub id holding a CLIPTextModel and its tokenizer ({first})") from None
    text.requires_grad_(False).eval().to(device)
    if folder is not None:
        files = fingerprint_folder(Path(text_path))
        prov = {**prov, "fingerprint": hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()}
    return text, tokenizer, {k: v for k, v in prov.items() if k != "folder"}


class CLIPConceptEncoder(nn.Module):
    """Frozen CLIP text features per concept, cached; optional learnt projection to ``token_dim``."""

    def __init__(self, model: str | Path | None = None, instructions: Sequence[str] = (), *,
                 n_tokens: int = 77, token_dim: int | None = None, normalize: bool = True,
                 text_model: nn.Module | None = None, tokenizer=None, hidden_size: int | None = None,
                 device: str | torch.device = "cpu", revision: str | None = None, strict_length: bool = False):
        """Either ``model`` (folder or hub id) or a ready ``text_model`` + ``tokenizer``; or neither,
        with ``hidden_size``, for a shell whose tokens come from a checkpoint (see ``cached``).

        strict_length: refuse an instruction longer than ``n_tokens`` (start and end tokens
        included) instead of truncating it (truncated instructions can share all their tokens).
        """
        super().__init__()
        if n_tokens < 1:
            raise InputError(f"n_tokens={n_tokens}", "CLIP concept encoder", "n_tokens >= 1")
        self.provenance: dict = {}
        self.strict_length, self._revision, self._device = strict_length, revision, device
        if model is not None:
            text_model, tokenizer, self.provenance = load_clip_text(model, revision=revision, device=device)
        elif text_model is not None:
            if tokenizer is None:
                raise InputError("tokenizer", "CLIP concept encoder", "a tokenizer with the text model")
            text_model.requires_grad_(False).eval()
        elif hidden_size is None:
            raise InputError("text model", "CLIP concept encoder",
                             "a model folder or hub id, a text_model and tokenizer, or hidden_size for a shell")
        # Not registered as a submodule: it stays out of parameters(), state_dict() and .to().
        object.__setattr__(self, "_text", text_model)
        object.__setattr__(self, "_tokenizer", tokenizer)
        if text_model is not None:
            max_pos = text_model.config.max_position_embeddings
            if n_tokens > max_pos:
                raise InputError(f"n_tokens={n_tokens}", "CLIP concept encoder",
                                 f"at most the text model's {max_pos} positions")
            hidden_size = text_model.config.hidden_size
        self.model_name = str(model) if model is not None else None
        self.n_tokens, self.hidden_size, self.normalize = n_tokens, int(hidden_size), normalize
        self.dim = int(token_dim or hidden_size)
        self.proj = nn.Linear(self.hidden_size, self.dim) if self.dim != self.hidden_size else nn.Identity()
        self.instructions: list[str] = []
        self.register_buffer("tokens", torch.zeros(0, n_tokens, self.hidden_size), persistent=True)
        if instructions:
            self.add_concepts(list(instructions))

    @classmethod
    def cached(cls, n_concepts: int, n_tokens: int, hidden_size: int, token_dim: int | None = None,
               normalize: bool = True, *, model: str | None = None, provenance: dict | None = None,
               instructions: Sequence[str] = (), strict_length: bool = False) -> "CLIPConceptEncoder":
        """A shell of the right shapes to ``load_state_dict`` a trained generator into (no CLIP needed).

        With ``model`` (and the ``provenance`` of ``describe()``), the first ``add_concepts`` loads
        that text model and checks its fingerprint against the provenance."""
        enc = cls(None, n_tokens=n_tokens, token_dim=token_dim, normalize=normalize, hidden_size=hidden_size,
                  strict_length=strict_length)
        enc.tokens = torch.zeros(n_concepts, n_tokens, hidden_size)
        enc.model_name = str(model) if model else None
        enc.provenance = dict(provenance or {})
        enc.instructions = list(instructions)
        return enc

    def _ensure_text(self) -> None:
        """Load the text model of a shell that knows its model (see ``cached``)."""
        if self._text is not None:
            return
        if self.model_name is None:
            raise InputError("new concepts", "CLIP concept encoder",
                             "an encoder built with its text model (this one only holds cached tokens)")
        text, tokenizer, prov = load_clip_text(self.model_name, revision=self._revision, device=self._device)
        where = f"CLIP concept encoder {self.model_name!r}"
        if text.config.hidden_size != self.hidden_size:
            raise InputError(f"text model width {text.config.hidden_size}", where,
                             f"the width {self.hidden_size} the cached tokens have")
        old, new = self.provenance.get("fingerprint"), prov.get("fingerprint")
        if old and new and old != new:
            raise InputError(f"text model files (fingerprint {new[:12]})", where,
                             f"the files the cached tokens came from (fingerprint {old[:12]})")
        object.__setattr__(self, "_text", text)
        object.__setattr__(self, "_tokenizer", tokenizer)
        self.provenance = {**self.provenance, **{k: v for k, v in prov.items() if v is not None}}

    @property
    def n_concepts(self) -> int:
        return self.tokens.shape[0]

    @torch.no_grad()
    def encode(self, instructions: Sequence[str]) -> Tensor:
        """[len(instructions), n_tokens, hidden] from the frozen text model (float32, on CPU)."""
        self._ensure_text()
        if not instructions or not all(isinstance(t, str) and t.strip() for t in instructions):
            raise InputError("instructions", "CLIP concept encoder", "non-empty instruction strings")
        if self.strict_length:
            max_pos = self._text.config.max_position_embeddings
            n, text = max((len(self._tokenizer(t, truncation=False).input_ids), t) for t in instructions)
            if n > self.n_tokens:  # report the longest, so one change of n_tokens fits them all
                raise InputError(f"instruction {text!r} is {n} tokens (start and end included)",
                                 f"model.n_tokens = {self.n_tokens}",
                                 f"n_tokens >= {n} for the CLIP concept encoder (at most {max_pos}), "
                                 "or a shorter instruction")
        batch = self._tokenizer(list(instructions), padding="max_length", max_length=self.n_tokens,
                                truncation=True, return_tensors="pt")
        device = next(self._text.parameters()).device
        out = self._text(input_ids=batch.input_ids.to(device)).last_hidden_state.float()
        if self.normalize:
            out = F.layer_norm(out, (out.shape[-1],))
        return out.cpu()

    def add_concepts(self, instructions: Sequence[str]) -> list[int]:
        """Encode and append concepts; returns their ids. A new concept needs only its instruction."""
        if isinstance(instructions, str):
            instructions = [instructions]
        new = self.encode(instructions).to(self.tokens.device, self.tokens.dtype)
        first = self.n_concepts
        self.tokens = torch.cat([self.tokens, new], 0)
        self.instructions += list(instructions)
        return list(range(first, first + len(instructions)))

    def add_cached(self, tokens: Tensor, instructions: Sequence[str]) -> list[int]:
        """Append concepts whose tokens were encoded before (a saved adapter); no text model needed."""
        if isinstance(instructions, str):
            instructions = [instructions]
        if tokens.ndim != 3 or tokens.shape[1:] != self.tokens.shape[1:] or len(tokens) != len(instructions):
            raise InputError(f"cached tokens of shape {tuple(tokens.shape)}", "CLIP concept encoder",
                             f"[{len(instructions)}, {self.n_tokens}, {self.hidden_size}], one row per instruction")
        first = self.n_concepts
        self.tokens = torch.cat([self.tokens, tokens.to(self.tokens.device, self.tokens.dtype)], 0)
        self.instructions += list(instructions)
        return list(range(first, first + len(instructions)))

    def forward(self, concept_ids: Tensor) -> Tensor:
        return self.proj(self.tokens[concept_ids])

    def describe(self) -> dict:
        return {"kind": "clip", "model": self.model_name, **self.provenance, "n_tokens": self.n_tokens,
                "hidden_size": self.hidden_size, "dim": self.dim, "normalize": self.normalize,
                "instructions": list(self.instructions)}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A checkpoint may hold more concepts than this encoder was built with: take its size.
        saved = state_dict.get(f"{prefix}tokens")
        if saved is not None and saved.shape != self.tokens.shape:
            self.tokens = self.tokens.new_zeros(saved.shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
