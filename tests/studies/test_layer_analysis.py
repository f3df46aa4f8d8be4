"""Crucial-layer analysis: weight-change ratios on hand-made generators, the ranked table, end to end."""
import copy
import json
import math
from pathlib import Path

import pytest
import torch

from e2gan.errors import InputError
from e2gan.nets.factory import build_generator
from studies.layer_analysis import (group_param_counts, metric_direction, parse_seeds, ranked_table,
                                    relative_weight_change)

GROUPS = ("down", "rb1", "rb2", "ds", "tb", "us", "rb3", "up")


def _generator(seed=0):
    torch.manual_seed(seed)
    return build_generator("e2gan", n_concepts=3, width=8, attn_heads=2, n_tokens=2)


def _norm(tensors):
    return math.sqrt(sum(float(t.double().pow(2).sum()) for t in tensors))


def test_relative_weight_change_on_known_deltas():
    base = _generator()
    tuned = copy.deepcopy(base)
    with torch.no_grad():
        for p in tuned.tb.parameters():      # tb: every weight scaled by 1.1 -> ratio exactly 0.1
            p.mul_(1.1)
        tuned.down[1].weight.neg_()         # down: one tensor negated -> dW = -2 W on that tensor
        for p in tuned.up.parameters():      # up: +0.01 everywhere -> 0.01 sqrt(n) / |W|
            p.add_(0.01)
    ratios = relative_weight_change(base, tuned, GROUPS)
    assert set(ratios) == set(GROUPS)
    assert ratios["tb"] == pytest.approx(0.1, rel=1e-6)
    down = list(base.down.parameters())
    assert ratios["down"] == pytest.approx(2 * _norm([base.down[1].weight]) / _norm(down), rel=1e-6)
    n_up = sum(p.numel() for p in base.up.parameters())
    assert ratios["up"] == pytest.approx(0.01 * math.sqrt(n_up) / _norm(base.up.parameters()), rel=1e-6)
    for g in ("rb1", "rb2", "ds", "us", "rb3"):
        assert ratios[g] == 0.0
    # A tuned generator with an added concept (as a fine-tune has) compares the shared layers only.
    tuned.concepts.add_concepts(1, "mean")
    assert relative_weight_change(base, tuned, ["tb"])["tb"] == pytest.approx(0.1, rel=1e-6)


def test_relative_weight_change_refuses_other_architectures():
    other = build_generator("e2gan", n_concepts=3, width=16, attn_heads=2, n_tokens=2)
    with pytest.raises(InputError, match="same architecture"):
        relative_weight_change(_generator(), other, ["tb"])


def test_group_param_counts_add_up():
    g = _generator()
    counts = group_param_counts(g, GROUPS)
    concepts = sum(p.numel() for p in g.concepts.parameters())
    assert sum(counts.values()) + concepts == sum(p.numel() for p in g.parameters())
    assert counts["tb"] == sum(p.numel() for p in g.tb.parameters())


def test_ranked_table_orders_by_gain_per_parameter():
    groups = ["down", "tb", "rb1"]
    kw = dict(params={"down": 1000, "tb": 4000, "rb1": 9000}, lora_params={"down": 100, "tb": 400, "rb1": 200},
              quality={"down": [21.0, 23.0], "tb": [24.0, 24.0], "rb1": [20.0, 20.0]},
              gain={"down": [1.0, 3.0], "tb": [4.0, 4.0], "rb1": [0.0, 0.0]},
              weight_change={"down": [0.02, 0.04], "tb": [0.01, 0.01], "rb1": [0.05, 0.05]})
    t = ranked_table(groups, higher_is_better=True, metric="psnr", **kw)
    # gain per 1k: down 2/100 -> 20, tb 4/400 -> 10, rb1 0.
    assert list(t.index) == ["down", "tb", "rb1"]
    assert list(t["gain per 1k params"]) == pytest.approx([20.0, 10.0, 0.0])
    assert list(t["PSNR dB"]) == pytest.approx([22.0, 24.0, 20.0])
    assert t.loc["down", "PSNR dB sd"] == pytest.approx(math.sqrt(2))
    assert list(t["rank: quality"]) == [2, 1, 3]
    assert list(t["rank: weight change"]) == [2, 3, 1]
    assert list(t["paper LoRA group"]) == ["yes", "yes", "no"]
    assert t.loc["rb1", "rel. weight change"] == pytest.approx(0.05)
    # Lower is better (FID): the quality ranking flips; gains come in already signed.
    t2 = ranked_table(groups, higher_is_better=False, metric="fid", **kw)
    assert list(t2.sort_values("rank: quality").index) == ["rb1", "down", "tb"]
    # Missing weight change and NaN quality rank last.
    kw["quality"]["tb"] = [float("nan")]
    kw["gain"]["tb"] = [float("nan")]
    t3 = ranked_table(groups, higher_is_better=True, weight_change=None,
                      **{k: v for k, v in kw.items() if k != "weight_change"})
    assert t3.loc["tb", "rank: gain/param"] == 3 and t3.loc["tb", "rank: quality"] == 3
    assert t3["rel. weight change"].isna().all()


@pytest.mark.parametrize("name,key,higher", [("psnr", "psnr", True), ("fid", "fid", False),
                                             ("kid", "kid_mean", False), ("ssim", "ssim", True)])
def test_metric_direction(name, key, higher):
    assert metric_direction(name) == (key, higher)


def test_bad_metric_and_seeds():
    with pytest.raises(InputError, match="--metric"):
        metric_direction("accuracy")
    assert parse_seeds("0, 2,2", 5) == [0, 2] and parse_seeds(None, 5) == [5]
    with pytest.raises(InputError, match="--seeds"):
        parse_seeds("a,b", 0)


@pytest.mark.slow
def test_analyze_layers_end_to_end(micro_data, micro_runs, tmp_path, capsys):
    """Two groups (one ResNet block), two steps, the full fine-tune's weight change; resumes."""
    import pandas as pd

    from e2gan.cli import main
    from e2gan.nets.registry import load_generator
    from e2gan.pipeline.base import ensure_base
    from tests.conftest import micro_config, write_micro_toml

    base, _ = ensure_base(micro_config(), micro_data, micro_runs, progress=False)
    cfg = write_micro_toml(tmp_path / "micro.toml")
    out = tmp_path / "analysis"
    argv = ["analyze-layers", "--config", str(cfg), "--runs", str(micro_runs), "--base", str(base),
            "--concept", "hue-60", "--groups", "tb,rb1", "--rank", "2", "--steps", "2",
            "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.strip().splitlines()[-1].startswith("crucial layers (psnr, higher is better; 1 concept(s) x 1 seed(s), rank 2, 2 steps)")
    assert "| tb |" in printed and "| rb1 |" in printed
    table = pd.read_csv(out / "table.csv", index_col="group")
    assert sorted(table.index) == ["rb1", "tb"]
    assert list(table["rank: gain/param"]) == sorted(table["rank: gain/param"])
    saved = json.loads((out / "analysis.json").read_text())
    protocol, cells = saved["protocol"], saved["cells"]
    assert protocol["metric"] == "psnr" and protocol["higher_is_better"] is True
    assert protocol["steps"] == 2 and protocol["rank"] == 2 and protocol["seeds"] == [0]
    assert protocol["concepts"] == ["hue-60"] and protocol["backbone"] == "effnet-lite0"
    ref = protocol["reference_quality"]
    assert math.isfinite(ref)
    lora = {c["group"]: c for c in cells if c["method"] == "lora"}
    for g in ("tb", "rb1"):
        adapter = json.loads((Path(lora[g]["run"]) / "adapter.json").read_text())
        assert adapter["ranks"] == {g: 2}
        assert table.loc[g, "LoRA params"] == lora[g]["lora_params"] == adapter["params"] - 2 * 32
        assert table.loc[g, "gain"] == pytest.approx(lora[g]["quality"] - ref)
        # Layers are chosen on the val split; each run's result.json keeps its test numbers.
        val = json.loads((Path(lora[g]["run"]) / "result-val.json").read_text())
        test = json.loads((Path(lora[g]["run"]) / "result.json").read_text())
        assert lora[g]["quality"] == pytest.approx(val["metrics"]["mean_over_concepts"]["psnr"])
        assert lora[g]["quality_test"] == pytest.approx(test["metrics"]["mean_over_concepts"]["psnr"])
        assert val["split"] == "val" and test["protocol"]["split"] == "test"
        assert table.loc[g, "gain per 1k params"] == pytest.approx(1000 * table.loc[g, "gain"] / table.loc[g, "LoRA params"])
    assert "validation split" in protocol["split"]
    # Weight change is recomputed from the full fine-tune's generator on disk.
    (full,) = [c for c in cells if c["method"] == "full"]
    tuned, _ = load_generator(full["run"])
    expected = relative_weight_change(load_generator(base)[0], tuned, ["tb", "rb1"])
    for g in ("tb", "rb1"):
        assert table.loc[g, "rel. weight change"] == pytest.approx(expected[g]) and expected[g] > 0
    # Resume: every cell is a finished run, nothing retrains, the table is the same.
    before = {p: p.stat().st_mtime for p in micro_runs.glob("adapt-*/result.json")}
    assert main(argv) == 0
    assert {p: p.stat().st_mtime for p in micro_runs.glob("adapt-*/result.json")} == before
    pd.testing.assert_frame_equal(pd.read_csv(out / "table.csv", index_col="group"), table)
