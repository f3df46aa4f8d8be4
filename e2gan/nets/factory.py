"""Networks by name: build a generator (E²GAN or a pix2pix ResNet) or the conditional PatchGAN,
pix2pix-initialised."""
from __future__ import annotations

from torch import nn

from e2gan.errors import InputError
from e2gan.nets.discriminator import PatchDiscriminator
from e2gan.nets.generator import E2GANGenerator
from e2gan.nets.pix2pix import ResnetGenerator

GENERATOR_ARCHS = ("e2gan", "pix2pix", "pix2pix-resize")

__all__ = ["GENERATOR_ARCHS", "build_generator", "build_discriminator", "init_weights"]


def init_weights(module: nn.Module, gain: float = 0.02) -> nn.Module:
    """pix2pix 'normal' init: conv/linear weights ~ N(0, gain), biases 0, BatchNorm weight ~ N(1, gain).

    Norm layers other than BatchNorm and concept embeddings keep their own init. Uses the global
    RNG in module order, so it is deterministic under torch.manual_seed.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return module


def build_generator(arch: str, init_gain: float | None = 0.02, **kwargs) -> nn.Module:
    """Build a generator by name and apply `init_weights` (skip with init_gain=None).

    For the pix2pix archs, `n_concepts` is dropped (one model per concept) and `width` is accepted
    as an alias of `ngf`, so callers can pass the same keywords to every arch.
    """
    if arch == "e2gan":
        model: nn.Module = E2GANGenerator(**kwargs)
    elif arch in ("pix2pix", "pix2pix-resize"):
        kwargs.pop("n_concepts", None)
        if "width" in kwargs:
            if "ngf" in kwargs:
                raise InputError("both width and ngf", "build_generator", "only one of them")
            kwargs["ngf"] = kwargs.pop("width")
        model = ResnetGenerator(upsample="transpose" if arch == "pix2pix" else "resize", **kwargs)
    else:
        raise InputError(f"generator arch {arch!r}", "build_generator",
                         f"one of {', '.join(GENERATOR_ARCHS)}")
    return init_weights(model, init_gain) if init_gain is not None else model


def build_discriminator(init_gain: float | None = 0.02, **kwargs) -> PatchDiscriminator:
    """Conditional PatchGAN (see PatchDiscriminator for keywords), pix2pix-initialised."""
    model = PatchDiscriminator(**kwargs)
    return init_weights(model, init_gain) if init_gain is not None else model
