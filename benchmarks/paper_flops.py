"""Counted FLOPs of the paper preset's stages (torch.utils.flop_counter on meta-device copies: no compute).

Everything a paper-preset `reproduce` runs, per unit of work: a base-training step, a LoRA
adaptation step, the generator's forward per image, the metric backbones per image, and one
InstructPix2Pix edit (Stable Diffusion 1.x's UNet and VAE built from their published configurations
on the meta device, so no weights are needed).
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

# Stable Diffusion 1.x (InstructPix2Pix: 8 UNet input channels), from the published model configs.
SD_UNET = dict(sample_size=64, in_channels=8, out_channels=4, block_out_channels=(320, 640, 1280, 1280),
               layers_per_block=2, cross_attention_dim=768, attention_head_dim=8,
               down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
               up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
SD_VAE = dict(block_out_channels=(128, 256, 512, 512), in_channels=3, out_channels=3, latent_channels=4,
              layers_per_block=2, down_block_types=("DownEncoderBlock2D",) * 4,
              up_block_types=("UpDecoderBlock2D",) * 4, sample_size=512)


def _flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def paper_models(cfg, n_concepts: int):
    from e2gan.nets.registry import make_discriminator, make_generator

    return make_generator(cfg.model, n_concepts=n_concepts), make_discriminator(cfg.disc)


def lora_generator(cfg, n_concepts: int):
    """The paper generator with LoRA on the configured groups and ranks (what `e2gan adapt` trains)."""
    from e2gan.nets.lora import LoraSpec, add_lora

    g, _ = paper_models(cfg, n_concepts)
    a = cfg.adapt
    spec = LoraSpec(ranks={grp: int(a.ranks.get(grp, a.rank)) for grp in a.groups}, alpha_ratio=a.alpha_ratio)
    return add_lora(g, spec)


def generator_forward(generator, resolution: int) -> int:
    g = generator.to("meta").eval()
    x = torch.zeros(1, 3, resolution, resolution, device="meta")
    c = torch.zeros(1, dtype=torch.long, device="meta")
    with torch.no_grad():
        return _flops(lambda: g(x, c))


def inception_forward() -> int:
    """clean-fid's Inception-v3 (pool3 features) on one 299² image: torchvision's architecture."""
    import torchvision

    with torch.device("meta"):
        net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False).eval()
        x = torch.zeros(1, 3, 299, 299)
    with torch.no_grad():
        return _flops(lambda: net(x))


def lpips_alex_pair(resolution: int) -> int:
    """LPIPS-AlexNet on one image pair: the AlexNet trunk on both images (the linear heads are negligible)."""
    import torchvision

    with torch.device("meta"):
        net = torchvision.models.alexnet(weights=None).features.eval()
        x = torch.zeros(2, 3, resolution, resolution)
    with torch.no_grad():
        return _flops(lambda: net(x))


def ip2p_edit(steps: int = 20, resolution: int = 512) -> dict:
    """FLOPs of one InstructPix2Pix edit: VAE encode, `steps` UNet calls on 3 stacked copies
    (text + image guidance), VAE decode; the CLIP text encoder (~7 GFLOPs) is left out."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    lat = resolution // 8
    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD_UNET).eval()
        vae = AutoencoderKL(**SD_VAE).eval()
        sample = torch.zeros(3, 8, lat, lat)
        text = torch.zeros(3, 77, 768)
        t = torch.zeros(3)
        image = torch.zeros(1, 3, resolution, resolution)
        latent = torch.zeros(1, 4, lat, lat)
    with torch.no_grad():
        per_step = _flops(lambda: unet(sample, t, encoder_hidden_states=text))
        encode = _flops(lambda: vae.encode(image))
        decode = _flops(lambda: vae.decode(latent))
    return {"unet_step": per_step, "vae_encode": encode, "vae_decode": decode, "steps": steps,
            "resolution": resolution, "total": steps * per_step + encode + decode}
