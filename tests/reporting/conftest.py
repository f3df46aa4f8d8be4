"""Fixture studies for the report tests: fake trials frames and result.json files, no training."""
from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import pytest

from e2gan.results import make_result, write_result

EVIL = "<script>alert(1)</script>"
PROTOCOL = {"backbone": {"name": "effnet-lite0", "layer": "pool"}, "fid_mode": "clean", "perceptual": "proxy",
            "reference_set": "teacher targets, test split", "n": 8, "n_per_concept": {"c": 4}, "resolution": 32,
            "split": "test", "checkpoint": "last", "preset": "tiny"}


def fake_result(run: str, concept: str, seed: int, method: str, metrics: dict, cost: dict,
                latency: dict | None = None, ranks: dict | None = None) -> dict:
    mean = {"psnr": 20.0, "ssim": 0.5, "fid": 50.0, "kid_mean": 0.01, "kid_std": 0.001, "perceptual": 0.2,
            "identity_psnr": 15.0, **metrics}
    base_cost = {"train_seconds": 10.0, "steps": 100, "images_seen": 400, "flops_per_step": 1e9,
                 "train_flops": 1e11, "params_total": 500_000, "params_trainable": 10_000,
                 "params_discriminator": 40_000, "bytes_stored": 40_000,
                 "peak_memory": {"bytes": 1_000_000, "kind": "rss"}, **cost}
    extra = {"method": method, "concepts": [concept]}
    if latency:
        extra["latency"] = latency
    return make_result(run=run, kind="adapt", metrics={"mean_over_concepts": mean,
                                                       "per_concept": {concept: {**mean, "n": 4}}},
                       protocol={**PROTOCOL, "n_per_concept": {concept: 4}},
                       cost=base_cost, config={"preset": "tiny", "adapt": {"method": method, "seed": seed,
                                                                           "groups": ["down", "tb"], "rank": 4,
                                                                           "ranks": ranks or {}}},
                       env={"versions": {"torch": "x"}, "device": "cpu", "torch_threads": 2, "seed": seed,
                            "commit": "abc"}, **extra)


def make_trials(root: Path, cells: list[dict], metric_fn, cost_fn=None, latency_fn=None, ranks_fn=None) -> pd.DataFrame:
    """One complete trial per cell, with a result.json under ``root``; metric_fn(cell) -> metrics dict."""
    rows = []
    for i, cell in enumerate(cells):
        run_dir = root / f"run-{i:03d}"
        run_dir.mkdir(parents=True, exist_ok=True)
        m = metric_fn(cell)
        c = cost_fn(cell) if cost_fn else {}
        lat = latency_fn(cell) if latency_fn else None
        res = fake_result(run_dir.name, cell["concept"], cell["seed"], cell.get("arm", "lora"), m, c, lat,
                          ranks_fn(cell) if ranks_fn else None)
        write_result(run_dir, res)
        mean, cost = res["metrics"]["mean_over_concepts"], res["cost"]
        rows.append({**cell, "run_dir": str(run_dir), "value": mean["fid"],
                     **{k: mean[k] for k in ("psnr", "ssim", "fid", "kid_mean", "perceptual", "identity_psnr")},
                     **{k: cost[k] for k in ("params_trainable", "train_seconds", "bytes_stored", "train_flops")},
                     "trial": i})
    return pd.DataFrame(rows)


def grid_cells(arms, concepts, seeds, **axes) -> list[dict]:
    names = list(axes)
    out = []
    for arm, *vals in itertools.product(arms, *[axes[n] for n in names]):
        for c in concepts:
            for s in seeds:
                out.append({"arm": arm, **dict(zip(names, vals)), "concept": c, "seed": s})
    return out


# FID per (arm, concept, seed): hand-picked so means and CIs are easy to compute by hand.
MAIN_FID = {
    ("pix2pix", "hue-60"): [60.0, 62.0, 64.0], ("pix2pix", "sketch"): [70.0, 72.0, 74.0],
    ("e2gan", "hue-60"): [50.0, 51.0, 55.0], ("e2gan", "sketch"): [60.0, 61.0, 65.0],
}
MAIN_SPEC = {
    "name": "main", "title": "Main comparison", "table": "main", "metric": "fid", "seeds": [0, 1, 2],
    "concepts": ["hue-60", "sketch"], "sampler": "grid",
    "arms": {"pix2pix": {}, "e2gan": {}, "full": {}},
    "paper": {"pix2pix": {"fid_scenery": 114.2, "fid_ffhq": 86.03, "seconds": 950},
              "e2gan": {"fid_scenery": 109.37, "fid_ffhq": 80.28, "seconds": 200}},
}


@pytest.fixture
def main_study(tmp_path):
    """pix2pix and e2gan on two concepts x 3 seeds; 'full' never finished; e2gan seed 2 lost 'sketch'."""
    cells = [c for c in grid_cells(["pix2pix", "e2gan"], ["hue-60", "sketch"], [0, 1, 2])
             if not (c["arm"] == "e2gan" and c["concept"] == "sketch" and c["seed"] == 2)]

    def metrics(c):
        fid = MAIN_FID[(c["arm"], c["concept"])][c["seed"]]
        return {"fid": fid, "psnr": 30.0 - fid / 10.0, "kid_mean": fid / 1000.0, "perceptual": fid / 100.0}

    def cost(c):
        if c["arm"] == "pix2pix":
            return {"train_seconds": 100.0 + c["seed"], "train_flops": 2.8e13, "params_trainable": 11_378_000,
                    "bytes_stored": 45_512_000}
        return {"train_seconds": 20.0 + c["seed"], "train_flops": 2e12, "params_trainable": 92_000,
                "bytes_stored": 368_000}

    def latency(c):
        if c["seed"] != 0:
            return None
        macs = 49.6e9 if c["arm"] == "pix2pix" else 31.8e9
        return {"torch": {"backend": "torch", "median_ms": macs / 1e9, "p10_ms": macs / 1e9 - 1,
                          "p90_ms": macs / 1e9 + 1, "macs": macs, "threads": 2},
                "adb": {"backend": "adb", "latency_ms": macs / 2e9, "macs": macs,
                        "device": {"manufacturer": "Acme", "model": "P1"}, "protocol": {"threads": 4}}}

    df = make_trials(tmp_path / "runs", cells, metrics, cost, latency)
    return MAIN_SPEC, df
