"""FID's sample-size bias and each metric's seed-to-seed noise, measured once at the tiny preset.

    python -m benchmarks.fid_sample_size [--runs runs] [--base-steps 400] [--seeds 0,1,2]
        [--concepts hue-60,sketch,vignette] [--draws 10] [--out benchmarks/results]

What it does (a measurement, not a test; it runs alone, outside ``make bench``):
1. One base at the tiny preset on its base concepts, for ``--base-steps`` steps (the preset's
   1200 take ~6.5 minutes on an idle 2-core box; fewer keep this measurement to minutes, and the
   base's quality is not what is measured).
2. LoRA adaptation of each ``--concepts`` x ``--seeds`` with the preset's adapt settings
   (``ensure_adapt``: each run's ``result.json`` is scored on the test split, N = eval.n_test),
   and each run scored on the val split (N = eval.n_val) as the studies' choices are.
3. For the first run: FID, KID and FID∞ on random subsets of its test images at N = 50, 100,
   250, 500 (``--draws`` draws each; the same images for outputs and targets, as a smaller test set
   would give). Mean ± sd over draws; at N = all images every draw is the same set.
4. Noise floor: per concept, the sd over seeds of each metric (val and test); pooled over
   concepts (root mean variance). ``studies.validation.NOISE_SD`` is set from the val column.
5. Evaluation cost: one test evaluation of one run (predict + score, as ``evaluate_run`` does)
   timed right after the same run's training time is read from its result.

Writes ``<out>/fid-sample-size-<date>.json`` (every number) and ``.md`` (the tables).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

METRICS = ("fid", "kid_mean", "psnr", "ssim", "perceptual")
SIZES = (50, 100, 250, 500)


def _args(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks.fid_sample_size")
    p.add_argument("--runs", default="runs")
    p.add_argument("--base-steps", type=int, default=400)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--concepts", default="hue-60,sketch,vignette")
    p.add_argument("--draws", type=int, default=10)
    p.add_argument("--out", default="benchmarks/results")
    return p.parse_args(argv)


def _config(base_steps: int, concepts: list[str]):
    from e2gan.config import apply_overrides
    from e2gan.presets import get_preset

    return apply_overrides(get_preset("tiny"), {"train": {"steps": base_steps, "ckpt_every": min(200, base_steps)},
                                                "data": {"new_concepts": concepts}}, "fid_sample_size")


def _mean_sd(values: list[float]) -> tuple[float, float]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return float("nan"), float("nan")
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def sample_size_table(fa, fb, sizes=SIZES, draws: int = 10, seed: int = 0) -> list[dict]:
    """FID, KID and FID∞ at each subset size: mean and sd over ``draws`` paired random subsets."""
    import numpy as np

    from e2gan.metrics.fid_inf import fid_infinity
    from e2gan.metrics.quality import fid_from_features, kid_from_features

    rng = np.random.default_rng(seed)
    n = len(fa)
    rows = []
    for size in [s for s in sizes if s <= n]:
        fids, kids, infs = [], [], []
        for _ in range(1 if size == n else draws):
            idx = rng.choice(n, size, replace=False)
            a, b = fa[idx], fb[idx]
            fids.append(fid_from_features(a, b))
            kids.append(kid_from_features(a, b, num_subsets=1, subset_size=size)[0])
            infs.append(fid_infinity(a, b, repeats=2, seed=int(rng.integers(1 << 31)))["fid_inf"])
        rows.append({"n": size, "draws": len(fids), "fid": _mean_sd(fids), "kid": _mean_sd(kids),
                     "fid_inf": _mean_sd(infs), "fid_values": fids, "kid_values": kids, "fid_inf_values": infs})
    return rows


def noise_floor(cells: list[dict], split: str) -> dict:
    """Per metric: sd over seeds per concept, and pooled over concepts (root mean variance)."""
    out = {}
    for metric in METRICS:
        per_concept = {}
        for concept in sorted({c["concept"] for c in cells}):
            vals = [c[split][metric] for c in cells if c["concept"] == concept and c[split].get(metric) is not None]
            if len(vals) > 1:
                per_concept[concept] = statistics.stdev(vals)
        pooled = math.sqrt(statistics.fmean([v * v for v in per_concept.values()])) if per_concept else float("nan")
        out[metric] = {"per_concept": per_concept, "pooled": pooled}
    return out


def time_evaluation(run_dir: Path, concept: str, data_root: Path) -> dict:
    """predict + score of one run on its test split, as evaluate_run does (nothing written), with
    the functions that took the most of score's time (cProfile, cumulative)."""
    import cProfile
    import pstats

    from e2gan.data.dataset import PairedDataset
    from e2gan.metrics.evaluation import FEATURE_CACHE, predict, score
    from e2gan.nets.registry import load_generator

    generator, meta = load_generator(run_dir)
    cpu0, t0 = time.process_time(), time.perf_counter()
    dataset = PairedDataset(data_root, [concept], "test", {c: i for i, c in enumerate(meta["concepts"])})
    t1 = time.perf_counter()
    pred = predict(generator, dataset)
    t2 = time.perf_counter()
    prof = cProfile.Profile()
    prof.enable()
    # as evaluate_run scores a run: per-image extras, the targets' and sources' features cached
    scores = score(pred, reference="teacher targets, test split", per_image=True,
                   feature_cache=Path(run_dir).parent / FEATURE_CACHE)
    prof.disable()
    t3, cpu3 = time.perf_counter(), time.process_time()
    stats = pstats.Stats(prof).stats
    top = sorted(((v[3], f"{Path(k[0]).name}:{k[2]}") for k, v in stats.items()), reverse=True)
    return {"n": len(dataset), "load_s": t1 - t0, "predict_s": t2 - t1, "score_s": t3 - t2, "total_s": t3 - t0,
            "cpu_s": cpu3 - cpu0, "fid": scores["mean_over_concepts"].get("fid"),
            "score_top_cumulative_s": [[name, round(sec, 2)] for sec, name in top[:25]]}


def features(run_dir: Path, concept: str, data_root: Path):
    from e2gan.data.dataset import PairedDataset
    from e2gan.metrics.evaluation import predict
    from e2gan.metrics.features import get_backbone
    from e2gan.nets.registry import load_generator

    generator, meta = load_generator(run_dir)
    dataset = PairedDataset(data_root, [concept], "test", {c: i for i, c in enumerate(meta["concepts"])})
    pred = predict(generator, dataset)
    extractor = get_backbone("effnet-lite0")
    return extractor(pred["outputs"]).numpy(), extractor(pred["targets"]).numpy()  # float64 [N, dim]


def _fmt(ms: tuple[float, float], d: int) -> str:
    return f"{ms[0]:.{d}f} ± {ms[1]:.{d}f}"


def markdown(rec: dict) -> str:
    lines = [f"# FID sample size and metric noise (tiny preset, base {rec['base_steps']} steps)", "",
             f"Run: LoRA {rec['table_run']['concept']} seed {rec['table_run']['seed']}; paired random subsets of its "
             f"{rec['n_test']} test images, {rec['draws']} draws per N (one at N = all); EfficientNet-Lite0 features.", "",
             "| N | FID | KID ×10³ | FID∞ (from those N) |", "|---|---|---|---|"]
    for r in rec["sample_size"]:
        kid = tuple(v * 1e3 for v in r["kid"])
        lines.append(f"| {r['n']} | {_fmt(r['fid'], 1)} | {_fmt(kid, 2)} | {_fmt(r['fid_inf'], 1)} |")
    done = sorted({(c["concept"], c["seed"]) for c in rec["cells"]})
    lines += ["", f"Seed-to-seed sd of one run's metric (sd over seeds per concept, pooled; runs "
              f"{', '.join(f'{c} s{s}' for c, s in done)}):", "", "| metric | val (N = %d) | test (N = %d) |" % (rec["n_val"], rec["n_test"]),
              "|---|---|---|"]
    for m in METRICS:
        lines.append(f"| {m} | {rec['noise']['val'][m]['pooled']:.4g} | {rec['noise']['test'][m]['pooled']:.4g} |")
    e = rec["evaluation"]
    lines += ["", f"Evaluation of one run ({e['n']} test images): {e['total_s']:.1f} s (predict {e['predict_s']:.1f} s, "
              f"score {e['score_s']:.1f} s) against {rec['train_seconds']:.1f} s of training: "
              f"{100 * e['total_s'] / (e['total_s'] + rec['train_seconds']):.0f}% of the cell (machine load "
              f"{rec['load_average']:.1f}; process CPU {e['cpu_s']:.1f} s).",
              "", "Where score's time went (cumulative s): " + "; ".join(f"{n} {t}" for n, t in e["score_top_cumulative_s"][:12])]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    import os

    from e2gan.io import atomic_write_json, atomic_write_text
    from studies.layer_analysis import cell_config
    from e2gan.pipeline.adapt import ensure_adapt
    from e2gan.pipeline.base import ensure_base
    from e2gan.pipeline.data import ensure_data
    from e2gan.pipeline.evaluate import val_result

    a = _args(argv)
    concepts = [c.strip() for c in a.concepts.split(",") if c.strip()]
    seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    cfg = _config(a.base_steps, concepts)
    data, _ = ensure_data(cfg, a.runs, progress=False)
    base, _ = ensure_base(cfg, data, a.runs, progress=False)
    out = Path(a.out)
    stamp = time.strftime("%Y-%m-%d-%H%M", time.gmtime())
    cells = []

    def cell(concept: str, seed: int) -> dict:
        run_dir, result = ensure_adapt(cell_config(cfg, method="lora", seed=seed), concept, data, base, a.runs,
                                       progress=False)
        val = val_result(run_dir, [concept], data)["metrics"]["mean_over_concepts"]
        test = result["metrics"]["mean_over_concepts"]
        print(f"{concept} s{seed}: test fid {test.get('fid'):.1f} psnr {test.get('psnr'):.2f}; "
              f"val fid {val.get('fid'):.1f} psnr {val.get('psnr'):.2f}", file=sys.stderr, flush=True)
        return {"concept": concept, "seed": seed, "run": str(run_dir),
                "train_seconds": result["cost"]["train_seconds"], "n_test": result["protocol"]["n"],
                "val": {m: val.get(m) for m in METRICS}, "test": {m: test.get(m) for m in METRICS}}

    def write(rec: dict) -> str:
        rec["noise"] = {"val": noise_floor(cells, "val"), "test": noise_floor(cells, "test")}
        rec["cells"] = cells
        atomic_write_json(out / f"fid-sample-size-{stamp}.json", rec)
        md = markdown(rec)
        atomic_write_text(out / f"fid-sample-size-{stamp}.md", md)
        return md

    # The sample-size table and the evaluation timing come from the first run, before the other
    # cells: each later cell only adds to the noise floor (and the file is rewritten after each).
    cells.append(cell(concepts[0], seeds[0]))
    first = cells[0]
    fa, fb = features(Path(first["run"]), first["concept"], data)
    rec = {"schema": "e2gan-fid-sample-size/1", "base_steps": a.base_steps, "concepts": concepts, "seeds": seeds,
           "draws": a.draws, "n_test": cfg.eval.n_test, "n_val": cfg.eval.n_val, "data": str(data), "base": str(base),
           "table_run": {"concept": first["concept"], "seed": first["seed"], "run": first["run"]},
           "sample_size": sample_size_table(fa, fb, draws=a.draws),
           "evaluation": time_evaluation(Path(first["run"]), first["concept"], data),
           "train_seconds": first["train_seconds"], "load_average": os.getloadavg()[0]}
    write(rec)
    for concept in concepts:
        for seed in seeds:
            if (concept, seed) != (concepts[0], seeds[0]):
                cells.append(cell(concept, seed))
                write(rec)
    print(write(rec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
