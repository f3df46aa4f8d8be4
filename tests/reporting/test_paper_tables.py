"""The paper tables from fixture results: hand-computed means and CIs, paper numbers marked, gaps shown."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from e2gan.reporting.paper_tables.registry import build_tables
from e2gan.reporting.study_context import study_context

from .conftest import grid_cells, make_trials

T2, T3 = 12.706204736174707, 4.302652729749464


def ci(values):
    n = len(values)
    m = sum(values) / n
    s = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))
    return m, (T2 if n == 2 else T3) * s / math.sqrt(n)


def tables_of(spec, df, **kw):
    return {t.key: t for t in build_tables(study_context(spec, df, **kw))}


def test_main_quality_by_hand(main_study):
    spec, df = main_study
    t = tables_of(spec, df)["quality"]
    # pix2pix: per-seed concept means 65, 67, 69; e2gan: 55, 56 (seed 2 lost 'sketch', so it does not count)
    m, h = ci([65.0, 67.0, 69.0])
    assert t.display.loc["pix2pix", "FID ↓"] == f"{m:.2f} ± {h:.2f} (N=3)" == "67.00 ± 4.97 (N=3)"
    m, h = ci([55.0, 56.0])
    assert t.display.loc["e2gan", "FID ↓"] == f"{m:.2f} ± {h:.2f} (N=2/3; seed 2: 1/2 concepts)"
    assert t.display.loc["full", "FID ↓"] == "missing (N=0/3)"           # the arm that never ran is a row
    assert t.data.loc["e2gan", "fid mean"] == pytest.approx(55.5)
    assert t.data.loc["e2gan", "fid ci95"] == pytest.approx(h)
    assert t.data.loc["e2gan", "fid n"] == 2
    # KID and perceptual come along, also averaged over concepts then seeds
    assert t.data.loc["pix2pix", "kid_mean mean"] == pytest.approx(0.067)
    # the paper's numbers sit beside ours, in columns marked as the paper's
    assert t.display.loc["pix2pix", "paper FID (Flickr-Scenery)"] == "114.2"
    assert t.display.loc["e2gan", "paper FID (FFHQ)"] == "80.28"
    assert t.display.loc["full", "paper FID (FFHQ)"] == "–"
    proto = t.notes[0]
    for part in ("effnet-lite0", "teacher targets, test split", "N = 4 test images per concept", "resolution 32²",
                 "preset tiny", "seeds 0, 1, 2", "hue-60, sketch"):
        assert part in proto
    assert any("paper" in n for n in t.notes)


def test_per_concept_and_missing_seed(main_study):
    spec, df = main_study
    t = tables_of(spec, df)["per-concept"]
    m, h = ci([50.0, 51.0, 55.0])
    assert t.display.loc["e2gan / hue-60", "FID ↓"] == f"{m:.2f} ± {h:.2f} (N=3)" == "52.00 ± 6.57 (N=3)"
    m, h = ci([60.0, 61.0])
    assert t.display.loc["e2gan / sketch", "FID ↓"] == f"{m:.2f} ± {h:.2f} (N=2/3; no seed 2)"
    md = t.to_markdown()
    assert "no seed 2" in md and "full / sketch" in md


def test_training_cost_ratios_to_pix2pix(main_study):
    spec, df = main_study
    t = tables_of(spec, df)["cost"]
    m, h = ci([100.0, 101.0, 102.0])
    assert t.display.loc["pix2pix", "wall time s"] == f"{m:.1f} ± {h:.1f} (N=3)"
    # time 101 / 20.5, FLOPs 2.8e13 / 2e12, params and bytes 11,378,000 / 92,000
    assert t.data.loc["e2gan", "pix2pix/this train_seconds"] == pytest.approx(101.0 / 20.5)
    assert t.data.loc["e2gan", "pix2pix/this train_flops"] == pytest.approx(14.0)
    ratio_col = "pix2pix ÷ this (time / FLOPs / params / bytes)"
    assert t.display.loc["e2gan", ratio_col] == "4.93× / 14× / 124× / 124×"
    assert t.display.loc["e2gan", "paper seconds"] == "200"
    assert t.display.loc["e2gan", "paper pix2pix ÷ this (seconds)"] == "4.75×"    # 950 s / 200 s
    assert t.display.loc["e2gan", "trainable params"].startswith("92,000 ± 0 (N=2/3")


def test_latency_table_from_result_records(main_study):
    spec, df = main_study
    t = tables_of(spec, df)["latency"]
    # seed 0 runs only carry latency: two runs (two concepts) per method and backend
    assert t.display.loc["pix2pix / torch", "latency ms (mean of runs)"] == "49.60 ± 0.00 (N=2)"
    assert t.display.loc["e2gan / adb", "latency ms (mean of runs)"] == "15.90 ± 0.00 (N=2)"
    assert t.display.loc["e2gan / adb", "device"] == "Acme P1"
    assert t.display.loc["e2gan / torch", "MACs"] == "3.18e+10"
    assert t.display.loc["e2gan / torch", "device"] == "host"


def test_latency_table_says_when_nothing_was_measured(tmp_path):
    spec = {"name": "m", "table": "main", "metric": "fid", "seeds": [0], "arms": {"a": {}}}
    df = make_trials(tmp_path, grid_cells(["a"], ["c"], [0]), lambda c: {"fid": 1.0})
    t = tables_of(spec, df)["latency"]
    assert t.display.empty and "No run of this study has a latency record" in t.notes[1]


def test_base_model_table_with_paper_rows(tmp_path):
    spec = {"name": "base-model", "table": "base-model", "metric": "fid", "seeds": [0, 1],
            "arms": {"representative": {}, "random-half": {}, "single": {}, "no-base": {}},
            "paper": {"white-walker": [40.18, 53.92, 40.32, 51.99], "blond": [48.01, 52.77, 61.50, 55.58]}}
    fid = {"representative": 10.0, "random-half": 20.0, "single": 30.0, "no-base": 40.0}
    cells = grid_cells(list(spec["arms"]), ["hue-60", "sketch"], [0, 1])
    df = make_trials(tmp_path, cells, lambda c: {"fid": fid[c["arm"]] + c["seed"] + (2 if c["concept"] == "sketch" else 0)})
    t = tables_of(spec, df)["base-model"]
    m, h = ci([10.0, 11.0])
    assert t.display.loc["hue-60", "representative"] == f"{m:.2f} ± {h:.2f} (N=2)"
    m, h = ci([41.0, 42.0])                                # per seed: mean of 40+s and 42+s
    assert t.display.loc["mean over concepts", "no-base"] == f"{m:.2f} ± {h:.2f} (N=2)"
    assert t.display.loc["paper: white-walker (FFHQ)", "representative"] == "40.18 (paper)"
    assert t.display.loc["paper: blond (FFHQ)", "single"] == "55.58 (paper)"
    assert t.display.loc["paper: blond (FFHQ)", "paper: 200 art concepts"] == "61.5 (paper)"
    assert t.display.loc["paper: mean of its 2 concepts (FFHQ)", "random-half"] == f"{(53.92 + 52.77) / 2:.2f} (paper)"
    assert t.display.loc["hue-60", "paper: 200 art concepts"] == "–"       # a paper-only column, blank for ours


def test_ranks_table_params_and_paper_only_rows(tmp_path):
    spec = {"name": "ranks", "table": "ranks", "metric": "fid", "seeds": [0],
            "arms": {"uniform-1x": {}, "uniform-4x": {}, "random": {}},
            "paper": {"searched": [109.37, 92000], "uniform-1x": [130.98, 56000], "uniform-4x": [111.42, 164000]}}
    params = {"uniform-1x": 5000, "uniform-4x": 20000, "random": 12000}
    df = make_trials(tmp_path, grid_cells(list(spec["arms"]), ["c1", "c2"], [0]),
                     lambda c: {"fid": {"uniform-1x": 30.0, "uniform-4x": 20.0, "random": 25.0}[c["arm"]]},
                     cost_fn=lambda c: {"params_trainable": params[c["arm"]]},
                     ranks_fn=lambda c: {"down": 4, "tb": 1} if c["arm"] == "random" else {})
    t = tables_of(spec, df)["ranks"]
    assert t.display.loc["uniform-4x", "FID ↓"] == "20.00 (N=1; no CI)"
    assert t.display.loc["uniform-4x", "trainable params"] == "20,000"
    assert t.display.loc["uniform-4x", "paper FID"] == "111.42"
    assert t.display.loc["uniform-4x", "paper params"] == "164,000"
    assert t.display.loc["random", "ranks"] == "down 4, tb 1"
    assert t.display.loc["uniform-1x", "ranks"] == "4 on down+tb"
    assert t.display.loc["searched (paper only)", "paper FID"] == "109.37"
    assert t.display.loc["searched (paper only)", "FID ↓"] == "not run"


def test_layers_table_gain_per_parameter(tmp_path):
    spec = {"name": "layers", "table": "layers", "metric": "fid", "seeds": [0, 1],
            "axes": {"adapt.groups": [["down"], ["tb"], ["rb1", "rb2"]]}}
    cells = [{"adapt.groups": g, "concept": "c", "seed": s} for g in (["down"], ["tb"]) for s in (0, 1)]
    df = make_trials(tmp_path, cells, lambda c: {"fid": 10.0 + c["seed"], "psnr": 20.0 + c["seed"], "identity_psnr": 15.0},
                     cost_fn=lambda c: {"params_trainable": 2000 if c["adapt.groups"] == ["down"] else 5000})
    t = tables_of(spec, df)["layers"]
    assert t.display.index.name == "LoRA groups"
    m, h = ci([5.0, 6.0])
    assert t.display.loc["down", "PSNR gain dB ↑"] == f"{m:.2f} ± {h:.2f} (N=2)"
    assert t.data.loc["down", "gain_db per 1k params"] == pytest.approx(5.5 / 2.0)
    assert t.data.loc["tb", "gain_db per 1k params"] == pytest.approx(5.5 / 5.0)
    assert t.display.loc["rb1+rb2", "FID ↓"] == "missing (N=0/2)"
    assert "no retrievable numbers" in " ".join(t.notes)


def test_data_count_pivot(tmp_path):
    spec = {"name": "data-count", "table": "data-count", "metric": "fid", "seeds": [0, 1],
            "axes": {"adapt.train_pairs": [8, 16, 0], "adapt.selection": ["random", "kmeans"]}}
    cells = grid_cells(["default"], ["c"], [0, 1], **{"adapt.train_pairs": [8, 16, 0], "adapt.selection": ["random", "kmeans"]})
    cells = [{k: v for k, v in c.items() if k != "arm"} for c in cells]
    cells = [c for c in cells if not (c["adapt.train_pairs"] == 16 and c["adapt.selection"] == "kmeans" and c["seed"] == 1)]
    fid = lambda c: {"fid": 100.0 / (c["adapt.train_pairs"] or 64) + (1.0 if c["adapt.selection"] == "random" else 0.0) + c["seed"]}
    t = tables_of(spec, make_trials(tmp_path, cells, fid))["data-count"]
    assert list(t.display.index) == ["8", "16", "all"]
    m, h = ci([100 / 8 + 1, 100 / 8 + 2])
    assert t.display.loc["8", "random: FID ↓"] == f"{m:.2f} ± {h:.2f} (N=2)"
    assert t.display.loc["16", "kmeans: FID ↓"] == f"{100 / 16:.2f} (N=1/2; no seed 1; no CI)"


def test_pareto_table_marks_the_front(tmp_path):
    spec = {"name": "pareto", "table": "pareto", "metric": "fid", "seeds": [0], "concepts": ["c"], "sampler": "nsga2",
            "n_trials": 5, "search": {"adapt.ranks.tb": [1, 2, 4], "adapt.ranks.up": [1, 2, 4]}}
    rows = [  # (tb, up, fid, params): trials 0, 1, 3 are on the front; 2 and 4 are dominated
        (1, 1, 30.0, 1000), (2, 2, 20.0, 2000), (4, 1, 25.0, 3000), (4, 4, 10.0, 4000), (2, 4, 21.0, 2000)]
    df = pd.DataFrame([{"adapt.ranks.tb": tb, "adapt.ranks.up": up, "value": f, "fid": f, "psnr": 20.0,
                        "params_trainable": p, "trial": i} for i, (tb, up, f, p) in enumerate(rows)])
    t = tables_of(spec, df)["pareto"]
    front = [idx for idx, v in t.display["Pareto front"].items() if v == "✓"]
    assert front == ["trial 0", "trial 1", "trial 3"]
    assert t.display.loc["trial 4", "tb"] == "2"
    assert t.display.loc["trial 3", "FID ↓ (mean of N runs)"] == "10.00 (N=1)"
    assert "5 of 5 trials complete" in t.notes[1]


def test_outputs_escape_and_latex(main_study):
    spec, df = main_study
    df = df.copy()
    df.loc[df["concept"] == "sketch", "concept"] = "a|b_c & 50%"
    t = tables_of(spec, df, concepts=["hue-60", "a|b_c & 50%"])["per-concept"]
    md = t.to_markdown()
    assert "e2gan / a\\|b_c &amp; 50%" in md                               # a '|' cannot split a cell
    tex = t.to_latex()
    assert r"a|b\_c \& 50\%" in tex and r"$\pm$" in tex and "\\begin{tabular}" in tex


def test_greedy_table_rounds_its_delta_and_says_what_its_params_count():
    from e2gan.reporting.paper_tables.greedy import greedy_search_table

    search = {"protocol": {"metric": "psnr", "concepts": ["hue-60"], "groups": ["down", "up"], "delta": 0.4244312526978506,
                           "steps": 100, "seeds": [0, 1, 2], "evaluations": 3},
              "search": {"rounds": [{}], "stop_reason": "delta"},
              "table": [{"scheme": "searched", "ranks": "down=1,up=1", "psnr": 21.6, "psnr sd over seeds": 0.17,
                         "LoRA params": 5334, "seeds": 3}]}
    note = greedy_search_table(search).notes[0]
    assert "a gain of at least 0.424)" in note and "0.42443" not in note
    assert "exclude the concept's embedding row" in note and "'trainable params' include" in note
