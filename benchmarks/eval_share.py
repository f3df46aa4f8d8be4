"""Evaluation's share of one adaptation cell: evaluate_run seconds ÷ (training + evaluation).

One cell as a study runs it: the preset's LoRA adaptation of the scale's concept from the base
(`adapt.steps` steps), then `evaluate_run` on its test split (N = `eval.n_test` per concept) with
per-image scores, FID/KID/FID∞, floors and the feature cache beside the run. The concept's first
evaluation fills the cache (targets' and sources' features, once per concept: reported, not part
of the share); every later cell of the concept finds them there, so the share is measured on warm
evaluations. Before/after, interleaved ABBA in the same process after one warm-up of each (torch's
features have cache entries of their own): the backbone's features run by torch, as before
2026-12-07, against LiteRT's XNNPACK (``e2gan.metrics.litert_backbone``); their metrics must agree
to float32 round-off (checked here, tested in tests/metrics/test_litert_backbone.py). A third side,
LiteRT with the per-process memos of decoded images and floors emptied before each call (as every
cell ran before 2026-12-07's second change), prices those memos: its metrics must be identical.
"""
from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
from pathlib import Path

from benchmarks.common import Context, check, interleave, median, paired_ratio, wait_for_base

NAME = "eval_share"
TITLE = "Evaluation's share of an adaptation cell (N test images per concept)"
TARGET = 0.15  # issue bound: evaluation at most 15% of a cell's time
ROUNDS = 2     # rounds of the two evaluations: after, before, before, after


@contextlib.contextmanager
def as_before():
    """EfficientNet-Lite0's features run by torch, as every evaluation ran them before LiteRT."""
    from e2gan.metrics.litert_backbone import RUNTIME_ENV

    saved = os.environ.get(RUNTIME_ENV)
    os.environ[RUNTIME_ENV] = "torch"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(RUNTIME_ENV, None)
        else:
            os.environ[RUNTIME_ENV] = saved


def forget_memos() -> None:
    """Empty the per-process memos a cell's evaluation finds filled by the cells before it: decoded
    test images (``e2gan.data.dataset``) and each concept's floors (``e2gan.metrics.per_image``)."""
    from e2gan.data import dataset
    from e2gan.metrics import per_image

    dataset._DECODED.clear()
    dataset._decoded_bytes = 0
    per_image._FLOORS.clear()


def _max_rel_diff(a: dict, b: dict) -> float:
    """Largest relative difference between two results' per-concept metrics (finite ones)."""
    worst = 0.0
    for c, ma in a["metrics"]["per_concept"].items():
        for k, va in ma.items():
            vb = b["metrics"]["per_concept"][c].get(k)
            if isinstance(va, (int, float)) and isinstance(vb, (int, float)) and math.isfinite(va) and math.isfinite(vb):
                worst = max(worst, abs(va - vb) / max(abs(va), abs(vb), 1e-12))
    return worst


def run(ctx: Context) -> dict:
    from e2gan.metrics.evaluation import FEATURE_CACHE, evaluate_run
    from lightning_modules.adaptation import adapt

    cfg = ctx.config(adapt={"method": "lora"})
    data, base_run, _ = wait_for_base(ctx, ctx.cfg)
    concept, work = ctx.scale.concept, ctx.work / NAME
    if work.exists():
        shutil.rmtree(work)  # a fresh cell and an empty feature cache
    run_dir = work / "lora"
    ctx.log(f"LoRA on {concept} from {base_run.name}: {cfg.adapt.steps} steps, then evaluate_run on "
            f"{cfg.eval.n_test} test images")
    t0 = time.perf_counter()
    summary = adapt(cfg, base_run, data, concept, run_dir, progress=ctx.progress)
    train_wall = time.perf_counter() - t0
    train_s = float(summary["train_seconds"])
    t0 = time.perf_counter()
    first = evaluate_run(run_dir, [concept], data_root=data, progress=False)  # fills the feature cache
    cold_s = time.perf_counter() - t0
    results = {}

    def side(name):
        def call():
            if name == "before":
                with as_before():
                    results[name] = evaluate_run(run_dir, [concept], data_root=data, progress=False)
            else:
                if name == "no-memos":
                    forget_memos()
                results[name] = evaluate_run(run_dir, [concept], data_root=data, progress=False)
        return call

    times = interleave({"after": side("after"), "before": side("before"), "no-memos": side("no-memos")},
                       rounds=ROUNDS, warmup=1)
    after, before, no_memos = median(times["after"]), median(times["before"]), median(times["no-memos"])
    share, share_before = after / (train_s + after), before / (train_s + before)
    n = first["protocol"]["n"]
    diff = _max_rel_diff(results["before"], results["after"])
    memo_diff = _max_rel_diff(results["no-memos"], results["after"])
    data_out = {"concept": concept, "steps": summary.get("gan_step"), "n_test": n, "train_seconds": train_s,
                "train_wall_seconds": train_wall, "first_evaluation_seconds": cold_s,
                "evaluation_seconds": {"after": after, "before": before, "per_round": times},
                "share": share, "share_before": share_before, "speedup": paired_ratio(times["before"], times["after"]),
                "max_relative_metric_difference": diff, "no_memos_seconds": no_memos,
                "memos_speedup": paired_ratio(times["no-memos"], times["after"]),
                "max_relative_metric_difference_memos": memo_diff, "cache_entries": len(list((work / FEATURE_CACHE).glob("*.npy"))),
                "rounds": ROUNDS, "threads": ctx.threads, "device": ctx.device,
                "sides": {"before": "features by torch", "after": f"features by {results['after']['protocol']['backbone']['runtime']}",
                          "no-memos": "as after, decoded images and floors recomputed"}}
    same = "identical" if diff == 0 else f"agree to {diff:.1e} relative"
    checks = [check(
        "eval_share.share", f"evaluate_run ÷ (training + evaluation) of one LoRA cell ({n} test images)", share,
        TARGET, "<=", unit="",
        note=(f"evaluation {after:.1f} s (before {before:.1f} s, share {share_before:.0%}), training clock "
              f"{train_s:.1f} s ({summary.get('gan_step')} steps); the concept's first evaluation (fills the "
              f"feature cache) {cold_s:.1f} s"),
        basis=f"warm feature cache, {ROUNDS} ABBA round(s), {ctx.threads} threads, {ctx.device}",
        cause=(f"an evaluation is the outputs' EfficientNet-Lite0 features at 224², predicting the {n} outputs, "
               f"their clean-fid resize, SSIM and the proxy perceptual; at {train_s:.0f} s of training a 15% "
               f"share leaves {TARGET / (1 - TARGET) * train_s:.1f} s for all of them"))]
    before_after = [{
        "key": "eval_share.litert", "what": "evaluate_run of one cell (warm feature cache)",
        "before": before, "after": after, "unit": "s", "ratio": data_out["speedup"],
        "change": "EfficientNet-Lite0's features run by LiteRT (XNNPACK) instead of torch",
        "basis": f"same run, {ROUNDS} round(s) interleaved ABBA after a warm-up of each",
        "note": f"share of the cell {share_before:.0%} → {share:.0%}; metrics {same}"}, {
        "key": "eval_share.memos", "what": "evaluate_run of one cell after another cell of its concept",
        "before": no_memos, "after": after, "unit": "s", "ratio": data_out["memos_speedup"],
        "change": "decoded test images and the concept's floors kept per process instead of recomputed per cell",
        "basis": f"same run, {ROUNDS} round(s) interleaved after a warm-up of each",
        "note": "metrics " + ("identical" if memo_diff == 0 else f"DIFFER by {memo_diff:.1e} relative")}]
    return {"checks": checks, "data": data_out, "before_after": before_after}
