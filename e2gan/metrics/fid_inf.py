"""FID's sample-size bias: FID at several subset sizes and its extrapolation to infinite N (FID∞).

FID at N images is biased upwards by about k/N, and k depends on the model (Chong & Forsyth,
"Effectively Unbiased FID and Inception Score and where to find them", CVPR 2020), so two arms
scored at the same N can swap order as N grows. Their remedy, done here: FID on random subsets
of several sizes, a least-squares line FID_n = FID∞ + k/n, and the intercept FID∞.

Each FID is ``frechet.frechet_distance`` (the N×N Gram route when N is below the feature
dimension), so a dozen of them stay cheap at evaluation time.
"""
from __future__ import annotations

import numpy as np

from e2gan.errors import InputError
from e2gan.metrics.frechet import feature_matrix, frechet_distance

DEFAULT_FRACTIONS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
MIN_SUBSET = 20  # below this the 1/n line is all noise


def subset_sizes(n: int, fractions=DEFAULT_FRACTIONS) -> list[int]:
    """Distinct subset sizes for an N-image set (at least MIN_SUBSET each, the last = N)."""
    sizes = sorted({max(MIN_SUBSET, int(round(f * n))) for f in fractions if 0 < f <= 1} | {n})
    return [s for s in sizes if s <= n]


def fid_infinity(a, b, sizes=None, repeats: int = 2, seed: int = 0, paired: bool = True) -> dict:
    """FID∞ by least squares of FID_n = FID∞ + k/n over random subsets of ``sizes`` (``repeats`` each).

    paired: the same image indices for both sets (outputs and their own targets, as a smaller test
    set would give); otherwise independent subsets. Returns fid_inf, slope k, the fitted points and
    the residual sd of the fit; the full-N subset is drawn once (it is the whole set).
    """
    a, b = feature_matrix(a), feature_matrix(b)
    n = min(len(a), len(b))
    if paired and len(a) != len(b):
        raise InputError(f"{len(a)} vs {len(b)} features", "fid_infinity(paired=True)", "sets of equal size")
    sizes = subset_sizes(n) if sizes is None else sorted({int(s) for s in sizes})
    if len(sizes) < 2 or sizes[0] < 2 or sizes[-1] > n:
        raise InputError(f"subset sizes {sizes} for N={n}", "fid_infinity", "two or more sizes in [2, N]")
    rng = np.random.default_rng(seed)
    ns, fids = [], []
    for s in sizes:
        for _ in range(1 if s == n else repeats):
            ia = rng.choice(len(a), s, replace=False)
            ib = ia if paired else rng.choice(len(b), s, replace=False)
            ns.append(s)
            fids.append(frechet_distance(a[ia], b[ib]))
    x = 1.0 / np.asarray(ns, float)
    y = np.asarray(fids, float)
    design = np.stack([np.ones_like(x), x], 1)
    (intercept, slope), *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ np.array([intercept, slope])
    dof = max(1, len(y) - 2)
    return {"fid_inf": float(intercept), "slope": float(slope), "n": n, "sizes": [int(s) for s in ns],
            "fids": [float(v) for v in fids], "residual_sd": float(np.sqrt((resid ** 2).sum() / dof)),
            "method": "least squares FID_n = FID_inf + k/n (Chong & Forsyth 2020)"}
