"""Conditional PatchGAN discriminator (pix2pix `NLayerDiscriminator`, `basic` = 3 layers = 70x70)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from e2gan.errors import InputError
from e2gan.nets.layers import check_norm, conv_bias, make_norm


def _kernels_strides(n_layers: int) -> list[tuple[int, int]]:
    return [(4, 2)] * n_layers + [(4, 1), (4, 1)]


def receptive_field(n_layers: int) -> int:
    """Receptive field (pixels) of one output logit: 70 for n_layers=3, 34 for 2, 16 for 1."""
    rf = 1
    for k, s in reversed(_kernels_strides(n_layers)):
        rf = (rf - 1) * s + k
    return rf


class PatchDiscriminator(nn.Module):
    """Layout: `stem` (conv, LReLU), `down` (n_layers-1 stride-2 conv-norm-LReLU),
    `mid` (stride-1 conv-norm-LReLU), `head` (conv to 1 logit channel). Logits, no sigmoid."""

    def __init__(self, in_channels: int = 6, ndf: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        check_norm(norm, "PatchDiscriminator norm")
        if n_layers < 1:
            raise InputError(f"n_layers={n_layers}", "PatchDiscriminator", "n_layers >= 1")
        self.in_channels, self.n_layers = in_channels, n_layers
        bias = conv_bias(norm)
        lrelu = lambda: nn.LeakyReLU(0.2, True)  # noqa: E731
        self.stem = nn.Sequential(nn.Conv2d(in_channels, ndf, 4, 2, 1), lrelu())
        down: list[nn.Module] = []
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2 ** n, 8)
            down += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2, 1, bias=bias),
                     make_norm(norm, ndf * mult), lrelu()]
        self.down = nn.Sequential(*down)
        prev, mult = mult, min(2 ** n_layers, 8)
        self.mid = nn.Sequential(nn.Conv2d(ndf * prev, ndf * mult, 4, 1, 1, bias=bias),
                                 make_norm(norm, ndf * mult), lrelu())
        self.head = nn.Conv2d(ndf * mult, 1, 4, 1, 1)

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.n_layers)

    def forward(self, source: Tensor, image: Tensor) -> Tensor:
        """Logits [B, 1, h, w] for (source, image) pairs, concatenated on channels."""
        return self.head(self.mid(self.down(self.stem(torch.cat([source, image], 1)))))
