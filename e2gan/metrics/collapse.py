"""Degenerate outputs: a run whose test outputs are (near-)constant, or the same for every input,
or the same across seeds, is flagged with the statistic that showed it.

Thresholds are ratios to the teacher's targets on the same images, so they hold for any edit: a
sketch target is mostly white, and its outputs are judged against that, not against a photo.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch

# "far below the targets'": a tenth of the targets' spread. A blank page scores ~0, a blurred
# but real output 0.3-0.9 (measured on the tiny preset's edits).
NEAR_CONSTANT_RATIO = 0.1
SAME_FOR_EVERY_INPUT_RATIO = 0.1
# Two seeds' output features closer than this (relative to the features' own spread) are one output.
SAME_ACROSS_SEEDS_REL = 1e-3


def _float(images: torch.Tensor) -> torch.Tensor:
    return images.double() / 255.0 if images.dtype == torch.uint8 else images.double()


def collapse_stats(outputs: torch.Tensor, targets: torch.Tensor) -> dict:
    """The two within-run statistics, for images [N,3,H,W] (uint8 or [0,1]).

    pixel_std_ratio: mean per-image pixel std of the outputs ÷ the targets' (near-constant pages).
    input_std_ratio: mean over pixels of the std across images of the outputs ÷ the targets'
    (one picture whatever the input). Needs N ≥ 2.
    """
    o, t = _float(outputs), _float(targets)
    n = len(o)
    per_image = lambda x: x.flatten(1).std(1).mean().item()  # noqa: E731
    across = lambda x: x.std(0).mean().item() if n > 1 else float("nan")  # noqa: E731
    po, pt, ao, at = per_image(o), per_image(t), across(o), across(t)
    return {"pixel_std_outputs": po, "pixel_std_targets": pt, "pixel_std_ratio": po / pt if pt > 0 else float("nan"),
            "input_std_outputs": ao, "input_std_targets": at, "input_std_ratio": ao / at if at > 0 else float("nan"),
            "outputs_sha256": hashlib.sha256(outputs.contiguous().cpu().numpy().tobytes()).hexdigest()[:16]}


def collapse_verdict(stats: dict) -> dict:
    """``{"collapsed": bool, "by": [...], statistics, thresholds}`` for result.json."""
    by = []
    if stats["pixel_std_ratio"] < NEAR_CONSTANT_RATIO:
        by.append(f"near-constant outputs: pixel std {stats['pixel_std_ratio']:.3f} of the targets' "
                  f"(< {NEAR_CONSTANT_RATIO})")
    if stats["input_std_ratio"] < SAME_FOR_EVERY_INPUT_RATIO:
        by.append(f"same output for every input: spread across inputs {stats['input_std_ratio']:.3f} of the "
                  f"targets' (< {SAME_FOR_EVERY_INPUT_RATIO})")
    return {"collapsed": bool(by), "by": by, **stats,
            "thresholds": {"pixel_std_ratio": NEAR_CONSTANT_RATIO, "input_std_ratio": SAME_FOR_EVERY_INPUT_RATIO}}


def detect_collapse(outputs: torch.Tensor, targets: torch.Tensor) -> dict:
    return collapse_verdict(collapse_stats(outputs, targets))


def same_across_seeds(features: dict) -> dict:
    """Seeds of one cell whose outputs are the same: ``{seed: [seeds it equals]}``.

    features: seed -> output features [N,d] on the same images. The statistic is the Frobenius
    distance between two seeds' features over the features' spread around their mean.
    """
    seeds = list(features)
    out: dict = {}
    for i, s in enumerate(seeds):
        a = np.asarray(features[s], np.float64)
        spread = np.linalg.norm(a - a.mean(0)) or 1.0
        for t in seeds[i + 1:]:
            b = np.asarray(features[t], np.float64)
            if a.shape == b.shape and np.linalg.norm(a - b) / spread < SAME_ACROSS_SEEDS_REL:
                out.setdefault(s, []).append(t)
                out.setdefault(t, []).append(s)
    return out
