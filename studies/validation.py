"""The noise floor studies choose against: how far apart two runs' validation scores fall by chance.

Every choice inside a study (ranks, crucial layers, NSGA-II trade-offs) is made on the validation
split through ``e2gan.pipeline.evaluate.val_quality``; a gain is kept only when it beats the
seed-to-seed noise measured here.
"""
from __future__ import annotations

# Seed-to-seed sd of one adaptation run's val metric (one concept, one seed) at the tiny preset,
# N = 250 val images: measured by benchmarks/fid_sample_size.py (LoRA r4, 100 steps, base 400 steps;
# hue-60 and sketch x seeds 0-2; sd over seeds per concept, pooled as the root mean variance;
# benchmarks/results/fid-sample-size-2026-12-04-1918.json). The README's noise-floor table has them.
NOISE_SD = {"psnr": 0.316, "ssim": 0.0050, "fid": 1.94, "kid_mean": 0.0071, "perceptual": 0.0079}
ONE_SIDED_Z = 1.645  # a doubling that gains nothing passes delta 5% of the time


def default_delta(metric: str, n_seeds: int, n_concepts: int) -> float:
    """The smallest gain the greedy rank search accepts by default: ``z * sd * sqrt(2 / (seeds x
    concepts))``, the noise of a difference between two allocations' means over their runs."""
    runs = max(1, int(n_seeds) * int(n_concepts))
    return ONE_SIDED_Z * NOISE_SD[metric] * (2.0 / runs) ** 0.5
