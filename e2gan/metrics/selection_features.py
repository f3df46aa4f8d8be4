"""What k-means subset selection clusters (``adapt.selection_features``), computed on the CPU so the
chosen subset does not depend on the machine. The paper does not publish its feature space:

- ``encoder`` (default): the base generator's pooled encoder features; with no base generator
  (scratch / pix2pix) the source images average-pooled to 8x8 pixels;
- ``effnet-lite0``: the offline ImageNet EfficientNet-Lite0 pooled features the metrics use;
- ``clip``: L2-normalised CLIP image embeddings from a local CLIPModel folder (``$E2GAN_CLIP``,
  else ``$E2GAN_WEIGHTS/clip``, as the CLIP metrics find it); none found is an ``InputError``.

The selection itself (``e2gan.data.selection``) takes the features as a tensor.
"""
from __future__ import annotations

import torch
from torch import nn

from e2gan.data.dataset import to_uint8
from e2gan.errors import InputError


@torch.no_grad()
def encoder_features(generator: nn.Module, sources: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Global-average-pooled features after the generator's down-sampling (E2GAN) or its first stage."""
    stem = getattr(generator, "down", None)
    if stem is None:
        raise InputError(f"generator {type(generator).__name__}", "selection features", "a generator with a 'down' stage")
    feats = [stem(sources[i:i + batch_size]).mean((2, 3)) for i in range(0, len(sources), batch_size)]
    return torch.cat(feats)


SELECTION_FEATURES = ("encoder", "effnet-lite0", "clip")


@torch.no_grad()
def pixel_features(sources: torch.Tensor) -> torch.Tensor:
    """Sources in [-1, 1] average-pooled to 8x8 and flattened (the encoder fallback with no base)."""
    return torch.nn.functional.adaptive_avg_pool2d(sources, 8).flatten(1)


def effnet_features(sources: torch.Tensor) -> torch.Tensor:
    """EfficientNet-Lite0 pooled features [N, 1280] of sources in [-1, 1] (the metrics' extractor)."""
    from e2gan.metrics.features import get_backbone

    # torch, not LiteRT: a subset chosen from features that differ by round-off could differ, and
    # the subsets of the runs already trained were chosen this way.
    return get_backbone("effnet-lite0", "cpu", runtime="torch")(to_uint8(sources))


def clip_features(sources: torch.Tensor) -> torch.Tensor:
    """L2-normalised CLIP image embeddings of sources in [-1, 1], from the local CLIP folder."""
    from e2gan.metrics.clip import get_scorer

    scorer, how = get_scorer("cpu")
    if scorer is None:  # how: "absent (<where it looked>)"
        looked = how[len("absent ("):-1] if how.startswith("absent (") else how
        raise InputError("no CLIP model for 'adapt.selection_features' = 'clip'", looked,
                         "a transformers CLIPModel folder (with config.json) in $E2GAN_CLIP or $E2GAN_WEIGHTS/clip")
    return scorer.encode_images(to_uint8(sources))


def selection_features(kind: str, sources: torch.Tensor, generator: nn.Module | None = None) -> torch.Tensor:
    """Features [N, d] of ``sources`` ([N, 3, H, W] in [-1, 1]) to cluster for k-means selection."""
    if kind == "encoder":
        return encoder_features(generator, sources) if generator is not None else pixel_features(sources)
    if kind == "effnet-lite0":
        return effnet_features(sources)
    if kind == "clip":
        return clip_features(sources)
    raise InputError(f"'adapt.selection_features' = {kind!r}", "selection", f"one of {list(SELECTION_FEATURES)}")

