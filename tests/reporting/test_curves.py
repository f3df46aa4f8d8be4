"""Learning curves in the main report: pooled means per arm, steps to the target, figures only when measured."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from e2gan.reporting.curves import NO_CURVE, arm_curves, steps_to_target_table
from e2gan.reporting.study_context import study_context
from e2gan.reporting.study_report import build_figures, write_study_report

from .conftest import grid_cells, make_trials

STEPS = [25, 50, 75, 100]
# val PSNR per step before each run's offset (+1 dB on 'sketch', +0.2 dB per seed: +0.6 on average)
BASE = {"full": [20.0, 22.0, 23.0, 24.0], "e2gan": [21.0, 23.6, 24.0, 24.2], "pix2pix": [15.0, 16.0, 17.0, 18.0]}
FLOPS_PER_STEP = {"full": 4e9, "e2gan": 1e9, "pix2pix": 9e9}
SPEC = {"name": "main", "title": "Main", "table": "main", "metric": "psnr", "seeds": [0, 1],
        "concepts": ["hue-60", "sketch"], "sampler": "grid", "arms": {a: {} for a in BASE}}


def _curve(c):
    off = (1.0 if c["concept"] == "sketch" else 0.0) + 0.2 * c["seed"]
    return [{"step": s, "train_seconds": 0.1 * s + c["seed"], "images_seen": 4 * s,
             "val_psnr": v + off, "flops": s * FLOPS_PER_STEP[c["arm"]]} for s, v in zip(STEPS, BASE[c["arm"]])]


@pytest.fixture
def curve_study(tmp_path):
    df = make_trials(tmp_path / "runs", grid_cells(list(BASE), SPEC["concepts"], SPEC["seeds"]),
                     lambda c: {"psnr": 20.0}, cost_fn=lambda c: {"curve": _curve(c)})
    return study_context(SPEC, df)


def test_pooled_curve_and_steps_to_target(curve_study):
    curves = {g[0]: c for g, c in arm_curves(curve_study).items()}
    e2 = curves["e2gan"]
    assert [p.step for p in e2] == STEPS and all(p.n == 4 for p in e2)
    assert [round(p.psnr, 6) for p in e2] == [21.6, 24.2, 24.6, 24.8]   # mean over 2 concepts x 2 seeds
    assert [round(p.seconds, 6) for p in e2] == [3.0, 5.5, 8.0, 10.5]
    assert e2[1].flops == 50e9
    t = steps_to_target_table(curve_study)
    d = t.display
    # target: full's final mean 24.6 - 0.5 = 24.1; e2gan reaches it at step 50, full at 100, pix2pix never
    assert d.loc["e2gan", "steps to target"] == "50" and d.loc["e2gan", "training s to target"] == "5.5"
    assert d.loc["full", "steps to target"] == "100" and d.loc["pix2pix", "steps to target"] == "not reached"
    assert t.data.loc["e2gan", "target val_psnr"] == pytest.approx(24.1)
    notes = " ".join(t.notes)
    assert "minus 0.5 dB" in notes and "24.10 dB" in notes and "validation split" in notes and "2 seeds" in notes


def test_a_run_missing_a_step_drops_that_step_from_the_mean(curve_study):
    rd = next(k for k, r in curve_study.results.items() if r["method"] == "e2gan")
    curve_study.results[rd]["cost"]["curve"] = [p for p in curve_study.results[rd]["cost"]["curve"] if p["step"] != 75]
    e2 = {g[0]: c for g, c in arm_curves(curve_study).items()}["e2gan"]
    assert [p.step for p in e2] == [25, 50, 100]


def test_curve_figures_only_when_measured(curve_study, tmp_path):
    figs = build_figures(curve_study, tmp_path / "fig")
    assert [f.key for f in figs if f.key.startswith("curve-")] == ["curve-seconds", "curve-flops"]
    for f in figs:
        assert np.asarray(Image.open(f.path).convert("RGB")).std() > 10
    for r in curve_study.results.values():
        r["cost"]["curve"] = []
    assert not [f for f in build_figures(curve_study, tmp_path / "none") if f.key.startswith("curve-")]
    table = steps_to_target_table(curve_study)
    assert table.notes == [NO_CURVE] and table.display.empty


def test_report_shows_the_table_and_figures(curve_study, tmp_path):
    df = curve_study.frame
    out = write_study_report(SPEC, df, tmp_path / "r", grids=False).parent
    md = (out / "index.md").read_text()
    assert "## Steps to a target quality (validation split)" in md and "](figures/curve-flops.png)" in md
    assert (out / "tables" / "steps-to-target.csv").read_text().startswith("method,steps,")
