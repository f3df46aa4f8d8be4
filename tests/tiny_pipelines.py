"""Tiny random-weight diffusers pipelines, built from configs offline and saved to a folder.

They load through the same ``from_pretrained`` path users take with real weights. The tokenizer
is the real Stable-Diffusion CLIP tokenizer, built from the BPE vocabulary that ``open_clip_torch``
ships (no download). Everything is cached per process: the first call builds and saves (about a
second, after the ~10 s diffusers import); later calls return the same folder.

    ip2p_dir()        StableDiffusionInstructPix2PixPipeline (UNet with 8 input channels)
    sd_dir()          StableDiffusionImg2ImgPipeline-compatible Stable Diffusion folder (4 channels)
    text_model_dir()  a CLIPTextModel + tokenizer folder (the ip2p folder's text_encoder/tokenizer)

Images are 32x32 at the model's native size (UNet sample size 16, VAE stride 2) unless
``save_tiny_pipeline(..., resolution=256)`` asks for more (VAE stride 8 then, as Stable Diffusion's).
"""
from __future__ import annotations

import atexit
import gzip
import importlib.resources
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

RESOLUTION = 32
HIDDEN = 32  # text model width = UNet cross-attention width


@lru_cache(maxsize=None)
def clip_tokenizer():
    """The exact CLIP BPE tokenizer of Stable Diffusion 1.x, built offline (49,408 tokens)."""
    from open_clip.tokenizer import bytes_to_unicode
    from transformers import CLIPTokenizer

    path = importlib.resources.files("open_clip") / "bpe_simple_vocab_16e6.txt.gz"
    lines = gzip.decompress(path.read_bytes()).decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
    units = list(bytes_to_unicode().values())
    vocab = units + [u + "</w>" for u in units] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(vocab)}, merges=merges, model_max_length=77)


def _components(in_channels: int, seed: int, resolution: int = RESOLUTION):
    import torch
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tok = clip_tokenizer()
    torch.manual_seed(seed)
    # Above the 32² default the VAE strides 8 as Stable Diffusion's does (256² -> 32² latents): at
    # stride 2 its mid-block attention over 128² latents costs seconds per image on a CPU.
    vae_channels = (16, 32) if resolution <= RESOLUTION else (16, 32, 32, 32)
    unet = UNet2DConditionModel(
        sample_size=resolution // 2 ** (len(vae_channels) - 1), in_channels=in_channels, out_channels=4, block_out_channels=(16, 32),
        layers_per_block=1, norm_num_groups=8, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=HIDDEN, attention_head_dim=4)
    vae = AutoencoderKL(
        block_out_channels=vae_channels, in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=8,
        layers_per_block=1, down_block_types=("DownEncoderBlock2D",) * len(vae_channels),
        up_block_types=("UpDecoderBlock2D",) * len(vae_channels),
        sample_size=resolution)
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tok), hidden_size=HIDDEN, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        max_position_embeddings=77, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id))
    scheduler = EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                                steps_offset=1)  # as Stable Diffusion 1.x ships it
    return dict(unet=unet, vae=vae, text_encoder=text, tokenizer=tok, scheduler=scheduler,
                safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def save_tiny_pipeline(folder: str | Path, kind: str = "ip2p", seed: int = 0, *, resolution: int = RESOLUTION,
                       stand_in: str | None = None) -> Path:
    """Build a tiny random pipeline ('ip2p' or 'sd') and ``save_pretrained`` it into ``folder``.

    ``resolution``: the model's native image size (a multiple of 4). ``stand_in``: a note written
    into model_index.json (``e2gan.stand_in``) that the teacher then records with its targets.
    """
    import json

    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionInstructPix2PixPipeline

    from e2gan.stand_in import INDEX_KEY

    cls, channels = {"ip2p": (StableDiffusionInstructPix2PixPipeline, 8),
                     "sd": (StableDiffusionImg2ImgPipeline, 4)}[kind]
    pipe = cls(**_components(channels, seed, resolution))
    folder = Path(folder)
    pipe.save_pretrained(folder)
    if stand_in:
        index = folder / "model_index.json"
        index.write_text(json.dumps({**json.loads(index.read_text()), INDEX_KEY: stand_in}, indent=2))
    return folder


@lru_cache(maxsize=None)
def _root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="e2gan-tiny-pipelines-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


@lru_cache(maxsize=None)
def ip2p_dir() -> Path:
    return save_tiny_pipeline(_root() / "tiny-ip2p", "ip2p")


@lru_cache(maxsize=None)
def sd_dir() -> Path:
    return save_tiny_pipeline(_root() / "tiny-sd", "sd")


@lru_cache(maxsize=None)
def text_model_dir() -> Path:
    """A plain CLIPTextModel folder (config.json + weights + tokenizer files), as a hub text model is laid out."""
    folder = _root() / "tiny-clip-text"
    src = ip2p_dir()
    shutil.copytree(src / "text_encoder", folder)
    for f in (src / "tokenizer").iterdir():
        shutil.copy2(f, folder / f.name)
    return folder
