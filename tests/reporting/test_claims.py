"""Claims from stored per-image scores: the comparisons table, claims.json, the index's claims table,
collapse columns, and old runs without per-image scores (no verdict invented)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from e2gan.metrics.per_image import save_scores
from e2gan.reporting.study_report import write_index, write_study_report

from .conftest import grid_cells, make_trials

N = 40
SPEC = {"name": "main", "title": "Main", "table": "main", "metric": "psnr", "seeds": [0, 1, 2],
        "concepts": ["c1", "c2"], "sampler": "grid", "arms": {"full": {}, "e2gan": {}, "pix2pix": {}},
        "claims": [
            {"claim": "a", "kind": "non-inferiority", "better": "e2gan", "other": "full", "metric": "psnr",
             "delta": 0.5, "reason": "PSNR pairs per image", "paper": "0.092 M params"},
            {"claim": "a", "kind": "superiority", "better": "e2gan", "other": "pix2pix", "metric": "kid_mean",
             "reason": "KID is unbiased"}],
        "dropped": [{"what": "search on FID", "result": "rank 1 everywhere", "why": "too noisy"}]}
MSE = {"full": 0.010, "e2gan": 0.0101, "pix2pix": 0.03}   # e2gan within 0.05 dB of full; pix2pix far worse


def _study(tmp_path, with_scores=True, collapse_pix2pix_seed=None, full_seed1_copies_seed0=False):
    cells = grid_cells(list(SPEC["arms"]), SPEC["concepts"], SPEC["seeds"])

    def metrics(c):
        return {"psnr": 10 * np.log10(1 / MSE[c["arm"]]), "fid": 50.0, "fid_inf": 40.0,
                "floor_identity_fid": 90.0, "floor_halves_fid": 5.0}
    df = make_trials(tmp_path / "runs", cells, metrics)
    rng = np.random.default_rng(0)
    difficulty = rng.uniform(0.5, 1.5, N)
    tgt = {c: rng.standard_normal((N, 8)) for c in SPEC["concepts"]}
    kept = {}
    for (_, row), cell in zip(df.iterrows(), cells):
        res_path = f"{row['run_dir']}/result.json"
        res = json.loads(open(res_path).read())
        collapsed = cell["arm"] == "pix2pix" and cell["seed"] == collapse_pix2pix_seed
        res["collapsed"] = {"collapsed": collapsed, "by": ["near-constant outputs"] if collapsed else []}
        if cell["arm"] != "pix2pix":  # pix2pix trains from scratch
            res["base"] = "runs/base-tiny-0"
        open(res_path, "w").write(json.dumps(res))
        if not with_scores:
            continue
        mse = MSE[cell["arm"]] * difficulty * rng.uniform(0.97, 1.03, N)
        noise = 0.05 if cell["arm"] != "pix2pix" else 1.5
        feats = tgt[cell["concept"]] + rng.normal(0, noise, (N, 8))
        if full_seed1_copies_seed0 and cell["arm"] == "full" and cell["seed"] == 1:
            feats = kept[cell["concept"]]  # the same outputs as seed 0: collapsed across seeds
        kept.setdefault(cell["concept"], feats)
        save_scores(f"{row['run_dir']}/scores.npz", [cell["concept"]] * N, [f"img{i}" for i in range(N)],
                    {"mse": mse, "psnr": 10 * np.log10(1 / mse), "perceptual": np.full(N, 0.1),
                     "feat_out": feats.astype(np.float16), "feat_tgt": tgt[cell["concept"]].astype(np.float16)},
                    "effnet-lite0")
    return df


def test_claims_decided_from_stored_scores(tmp_path):
    df = _study(tmp_path, collapse_pix2pix_seed=1)
    out = tmp_path / "reports" / "tiny"
    write_study_report(SPEC, df, out / "main", grids=False)
    claims = json.loads((out / "main" / "claims.json").read_text())["comparisons"]
    assert [c["verdict"] for c in claims] == ["holds", "holds"]
    ni = claims[0]
    assert -0.5 < ni["lo"] < ni["delta_hat"] < ni["hi"] and abs(ni["delta_hat"] + 0.0432) < 0.01
    assert ni["seeds"] == [3, 3] and ni["images"] == N and ni["m"] == 2 and ni["draws"] == 2000
    assert ni["bases"] == [1, 1] and claims[1]["bases"] == [1, 0]
    assert claims[1]["collapsed"] == {"e2gan": [0, 6], "pix2pix": [2, 6]}  # seed 1 on both concepts
    md = (out / "main" / "index.md").read_text()
    assert "## Paired comparisons behind the paper's claims" in md and "## Tried and dropped" in md
    noise = (out / "main" / "tables" / "noise.md").read_text()
    assert "| pix2pix | 2/6 |" in noise and "near-constant outputs" in noise
    from e2gan.reporting.noise import collapse_suffixes
    from e2gan.reporting.study_context import study_context

    assert collapse_suffixes(study_context(SPEC, df)) == {("pix2pix",): " (2/6 collapsed)"}  # figure labels
    idx = write_index("tiny", [("main", "Main", "main/index.html", "s"), ("ranks", "Ranks", "ranks/index.html", "s")],
                      out)
    index_md = (out / "index.md").read_text()
    head = index_md.split("## Studies")[0]
    assert "## The paper's claims" in head
    rows = {line.split("|")[1].strip()[:3]: line for line in head.splitlines() if line.startswith("| (")}
    assert rows["(a)"].split("|")[2].strip() == "holds"
    # one line per comparison: study, arms, Δ with its Holm-level CI, the bound, verdict, seeds and bases
    lines = rows["(a)"].split("|")[3].split("<br>")
    assert len(lines) == 2 and lines[0].strip().startswith(f"main: e2gan vs full, PSNR Δ {ni['delta_hat']:.2f} dB, ")
    assert "CI [" in lines[0] and "holds above -0.50: holds" in lines[0] and "seeds 3/3 on 1 base;" in lines[0]
    assert "KID Δ " in lines[1] and "holds above 0: holds" in lines[1] and "seeds 3/3 on 1 base vs none;" in lines[1]
    assert "- (a) main: PSNR pairs per image" in head and "- (a) main: KID is unbiased" in head
    for cid in ("(b)", "(c)", "(d)"):
        assert rows[cid].split("|")[2].strip() == "not run"
    assert "holds" in idx.read_text() and "The paper&#x27;s claims" in idx.read_text()


def test_old_runs_without_scores_get_no_verdict(tmp_path):
    df = _study(tmp_path, with_scores=False)
    out = tmp_path / "reports" / "tiny"
    write_study_report(SPEC, df, out / "main", grids=False)
    claims = json.loads((out / "main" / "claims.json").read_text())["comparisons"]
    assert {c["verdict"] for c in claims} == {"no per-image scores stored: rerun"}
    assert all("lo" not in c for c in claims)
    write_index("tiny", [("main", "Main", "main/index.html", "s")], out)
    head = (out / "index.md").read_text().split("## Studies")[0]
    row_a = next(line for line in head.splitlines() if line.startswith("| (a)"))
    assert row_a.split("|")[2].strip() == "no per-image scores stored: rerun"
    assert "have no per-image scores stored" in (out / "main" / "tables" / "noise.md").read_text()


def test_same_outputs_across_seeds_are_flagged_by_the_report(tmp_path):
    df = _study(tmp_path, full_seed1_copies_seed0=True)
    out = tmp_path / "reports" / "tiny"
    write_study_report(SPEC, df, out / "main", grids=False)
    noise = (out / "main" / "tables" / "noise.md").read_text()
    row = next(line for line in noise.splitlines() if line.startswith("| full |"))
    assert "| 4/6 |" in row and "c1: same outputs as seed(s) 1" in row and "c1: same outputs as seed(s) 0" in row
    claims = json.loads((out / "main" / "claims.json").read_text())["comparisons"]
    assert claims[0]["collapsed"]["full"] == [4, 6]


POOLED = {**SPEC, "arms": {"full": {}, "e2gan": {}, "full-b1": {}, "e2gan-b1": {}},
          "claims": [{"claim": "a", "kind": "non-inferiority", "better": "e2gan", "other": "full",
                      "pooled": [["e2gan-b1", "full-b1"]], "metric": "psnr", "delta": 0.5,
                      "reason": "PSNR pairs per image"}]}


def _pooled_study(tmp_path, arms):
    """e2gan 0.04 dB behind full on both bases; base 1 is 3 dB worse for both methods."""
    cells = grid_cells(arms, SPEC["concepts"], SPEC["seeds"])
    mse = {"full": 0.010, "e2gan": 0.0101, "full-b1": 0.020, "e2gan-b1": 0.0202}
    df = make_trials(tmp_path / "runs", cells, lambda c: {"psnr": 10 * np.log10(1 / mse[c["arm"]]), "fid": 50.0})
    rng = np.random.default_rng(0)
    difficulty = rng.uniform(0.5, 1.5, N)
    for (_, row), cell in zip(df.iterrows(), cells):
        m = mse[cell["arm"]] * difficulty * rng.uniform(0.97, 1.03, N) * rng.uniform(0.9, 1.1)  # seed luck too
        res_path = Path(row["run_dir"]) / "result.json"
        res = json.loads(res_path.read_text())
        res_path.write_text(json.dumps({**res, "base": f"runs/base-b{1 if cell['arm'].endswith('-b1') else 0}"}))
        save_scores(f"{row['run_dir']}/scores.npz", [cell["concept"]] * N, [f"img{i}" for i in range(N)],
                    {"mse": m, "psnr": 10 * np.log10(1 / m), "perceptual": np.full(N, 0.1),
                     "feat_out": rng.standard_normal((N, 8)).astype(np.float16),
                     "feat_tgt": rng.standard_normal((N, 8)).astype(np.float16)}, "effnet-lite0")
    return df


def test_pooled_pairs_add_their_runs_and_stay_paired_by_base_and_seed(tmp_path):
    """Runs of the same methods on a second base join the two arms, each paired with its own base's
    run of the other arm: the bad base cancels in Δ instead of widening its CI by dBs."""
    out = tmp_path / "reports" / "tiny"
    write_study_report(POOLED, _pooled_study(tmp_path, list(POOLED["arms"])), out / "main", grids=False)
    (c,) = json.loads((out / "main" / "claims.json").read_text())["comparisons"]
    assert c["pooled"] == [["e2gan-b1", "full-b1"]] and c["seeds"] == [6, 6]  # 3 seeds x 2 bases per concept
    assert abs(c["delta_hat"] + 0.043) < 0.02 and c["hi"] - c["lo"] < 0.5 and c["verdict"] == "holds"
    assert c["bases"] == [2, 2]
    md = (out / "main" / "index.md").read_text()
    assert "(a) e2gan vs full, pooled with e2gan-b1 vs full-b1" in md
    write_index("tiny", [("main", "Main", "main/index.html", "s")], out)
    assert "seeds 6/6 on 2 bases;" in (out / "index.md").read_text()


def test_a_pooled_pair_without_runs_is_not_run_and_named(tmp_path):
    out = tmp_path / "reports" / "tiny"
    write_study_report(POOLED, _pooled_study(tmp_path, ["full", "e2gan", "full-b1"]), out / "main", grids=False)
    (c,) = json.loads((out / "main" / "claims.json").read_text())["comparisons"]
    assert c["verdict"] == "not run" and "e2gan-b1" in c["why"]


def test_greedy_schemes_are_found_by_the_names_specs_give_them(tmp_path):
    """search.json names the reference 'uniform 1x'; a spec's claim names it 'greedy:uniform-1x'
    (the claim once read 'not run' for lack of that match, though its runs existed)."""
    import json
    from types import SimpleNamespace

    import pandas as pd

    from e2gan.reporting.arms import arm_runs

    runs = tmp_path / "runs"
    search_dir = runs / "studies" / "ranks-tiny-greedy"
    search_dir.mkdir(parents=True)
    one = "down=1,up=1"
    search = {"table": [{"scheme": "searched", "ranks": one}, {"scheme": "uniform 1x", "ranks": one},
                        {"scheme": "uniform 4x", "ranks": "down=4,up=4"}],
              "runs": {one: [str(runs / "adapt-a"), str(runs / "adapt-b")], "down=4,up=4": [str(runs / "adapt-c")]}}
    (search_dir / "search.json").write_text(json.dumps(search))
    ctx = SimpleNamespace(name="ranks", preset="tiny", results={},
                          frame=pd.DataFrame({"run_dir": [str(runs / "adapt-x")]}))
    assert [r.run_dir for r in arm_runs(ctx, "greedy:uniform-1x")] == search["runs"][one]
    assert [r.run_dir for r in arm_runs(ctx, "greedy:searched")] == search["runs"][one]
    assert [r.run_dir for r in arm_runs(ctx, "greedy:uniform-4x")] == [str(runs / "adapt-c")]
    assert arm_runs(ctx, "greedy:random") is None


def test_a_comparison_of_one_set_of_runs_with_itself_says_so(tmp_path):
    # The greedy search kept its start allocation: 'searched' and 'uniform 1x' are the same runs.
    from e2gan.reporting.claims import SAME_RUNS, compare, comparison_record
    from e2gan.reporting.study_context import study_context
    from e2gan.reporting.verdicts import decide

    ctx = study_context(SPEC, _study(tmp_path))
    entry = {**SPEC["claims"][0], "other": SPEC["claims"][0]["better"], "kind": "superiority"}
    row = compare(ctx, entry)
    assert row["status"] == "ok" and row["why"] == SAME_RUNS and row["cmp"].delta == 0
    assert compare(ctx, SPEC["claims"][0]).get("why") is None
    [decided] = decide([row], 0.05)
    assert comparison_record(decided)["verdict"] == "inconclusive" and comparison_record(decided)["why"] == SAME_RUNS
