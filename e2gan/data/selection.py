"""Training-subset selection for minimal-data adaptation: random, or the samples nearest k-means centres.

The paper clusters the data and keeps the points nearest the cluster centres; the feature space is
not published, so it is a choice here (``adapt.selection_features``):

- ``encoder`` (default): the base generator's pooled encoder features; with no base generator
  (scratch / pix2pix) the source images average-pooled to 8x8 pixels;
- ``effnet-lite0``: the offline ImageNet EfficientNet-Lite0 pooled features the metrics use;
- ``clip``: L2-normalised CLIP image embeddings from a local CLIPModel folder (``$E2GAN_CLIP``,
  else ``$E2GAN_WEIGHTS/clip``, as the CLIP metrics find it); none found is an ``InputError``.

Features are computed on the CPU so the chosen subset does not depend on the machine.
"""
from __future__ import annotations

import torch
from torch import nn

from e2gan.errors import InputError


def random_subset(n: int, k: int, seed: int = 0) -> list[int]:
    _check(n, k)
    g = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(n, generator=g)[:k].tolist())


def kmeans(features: torch.Tensor, k: int, seed: int = 0, iters: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means with k-means++ seeding; returns (centres [k, d], labels [n])."""
    x = features.double()
    n = x.shape[0]
    _check(n, k)
    g = torch.Generator().manual_seed(seed)
    centres = [x[torch.randint(n, (1,), generator=g)].squeeze(0)]
    for _ in range(1, k):
        d2 = torch.cdist(x, torch.stack(centres)).pow(2).min(1).values
        if float(d2.sum()) == 0:
            idx = torch.randint(n, (1,), generator=g)
        else:
            idx = torch.multinomial(d2 / d2.sum(), 1, generator=g)
        centres.append(x[idx].squeeze(0))
    c = torch.stack(centres)
    labels = torch.zeros(n, dtype=torch.long)
    for _ in range(iters):
        labels = torch.cdist(x, c).argmin(1)
        new = torch.stack([x[labels == j].mean(0) if (labels == j).any() else c[j] for j in range(k)])
        if torch.allclose(new, c):
            break
        c = new
    return c, labels


def nearest_to_centres(features: torch.Tensor, k: int, seed: int = 0) -> list[int]:
    """One sample per cluster: the one closest to its centre (distinct indices, sorted)."""
    centres, _ = kmeans(features, k, seed)
    dist = torch.cdist(centres, features.double())
    chosen: list[int] = []
    for j in range(k):
        for idx in dist[j].argsort().tolist():  # the next nearest if another centre took it
            if idx not in chosen:
                chosen.append(idx)
                break
    return sorted(chosen)


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
    from e2gan.data import to_uint8
    from e2gan.metrics.features import get_backbone

    return get_backbone("effnet-lite0", "cpu")(to_uint8(sources))


def clip_features(sources: torch.Tensor) -> torch.Tensor:
    """L2-normalised CLIP image embeddings of sources in [-1, 1], from the local CLIP folder."""
    from e2gan.data import to_uint8
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


def select_indices(method: str, k: int, n: int, features: torch.Tensor | None = None, seed: int = 0) -> list[int]:
    if method == "random":
        return random_subset(n, k, seed)
    if method == "kmeans":
        if features is None:
            raise InputError("k-means selection without features", "selection", "a feature tensor")
        return nearest_to_centres(features, k, seed)
    raise InputError(f"selection '{method}'", "adapt.selection", "random or kmeans")


def _check(n: int, k: int) -> None:
    if not 0 < k <= n:
        raise InputError(f"subset of {k} pairs", "adapt.train_pairs", f"between 1 and the {n} training pairs available")
