"""Building blocks shared by the generators: norm factory, ResNet block, resize-conv up-sampling."""
from __future__ import annotations

from torch import Tensor, nn

from e2gan.errors import InputError

NORMS = ("instance", "batch", "group", "none")


def check_norm(norm: str, where: str = "norm") -> str:
    if norm not in NORMS:
        raise InputError(f"norm {norm!r}", where, f"one of {', '.join(NORMS)}")
    return norm


def conv_bias(norm: str) -> bool:
    """pix2pix's rule: a conv needs its own bias only when the norm after it has no learnt shift.

    'instance' is affine-free (CycleGAN/pix2pix ResNet style), 'batch' and 'group' have a shift.
    """
    return check_norm(norm) in ("instance", "none")


def _groups_for(channels: int, max_groups: int = 32) -> int:
    g = min(max_groups, channels)
    while channels % g:
        g -= 1
    return g


def make_norm(norm: str, channels: int) -> nn.Module:
    """2-D norm layer by name.

    'instance': InstanceNorm2d without affine parameters and without running stats, as in the
    CycleGAN/pix2pix ResNet generator (so it adds no parameters and behaves the same in train and
    eval). 'group': GroupNorm with up to 32 groups (the largest divisor of `channels` <= 32).
    """
    check_norm(norm)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "group":
        return nn.GroupNorm(_groups_for(channels), channels)
    return nn.Identity()


def conv_block(cin: int, cout: int, kernel: int, stride: int = 1, norm: str = "instance",
               reflect: bool = False) -> list[nn.Module]:
    """conv -> norm -> ReLU as a flat list (flat so LoRA target names stay short: `group.<i>`)."""
    pad = kernel // 2
    layers: list[nn.Module] = []
    if reflect:
        layers.append(nn.ReflectionPad2d(pad))
        pad = 0
    layers += [nn.Conv2d(cin, cout, kernel, stride, pad, bias=conv_bias(norm)),
               make_norm(norm, cout), nn.ReLU(True)]
    return layers


def resize_up_block(cin: int, cout: int, norm: str = "instance") -> list[nn.Module]:
    """Nearest x2 up-sampling + 3x3 conv: exports to LiteRT and takes LoRA, unlike ConvTranspose2d."""
    return [nn.Upsample(scale_factor=2, mode="nearest")] + conv_block(cin, cout, 3, 1, norm)


class ResnetBlock(nn.Module):
    """pix2pix ResNet block: x + (pad-conv3-norm-ReLU-[dropout]-pad-conv3-norm)(x)."""

    def __init__(self, dim: int, norm: str = "instance", use_dropout: bool = False):
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias),
                                   make_norm(norm, dim), nn.ReLU(True)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), make_norm(norm, dim)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


def check_divisible(x: Tensor, factor: int, where: str) -> None:
    h, w = x.shape[-2:]
    if h % factor or w % factor:
        raise InputError(f"image size {h}x{w}", where,
                         f"height and width divisible by {factor} (e.g. {h // factor * factor or factor}"
                         f"x{w // factor * factor or factor})")
