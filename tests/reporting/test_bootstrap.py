"""Paired bootstrap: coverage on simulated arms with a known difference, and the point estimates."""
import math

import numpy as np
import pytest

from e2gan.metrics.quality import kid_from_features
from e2gan.reporting.bootstrap import Run, paired_bootstrap

N_IMAGES, N_SEEDS, SEED_SD, NOISE_SD, TRUE_DELTA = 60, 10, 0.3, 0.5, 0.2


def _arms(rng, mu_a=0.0, mu_b=TRUE_DELTA, seeds=N_SEEDS):
    """Perceptual distance (lower is better) = arm mean + image difficulty + seed luck + noise."""
    difficulty = rng.standard_normal(N_IMAGES)  # shared by every run: pairing must cancel it

    def runs(mu):
        return [Run(s, np.ones(N_IMAGES), mu + difficulty + rng.normal(0, SEED_SD) + rng.normal(0, NOISE_SD, N_IMAGES))
                for s in range(seeds)]
    return {"c": runs(mu_a)}, {"c": runs(mu_b)}


@pytest.mark.parametrize("seeds", [3, 10])
def test_ci_covers_the_true_difference_about_95_percent_of_the_time(seeds):
    rng = np.random.default_rng(0)
    sims, hits, hits_percentile = 300, 0, 0
    for i in range(sims):
        a, b = _arms(rng, seeds=seeds)
        cmp = paired_bootstrap(a, b, "perceptual", draws=1000, seed=i)
        lo, hi = cmp.ci(0.95)
        hits += lo <= TRUE_DELTA <= hi
        lo, hi = cmp.percentile_ci(0.95)
        hits_percentile += lo <= TRUE_DELTA <= hi
    # 300 simulations: binomial sd 1.3%. Measured: 95.5% at 3 seeds, 98.5% at 10 (400 simulations).
    # Dropping the seed level or the n/(n-1) and t corrections gives 76% at 3 seeds; unpaired images
    # ~100%: both fail here.
    assert 0.91 <= hits / sims <= 0.99, hits / sims
    if seeds == 3:  # why the interval is not the plain percentile one
        assert hits_percentile / sims < 0.85


def test_pairing_cancels_image_difficulty():
    rng = np.random.default_rng(1)
    a, b = _arms(rng)
    cmp = paired_bootstrap(a, b, "perceptual", draws=2000)
    # Δ's spread comes from seed luck and noise: sd ≈ sqrt(2·(0.09 + 0.25/60)/10) ≈ 0.137, far below
    # what the unit-variance image difficulty would add unpaired.
    assert 0.08 < cmp.se < 0.2
    assert cmp.n_seeds == (10, 10) and cmp.n_images == N_IMAGES and len(cmp.draws) == 2000


def test_point_estimates_are_the_set_metrics():
    rng = np.random.default_rng(2)
    mse_a, mse_b = rng.uniform(0.001, 0.01, 40), rng.uniform(0.001, 0.02, 40)
    fa, fb, ft = rng.standard_normal((40, 16)), rng.standard_normal((40, 16)) + 0.5, rng.standard_normal((40, 16))
    a = {"c": [Run(0, mse_a, np.zeros(40), fa, ft)]}
    b = {"c": [Run(0, mse_b, np.zeros(40), fb, ft)]}
    cmp = paired_bootstrap(a, b, "psnr", draws=200)
    assert cmp.delta == pytest.approx(10 * math.log10(1 / mse_a.mean()) - 10 * math.log10(1 / mse_b.mean()))
    kid = paired_bootstrap(a, b, "kid_mean", draws=200)
    want = kid_from_features(fb, ft, 1, 40)[0] - kid_from_features(fa, ft, 1, 40)[0]  # lower is better
    assert kid.delta == pytest.approx(want, rel=1e-9)
    assert kid.ci()[0] < kid.delta < kid.ci()[1]


def test_p_value_and_unequal_seeds():
    rng = np.random.default_rng(3)
    a, b = _arms(rng, mu_b=2.0, seeds=4)
    b["c"] = b["c"][:3]
    cmp = paired_bootstrap(a, b, "perceptual", draws=2000)
    assert cmp.n_seeds == (4, 3) and cmp.delta > 1.0
    assert cmp.p_value(0.0) < 0.01 and cmp.p_value(cmp.delta) > 0.5
