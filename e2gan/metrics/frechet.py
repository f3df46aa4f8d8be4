"""The Fréchet distance between two feature sets, and the numpy set-up FID, FID∞ and KID share.

``frechet_distance`` is clean-fid's quantity (mean and covariance as its ``fid_from_feats``) from
Σ sqrt(eig(S1·S2)); when N is below the feature dimension (500 test images against 1280
EfficientNet features) it works on the N×N cross Gram matrix: the nonzero eigenvalues of S1·S2
are the squared singular values of A·Bᵀ/(n−1) for the centred feature matrices A, B. One
500×500 SVD instead of a 1280×1280 non-symmetric eigendecomposition keeps FID∞ (a dozen FIDs)
cheap at evaluation time.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from e2gan.errors import InputError

__all__ = ["frechet_distance", "feature_matrix", "one_blas_thread"]


def one_blas_thread():
    """numpy maths on one BLAS thread: next to torch's OpenMP threads, OpenBLAS threads on a
    small, busy CPU run FID/KID 5-40x slower than a single thread."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only a speed matter
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def feature_matrix(feats) -> np.ndarray:
    """Features as a float64 [N, dim] numpy array (N >= 2), from a tensor or an array."""
    if isinstance(feats, torch.Tensor):
        feats = feats.detach().cpu().double().numpy()
    a = np.asarray(feats, np.float64)
    if a.ndim != 2 or len(a) < 2:
        raise InputError(f"features of shape {a.shape}", "FID/KID", "a [N,dim] array with N >= 2")
    return a


def frechet_distance(a, b) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a [n_a,d] and b [n_b,d] (≥ 0)."""
    a, b = feature_matrix(a), feature_matrix(b)
    if a.shape[1] != b.shape[1]:
        raise InputError(f"feature dims {a.shape[1]} vs {b.shape[1]}", "frechet_distance", "equal feature dims")
    na, nb, d = len(a), len(b), a.shape[1]
    with one_blas_thread():
        mu1, mu2 = a.mean(0), b.mean(0)
        ac, bc = a - mu1, b - mu2
        tr1 = float((ac * ac).sum()) / (na - 1)
        tr2 = float((bc * bc).sum()) / (nb - 1)
        if min(na, nb) < d:
            sv = np.linalg.svd(ac @ bc.T, compute_uv=False)
            tr_covmean = float(sv.sum()) / np.sqrt((na - 1) * (nb - 1))
        else:  # more images than dims: the d×d product is the smaller problem
            s1, s2 = ac.T @ ac / (na - 1), bc.T @ bc / (nb - 1)
            tr_covmean = float(np.sqrt(np.linalg.eigvals(s1 @ s2).astype(complex)).real.sum())
        diff = mu1 - mu2
        value = float(diff @ diff) + tr1 + tr2 - 2.0 * tr_covmean
    return max(value, 0.0)  # round-off on a distance that is >= 0 by definition
