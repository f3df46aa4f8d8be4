"""The E²GAN generator: pix2pix's ResNet generator cut to 3 ResNet blocks plus one transformer
block at 1/8 resolution that cross-attends to concept tokens.

Layout (paper Fig. 3; widths, norms and attention sizes are this suite's choices):

    down  c7s1-w, d2w, d4w (stride-2 3x3 convs)             H   -> H/4
    rb1, rb2  ResNet blocks on 4w channels                   H/4
    ds    stride-2 3x3 conv 4w -> 4w                         H/4 -> H/8
    tb    LN-self-attn, LN-cross-attn(concept tokens), LN-FFN on (H/8)*(W/8) tokens
    us    nearest x2 + 3x3 conv                              H/8 -> H/4
    rb3   ResNet block                                       H/4
    up    2 x (nearest x2 + 3x3 conv), c7s1-3, tanh          H/4 -> H

Every module sits under an attribute named after its group, so `named_modules()` names start
with the group and LoRA targets can be chosen per group. The concept encoder is the extra group
'concepts'. No ConvTranspose2d (no LoRA for it in peft, and LiteRT fails on pix2pix's variant).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from e2gan.errors import InputError
from e2gan.nets.conditioning import ConceptEmbedding
from e2gan.nets.layers import ResnetBlock, check_divisible, check_norm, conv_block, resize_up_block

LAYER_GROUPS = ("down", "rb1", "rb2", "ds", "tb", "us", "rb3", "up")
CRUCIAL_GROUPS = ("down", "ds", "tb", "us", "up")  # where the paper puts LoRA; ResNet blocks stay frozen
PARAM_GROUPS = LAYER_GROUPS + ("concepts",)


class Attention(nn.Module):
    """Multi-head attention from plain Linear layers and matmul + softmax.

    Separate to_q/to_k/to_v/to_out Linears so LoRA can target each by name. Explicit matmuls
    rather than scaled_dot_product_attention: they export plainly and torch's flop counter sees
    them (it does not count SDPA on CPU). Memory is O(tokens^2): 1024 tokens at 256².
    """

    def __init__(self, dim: int, heads: int, context_dim: int | None = None):
        super().__init__()
        if dim % heads:
            raise InputError(f"attn_heads={heads}", "E2GANGenerator",
                             f"a divisor of the transformer width {dim}")
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(context_dim or dim, dim)
        self.to_v = nn.Linear(context_dim or dim, dim)
        self.to_out = nn.Linear(dim, dim)

    def _split(self, t: Tensor) -> Tensor:  # [B, N, D] -> [B, heads, N, D/heads]
        b, n, d = t.shape
        return t.reshape(b, n, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        ctx = x if context is None else context
        q, k, v = self._split(self.to_q(x)), self._split(self.to_k(ctx)), self._split(self.to_v(ctx))
        attn = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(x.shape)
        return self.to_out(out)


class TransformerBlock(nn.Module):
    """Pre-norm block: x += SA(LN x); x += CA(LN x, concept tokens); x += FFN(LN x).

    No positional encoding: the convolutions around it already give every token local position
    information, and leaving it out keeps the block resolution-agnostic.
    """

    def __init__(self, dim: int, context_dim: int, heads: int = 4, ffn_mult: int = 4):
        super().__init__()
        self.norm1, self.self_attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2, self.cross_attn = nn.LayerNorm(dim), Attention(dim, heads, context_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, dim * ffn_mult), nn.GELU(), nn.Linear(dim * ffn_mult, dim))

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)  # [B, h*w, C]
        t = t + self.self_attn(self.norm1(t))
        t = t + self.cross_attn(self.norm2(t), context)
        t = t + self.ffn(self.norm3(t))
        return t.transpose(1, 2).reshape(b, c, h, w)


class E2GANGenerator(nn.Module):
    LAYER_GROUPS = LAYER_GROUPS
    CRUCIAL_GROUPS = CRUCIAL_GROUPS
    PARAM_GROUPS = PARAM_GROUPS

    def __init__(self, n_concepts: int, width: int = 64, in_channels: int = 3, out_channels: int = 3,
                 n_blocks_before: int = 2, n_blocks_after: int = 1, norm: str = "instance",
                 attn_heads: int = 4, n_tokens: int = 4, token_dim: int | None = None,
                 ffn_mult: int = 4, concept_encoder: nn.Module | None = None, lowres_skip: bool = False):
        """token_dim: concept token size (default: the transformer width 4*width).
        concept_encoder: any module with `.dim` mapping ids [B] -> [B, T, dim]; default a
        ConceptEmbedding(n_concepts, n_tokens, token_dim).
        n_blocks_before/after: ResNet blocks before DS / after US (paper: 2 and 1); they are named
        rb1..rb{before} and rb{before+1}.. so the defaults give rb1, rb2, rb3.
        """
        super().__init__()
        check_norm(norm, "E2GANGenerator norm")
        if width < 1 or n_blocks_before < 0 or n_blocks_after < 0:
            raise InputError(f"width={width}, n_blocks_before={n_blocks_before}, n_blocks_after="
                             f"{n_blocks_after}", "E2GANGenerator", "width >= 1 and block counts >= 0")
        w, d = width, 4 * width
        self.width, self.in_channels, self.out_channels = width, in_channels, out_channels
        # The paper's figure shows no skip around DS -> TB -> US; an identity skip there is an
        # ablation axis (it lets full-resolution detail bypass the low-resolution bottleneck).
        self.lowres_skip = lowres_skip
        concepts = (concept_encoder if concept_encoder is not None
                    else ConceptEmbedding(n_concepts, n_tokens, token_dim or d))
        self.down = nn.Sequential(*conv_block(in_channels, w, 7, norm=norm, reflect=True),
                                  *conv_block(w, 2 * w, 3, 2, norm), *conv_block(2 * w, d, 3, 2, norm))
        self._before = [f"rb{i + 1}" for i in range(n_blocks_before)]
        self._after = [f"rb{n_blocks_before + i + 1}" for i in range(n_blocks_after)]
        for name in self._before:
            setattr(self, name, ResnetBlock(d, norm))
        self.ds = nn.Sequential(*conv_block(d, d, 3, 2, norm))
        self.tb = TransformerBlock(d, concepts.dim, attn_heads, ffn_mult)
        self.us = nn.Sequential(*resize_up_block(d, d, norm))
        for name in self._after:
            setattr(self, name, ResnetBlock(d, norm))
        self.up = nn.Sequential(*resize_up_block(d, 2 * w, norm), *resize_up_block(2 * w, w, norm),
                                nn.ReflectionPad2d(3), nn.Conv2d(w, out_channels, 7), nn.Tanh())
        self.concepts = concepts  # registered last so children list in data-flow order, then 'concepts'
        self.layer_groups = ("down", *self._before, "ds", "tb", "us", *self._after, "up")

    def forward(self, x: Tensor, concept_ids: Tensor) -> Tensor:
        check_divisible(x, 8, "E2GANGenerator input")
        context = self.concepts(concept_ids)
        h = self.down(x)
        for name in self._before:
            h = getattr(self, name)(h)
        low = self.us(self.tb(self.ds(h), context))
        h = h + low if self.lowres_skip else low
        for name in self._after:
            h = getattr(self, name)(h)
        return self.up(h)

    def group_modules(self, group: str) -> list[str]:
        """Fully qualified names of the Conv2d/Linear leaves of a group (peft `target_modules`)."""
        if group not in self.layer_groups:
            raise InputError(f"layer group {group!r}", "E2GANGenerator.group_modules",
                             f"one of {', '.join(self.layer_groups)}")
        return [n for n, m in getattr(self, group).named_modules(prefix=group)
                if isinstance(m, (nn.Conv2d, nn.Linear))]

    def group_of(self, param_name: str) -> str:
        """The group ('down' ... 'up', or 'concepts') a parameter or module name belongs to."""
        head = param_name.split(".", 1)[0]
        if head not in (*self.layer_groups, "concepts"):
            raise InputError(f"name {param_name!r}", "E2GANGenerator.group_of", "a name under a layer group")
        return head
