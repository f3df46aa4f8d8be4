"""pix2pix/CycleGAN `resnet_9blocks` generator: the per-concept baseline the paper compares to.

c7s1-ngf, d2ngf, d4ngf, n_blocks x R4ngf, u2ngf, ungf, c7s1-3, tanh. Grouped as `down`,
`blocks`, `up` (instead of pix2pix's single `model` Sequential) so costs can be read per stage.
"""
from __future__ import annotations

from torch import Tensor, nn

from e2gan.errors import InputError
from e2gan.nets.layers import ResnetBlock, check_divisible, conv_bias, conv_block, make_norm, resize_up_block

UPSAMPLES = ("transpose", "resize")


class ResnetGenerator(nn.Module):
    def __init__(self, ngf: int = 64, n_blocks: int = 9, norm: str = "instance", upsample: str = "transpose",
                 use_dropout: bool = False, in_channels: int = 3, out_channels: int = 3):
        """upsample: 'transpose' is faithful (ConvTranspose2d k3 s2 p1 op1; LiteRT cannot convert
        it and peft cannot put LoRA on it); 'resize' is nearest x2 + 3x3 conv (same params)."""
        super().__init__()
        if norm not in ("instance", "batch"):
            raise InputError(f"norm {norm!r}", "ResnetGenerator", "'instance' or 'batch' (pix2pix's choices)")
        if upsample not in UPSAMPLES:
            raise InputError(f"upsample {upsample!r}", "ResnetGenerator", f"one of {', '.join(UPSAMPLES)}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.down = nn.Sequential(*conv_block(in_channels, ngf, 7, norm=norm, reflect=True),
                                  *conv_block(ngf, 2 * ngf, 3, 2, norm),
                                  *conv_block(2 * ngf, 4 * ngf, 3, 2, norm))
        self.blocks = nn.Sequential(*[ResnetBlock(4 * ngf, norm, use_dropout) for _ in range(n_blocks)])
        up: list[nn.Module] = []
        for cin in (4 * ngf, 2 * ngf):
            if upsample == "transpose":
                up += [nn.ConvTranspose2d(cin, cin // 2, 3, 2, 1, output_padding=1, bias=conv_bias(norm)),
                       make_norm(norm, cin // 2), nn.ReLU(True)]
            else:
                up += resize_up_block(cin, cin // 2, norm)
        self.up = nn.Sequential(*up, nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh())

    def forward(self, x: Tensor, concept_ids: Tensor | None = None) -> Tensor:
        """concept_ids is accepted and ignored (one model per concept) so both generators share a call."""
        check_divisible(x, 4, "ResnetGenerator input")
        return self.up(self.blocks(self.down(x)))
