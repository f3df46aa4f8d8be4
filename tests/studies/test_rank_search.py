"""Greedy rank search on synthetic objectives (optimum known by hand), references, and end to end."""
import itertools
import json
import math
from pathlib import Path

import pytest

from e2gan.errors import InputError
from studies.rank_search import greedy_rank_search, reference_schemes
from studies.rank_search_files import format_ranks, scheme_table

# quality = sum w_g log2(rank_g); cost = sum c_g rank_g. Doubling g at rank r gains exactly w_g and
# costs c_g r more, so its gain per parameter is w_g / (c_g r): a 0.6/r, b 0.75/r, c 1/r.
W = {"a": 6.0, "b": 3.0, "c": 1.0}
C = {"a": 10, "b": 4, "c": 1}


def log_quality(ranks):
    return sum(W[g] * math.log2(ranks[g]) for g in W)


def linear_cost(ranks):
    return sum(C[g] * ranks[g] for g in ranks)


class Counting:
    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, ranks):
        self.calls.append(tuple(sorted(ranks.items())))
        return self.fn(ranks)


def brute_force_best(budget, choices=(1, 2, 4, 8, 16, 32, 64)):
    feasible = [dict(zip(W, rs)) for rs in itertools.product(choices, repeat=len(W))
                if linear_cost(dict(zip(W, rs))) <= budget]
    best = max(feasible, key=log_quality)
    ties = [r for r in feasible if abs(log_quality(r) - log_quality(best)) < 1e-9]
    return best, len(ties)


def test_greedy_finds_the_hand_computed_optimum_and_records_the_trajectory():
    evaluate = Counting(log_quality)
    res = greedy_rank_search(list(W), evaluate, linear_cost, higher_is_better=True, delta=0.0, budget=60)
    # By hand: marginal gains per param in decreasing order are c@1 (1.0), b@1 (.75), a@1 (.6),
    # c@2 (.5), b@2 (.375), a@2 (.3): ranks (4, 4, 4) at cost 60; every next doubling exceeds 60.
    assert [r.chosen for r in res.rounds] == ["c", "b", "a", "c", "b", "a", None]
    assert res.ranks == {"a": 4, "b": 4, "c": 4} and res.params == 60
    assert res.quality == pytest.approx(log_quality(res.ranks)) == pytest.approx(20.0)
    assert res.stop_reason == "budget"
    best, ties = brute_force_best(60)
    assert ties == 1 and res.ranks == best
    # Trajectory: each round lists one candidate per group, with its cost and (if affordable) its gain.
    assert res.start_ranks == {"a": 1, "b": 1, "c": 1} and res.start_quality == 0.0 and res.start_params == 15
    first = res.rounds[0]
    assert [c.group for c in first.candidates] == ["a", "b", "c"]
    assert [c.added_params for c in first.candidates] == [10, 4, 1]
    assert [c.gain for c in first.candidates] == pytest.approx([6.0, 3.0, 1.0])
    assert [c.gain_per_param for c in first.candidates] == pytest.approx([0.6, 0.75, 1.0])
    assert [c.chosen for c in first.candidates] == [False, False, True]
    last = res.rounds[-1]
    assert last.stop_reason == "budget" and not any(c.within_budget for c in last.candidates)
    assert all(c.quality is None for c in last.candidates)  # unaffordable doublings are never trained
    traj = res.trajectory()
    assert len(traj) == 1 + sum(len(r.candidates) for r in res.rounds)
    assert traj["chosen"].sum() == 1 + 6
    assert list(traj[traj["chosen"] & (traj["round"] > 0)]["group"]) == ["c", "b", "a", "c", "b", "a"]
    # Every assignment was evaluated exactly once, and the cache holds exactly those.
    assert len(evaluate.calls) == len(set(evaluate.calls)) == res.evaluations == 1 + 6 * 3
    assert json.loads(json.dumps(res.to_dict()))["ranks"] == {"a": 4, "b": 4, "c": 4}


@pytest.mark.parametrize("budget", [20, 30, 40, 60, 64, 80, 120, 160])
def test_greedy_matches_brute_force_at_greedy_budgets(budget):
    res = greedy_rank_search(list(W), log_quality, linear_cost, budget=budget)
    best, ties = brute_force_best(budget)
    assert res.params <= budget
    assert log_quality(res.ranks) == pytest.approx(log_quality(best))
    if ties == 1:
        assert res.ranks == best


def test_budget_is_respected_and_cheaper_doublings_still_taken():
    # At 65 a (16 more) and b (16 more) no longer fit after (4, 4, 4) but c (4 more) does.
    res = greedy_rank_search(list(W), log_quality, linear_cost, budget=65)
    assert res.ranks == {"a": 4, "b": 4, "c": 8} and res.params == 64 <= 65
    for rnd in res.rounds:
        for c in rnd.candidates:
            assert c.within_budget == (c.params <= 65)
            assert (c.quality is not None) == c.within_budget


def test_budget_below_the_start_is_refused():
    with pytest.raises(InputError, match="budget"):
        greedy_rank_search(list(W), log_quality, linear_cost, budget=14)


def test_stops_on_delta_with_hand_computed_ranks():
    # quality = sum w (1 - 1/r): doubling from r gains w / (2r). With delta 0.5, a (w=8) keeps
    # doubling while 8/(2r) >= 0.5, i.e. up to r=16; b (w=2) up to r=4.
    w = {"a": 8.0, "b": 2.0}

    def quality(ranks):
        return sum(w[g] * (1 - 1 / ranks[g]) for g in w)

    res = greedy_rank_search(["a", "b"], quality, lambda r: sum(r.values()), delta=0.5)
    assert res.ranks == {"a": 16, "b": 4}
    assert res.stop_reason == "delta"
    assert len(res.rounds) == 4 + 2 + 1
    last = res.rounds[-1]
    assert last.chosen is None and [c.gain for c in last.candidates] == pytest.approx([0.25, 0.25])
    # Chosen gains never fall under delta, and quality only improves.
    chosen = [c for r in res.rounds for c in r.candidates if c.chosen]
    assert all(c.gain >= 0.5 for c in chosen)
    qualities = [res.start_quality] + [c.quality for c in chosen]
    assert qualities == sorted(qualities)


def test_lower_is_better_metric_and_max_rank_and_max_rounds():
    fid = lambda r: 200.0 - log_quality(r)  # noqa: E731 — FID-like: lower is better
    res = greedy_rank_search(list(W), fid, linear_cost, higher_is_better=False, budget=60)
    assert res.ranks == {"a": 4, "b": 4, "c": 4} and res.quality == pytest.approx(180.0)
    assert res.rounds[0].candidates[2].gain == pytest.approx(1.0)  # positive = better in both directions

    capped = greedy_rank_search(list(W), log_quality, linear_cost, max_rank=2)
    assert capped.ranks == {"a": 2, "b": 2, "c": 2} and capped.stop_reason == "max_rank"

    two = greedy_rank_search(list(W), log_quality, linear_cost, max_rounds=2)
    assert len(two.rounds) == 2 and two.stop_reason == "max_rounds" and two.ranks == {"a": 1, "b": 2, "c": 2}


def test_cache_is_shared_with_the_caller():
    evaluate = Counting(log_quality)
    cache = {}
    res = greedy_rank_search(list(W), evaluate, linear_cost, budget=30, cache=cache)
    assert cache[(1, 1, 1)] == 0.0 and cache[tuple(res.ranks[g] for g in W)] == res.quality
    n = len(evaluate.calls)
    again = greedy_rank_search(list(W), evaluate, linear_cost, budget=30, cache=cache)
    assert len(evaluate.calls) == n and again.ranks == res.ranks  # all answered from the cache


def test_reference_schemes_shapes():
    import torch

    from e2gan.nets.lora import lora_param_count
    from e2gan.nets.factory import build_generator

    torch.manual_seed(0)
    g = build_generator("e2gan", n_concepts=3, width=8, attn_heads=2, n_tokens=2)
    groups = ["down", "ds", "tb", "us", "up"]
    budget = lora_param_count(g, {k: 2 for k in groups})
    schemes = reference_schemes(groups, 1, budget, g, seed=3)
    assert list(schemes) == ["uniform 1x", "uniform 4x", "random"]
    assert schemes["uniform 1x"] == {k: 1 for k in groups}
    assert schemes["uniform 4x"] == {k: 4 for k in groups}
    assert list(schemes["random"]) == groups and set(schemes["random"].values()) <= {1, 2, 4, 8, 16}
    assert abs(lora_param_count(g, schemes["random"]) - budget) < 0.5 * budget
    assert reference_schemes(groups, 1, budget, g, seed=3)["random"] == schemes["random"]  # seeded
    assert lora_param_count(g, schemes["uniform 4x"]) == 4 * lora_param_count(g, schemes["uniform 1x"])
    with pytest.raises(InputError):
        reference_schemes(groups, 0, budget, g)


def test_scheme_table_carries_the_papers_numbers():
    rows = [{"scheme": s, "ranks": {"tb": r}, "params": 10 * r, "quality": 20.0 + r, "sd": 0.1, "n_seeds": 2}
            for s, r in [("searched", 2), ("uniform 1x", 1), ("uniform 4x", 4), ("random", 8)]]
    t = scheme_table(rows, "psnr")
    assert list(t.index) == ["searched", "uniform 1x", "uniform 4x", "random"]
    assert list(t["paper FID (Flickr-Scenery)"]) == [109.37, 130.98, 111.42, 129.87]
    assert list(t["paper params (M)"]) == [0.092, 0.056, 0.164, 0.100]
    assert t.loc["uniform 4x", "ranks"] == "tb=4" and t.loc["random", "PSNR dB"] == 28.0
    assert format_ranks({"down": 1, "tb": 8}) == "down=1,tb=8"


@pytest.mark.slow
def test_rank_search_end_to_end(micro_data, micro_runs, tmp_path, capsys):
    """Two groups, at most one round, two steps per allocation; a second run trains nothing."""
    from e2gan.cli import main
    from e2gan.pipeline.base import ensure_base
    from tests.conftest import micro_config, write_micro_toml

    base, _ = ensure_base(micro_config(), micro_data, micro_runs, progress=False)
    cfg = write_micro_toml(tmp_path / "micro.toml")
    out = tmp_path / "search"
    argv = ["rank-search", "--config", str(cfg), "--runs", str(micro_runs), "--base", str(base),
            "--concept", "hue-60", "--groups", "tb,up", "--steps", "2", "--max-rounds", "1",
            "--max-rank", "2", "--delta", "0", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| searched |" in printed and "| uniform 4x |" in printed
    assert printed.strip().splitlines()[-1].startswith("rank search (psnr, higher is better): searched tb=")
    saved = json.loads((out / "search.json").read_text())
    search = saved["search"]
    assert len(search["rounds"]) == 1 and [c["group"] for c in search["rounds"][0]["candidates"]] == ["tb", "up"]
    table = {row["scheme"]: row for row in saved["table"]}
    assert table["uniform 1x"]["ranks"] == "tb=1,up=1"
    assert table["uniform 4x"]["ranks"] == "tb=4,up=4"
    # The search chooses on the val split; the table reports the test split of the same runs.
    assert table["uniform 1x"]["PSNR dB on val (searched on)"] == pytest.approx(search["start_quality"])
    (run,) = saved["runs"]["tb=1,up=1"]
    val = json.loads((Path(run) / "result-val.json").read_text())
    test = json.loads((Path(run) / "result.json").read_text())
    assert val["split"] == "val" and val["metrics"]["per_concept"]["hue-60"]["n"] == 4  # micro n_val
    assert test["protocol"]["n_per_concept"] == {"hue-60": 8}  # micro n_test
    assert search["start_quality"] == pytest.approx(val["metrics"]["mean_over_concepts"]["psnr"])
    assert table["uniform 1x"]["PSNR dB"] == pytest.approx(test["metrics"]["mean_over_concepts"]["psnr"])
    assert test["metrics"]["mean_over_concepts"]["psnr"] != pytest.approx(val["metrics"]["mean_over_concepts"]["psnr"])
    assert math.isfinite(table["searched"]["PSNR dB"])
    assert table["searched"]["LoRA params"] == search["params"]
    assert table["uniform 4x"]["LoRA params"] == 4 * table["uniform 1x"]["LoRA params"]
    # Every allocation is an adaptation run with the ranks it was asked for.
    for label, dirs in saved["runs"].items():
        adapter = json.loads((Path(dirs[0]) / "adapter.json").read_text())
        assert format_ranks(adapter["ranks"]) == label
    assert (out / "trajectory.csv").read_text().count("\n") == 1 + 1 + 2
    # Resume: everything comes from finished runs.
    before = {p: p.stat().st_mtime for p in micro_runs.glob("adapt-*/result.json")}
    assert main(argv) == 0
    assert {p: p.stat().st_mtime for p in micro_runs.glob("adapt-*/result.json")} == before
    assert json.loads((out / "search.json").read_text())["table"] == saved["table"]


@pytest.mark.parametrize("extra,pattern", [
    (["--concept", "hue-60", "--budget", "12q"], "error: budget '12q' (--budget)"),
    (["--concept", "hue-60", "--budget=-5k"], "error: budget '-5k' (--budget)"),
    (["--concept", "hue-60", "--seeds", "a"], "error: seeds 'a' (--seeds)"),
    (["--concept", "no-such-edit"], "error: concept(s) ['no-such-edit'] (--concept): new concepts of this configuration: ['hue-60']"),
    (["--concept", "hue-120"], "error: concept(s) ['hue-120'] (--concept)"),
    (["--concept", "hue-60", "--groups", "tb,nope"], "error: unknown layer group(s) ['nope']"),
])
def test_cli_bad_input_fails_before_training(extra, pattern, tmp_path, capsys):
    from e2gan.cli import main
    from tests.conftest import write_micro_toml

    cfg = write_micro_toml(tmp_path / "micro.toml")
    for command in ("rank-search", "analyze-layers"):
        if command == "analyze-layers" and any(a.startswith("--budget") for a in extra):
            continue
        assert main([command, "--config", str(cfg), "--runs", str(tmp_path / "runs"), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(pattern), err
        assert not (tmp_path / "runs").exists()  # nothing distilled or trained


def test_budget_text_forms():
    from e2gan.cli.options import param_count

    assert param_count("90000") == 90000 and param_count("90k") == 90000 and param_count("0.092M") == 92000
