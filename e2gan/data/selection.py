"""Training-subset selection for minimal-data adaptation: random, or the samples nearest k-means centres.

The paper clusters the data and keeps the points nearest the cluster centres. What is clustered
(``adapt.selection_features``) is computed by the caller and passed in as a feature tensor
(``e2gan.metrics.selection_features``: they need the networks and the metrics' extractors).
"""
from __future__ import annotations

import torch

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
