"""FID∞ against Gaussians whose Fréchet distance is known in closed form."""
import numpy as np
import pytest

from e2gan.errors import InputError
from e2gan.metrics.fid_inf import fid_infinity, subset_sizes
from e2gan.metrics.frechet import frechet_distance

D = 64
MU = np.full(D, 0.15)
SIG = np.linspace(0.8, 1.2, D)
# N(0, I) vs N(MU, diag(SIG²)): |MU|² + Σ (1 + σ² − 2σ)
TRUE_FD = float(MU @ MU + np.sum(1 + SIG ** 2 - 2 * SIG))


def _gaussians(seed, n=2000):
    r = np.random.default_rng(seed)
    return r.standard_normal((n, D)), MU + SIG * r.standard_normal((n, D))


@pytest.mark.parametrize("seed", [0, 1])
def test_intercept_recovers_the_known_distance_where_small_n_does_not(seed):
    a, b = _gaussians(seed)
    res = fid_infinity(a, b, sizes=[200, 300, 500, 800, 1200, 2000], repeats=3, seed=seed, paired=False)
    # Stated tolerance: 10% of the true distance (measured error 1-3% on these seeds).
    assert abs(res["fid_inf"] - TRUE_FD) < 0.10 * TRUE_FD
    small = frechet_distance(a[:200], b[:200])
    assert small > 3 * TRUE_FD  # the k/N bias at N=200 is several times the distance itself
    assert res["slope"] > 0 and len(res["fids"]) == 5 * 3 + 1


def test_paired_subsets_and_sizes():
    assert subset_sizes(500) == [100, 150, 200, 250, 300, 350, 400, 450, 500]
    assert subset_sizes(30) == [20, 21, 24, 27, 30]
    a, b = _gaussians(5, n=300)
    res = fid_infinity(a, b, seed=1)
    assert res["n"] == 300 and res["sizes"][-1] == 300
    with pytest.raises(InputError):
        fid_infinity(a, b[:200])  # paired needs equal sets
    with pytest.raises(InputError):
        fid_infinity(a, b, sizes=[300])
