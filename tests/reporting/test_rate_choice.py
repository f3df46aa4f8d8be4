"""The rate sweep's table: arms that differ only in their rate form one method; the best final val PSNR keeps its rate."""
from __future__ import annotations

import pytest

from e2gan.reporting.paper_tables.rate_choice import method_label, rate_choice_table, rate_choices
from e2gan.reporting.study_context import study_context
from e2gan.reporting.study_report import write_study_report
from e2gan.results import write_result

from .conftest import grid_cells, make_trials

# arm -> (method, rate, final val PSNR before the seed offset); full's best rate is inside the grid,
# e2gan's at the grid's low edge, and e2gan-5e-3 collapses on every run.
ARMS = {"full-3e-4": ("full", 3e-4, 24.0), "full-1e-3": ("full", 1e-3, 24.5), "full-3e-3": ("full", 3e-3, 23.0),
        "e2gan-1e-3": ("lora", 1e-3, 23.8), "e2gan-2e-3": ("lora", 2e-3, 23.5), "e2gan-5e-3": ("lora", 5e-3, 11.7)}
SPEC = {"name": "lr-sweep", "title": "Rates", "table": "rate-sweep", "metric": "psnr", "seeds": [0, 1],
        "concepts": ["hue-60", "sketch"], "sampler": "grid", "arms": {a: {} for a in ARMS}}


@pytest.fixture
def sweep(tmp_path):
    def curve(c):
        final = ARMS[c["arm"]][2] + 0.1 * c["seed"]
        return {"curve": [{"step": s, "train_seconds": s / 10, "val_psnr": final - (100 - s) / 50} for s in (50, 100)]}

    df = make_trials(tmp_path / "runs", grid_cells(list(ARMS), SPEC["concepts"], SPEC["seeds"]),
                     lambda c: {"psnr": 20.0}, cost_fn=curve)
    ctx = study_context(SPEC, df)
    for (_, row) in df.iterrows():  # each run records its method and the rate it trained at
        method, rate, _ = ARMS[row["arm"]]
        r = ctx.results[row["run_dir"]]
        r["config"]["adapt"].update(method=method, lr=rate if method == "lora" else 2e-3,
                                    lr_g=rate if method != "lora" else 0.0)
        r["config"]["train"] = {"lr_g": rate}
        r["collapsed"] = {"collapsed": row["arm"] == "e2gan-5e-3"}
        write_result(row["run_dir"], r)  # the report reads the files
    return ctx


def test_each_method_keeps_its_best_rate_and_edges_are_flagged(sweep):
    by = {m["method"]: m for m in rate_choices(sweep)}
    assert set(by) == {"full", "e2gan"}
    assert by["full"]["best"]["rate"] == 1e-3 and not by["full"]["edge"]
    assert by["e2gan"]["best"]["rate"] == 1e-3 and by["e2gan"]["edge"]   # the lowest rate tried
    assert [a["rate"] for a in by["full"]["arms"]] == [3e-4, 1e-3, 3e-3]
    assert by["e2gan"]["best"]["val_psnr"] == pytest.approx(23.85)       # mean over concepts x seeds (+0.05)
    assert [a["collapsed"] for a in by["e2gan"]["arms"]] == [0, 0, 4]


def test_table_says_the_kept_rate_and_the_collapses(sweep):
    t = rate_choice_table(sweep)
    assert t.display.loc["full", "kept rate"] == "0.001"
    assert t.display.loc["e2gan", "kept rate"] == "0.001 (edge of the grid)"
    assert "4/4 collapsed" in t.display.loc["e2gan", "final val PSNR (dB) by rate"]
    assert t.data.loc["full", "kept_arm"] == "full-1e-3"
    assert "validation split" in " ".join(t.notes)


def test_the_sweep_report_shows_the_choice(sweep, tmp_path):
    out = write_study_report(SPEC, sweep.frame, tmp_path / "r", grids=False).parent
    md = (out / "index.md").read_text()
    assert "## Learning rate kept per method (validation split)" in md and "edge of the grid" in md
    assert "](figures/curve-seconds.png)" in md


def test_method_label_strips_the_rate():
    assert method_label(["pix2pix-3e-4", "pix2pix-1e-3"]) == "pix2pix"
    assert method_label(["lora-all-1e-3", "lora-all-2e-3"]) == "lora-all"
    assert method_label(["only"]) == "only"
