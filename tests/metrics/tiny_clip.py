"""A tiny random-weight transformers CLIPModel folder, built offline and saved with save_pretrained.

It loads through the same path users' real CLIP folders take (``$E2GAN_CLIP`` or
``$E2GAN_WEIGHTS/clip``). The tokenizer is the real CLIP BPE tokenizer (see tests/tiny_pipelines).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny_pipelines import clip_tokenizer

IMAGE_SIZE = 32


def save_tiny_clip(folder: str | Path, seed: int = 0) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPModel

    tok = clip_tokenizer()
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_attention_heads=4,
                         num_hidden_layers=2, max_position_embeddings=77, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                           image_size=IMAGE_SIZE, patch_size=8),
        projection_dim=16)
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    folder = Path(folder)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


# Fixtures for the test modules that import them: no CLIP folder from the environment, and a tiny one.
@pytest.fixture(autouse=True)
def no_clip_env(monkeypatch):
    monkeypatch.delenv("E2GAN_CLIP", raising=False)
    monkeypatch.delenv("E2GAN_WEIGHTS", raising=False)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("weights") / "clip")
