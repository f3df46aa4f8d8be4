"""[[claims]] and [[dropped]] in a study spec: checked on load, one-line errors naming the entry."""
import pytest

from e2gan.errors import InputError
from studies.spec import load_spec, row_labels

HEAD = ('name = "t"\ntable = "data-count"\nmetric = "fid"\nconcepts = ["hue-60"]\nseeds = [0, 1, 2]\n'
        '[arms.e2gan]\nadapt = { method = "lora" }\n[axes]\n"adapt.train_pairs" = [8, 0]\n')
CLAIM = ('[[claims]]\nclaim = "d"\nkind = "non-inferiority"\nbetter = "e2gan / 8"\nother = "e2gan / 0"\n'
         'metric = "psnr"\ndelta = 0.5\nreason = "per-image pairing"\n')


def _load(tmp_path, text):
    p = tmp_path / "t.toml"
    p.write_text(text)
    return load_spec(p)


def test_a_valid_claim_loads_with_the_report_row_labels(tmp_path):
    spec = _load(tmp_path, HEAD + CLAIM + '[[dropped]]\nwhat = "x"\nresult = "y"\nwhy = "z"\n')
    assert row_labels(spec) == ["e2gan / 8", "e2gan / 0"]
    assert spec.claims[0]["delta"] == 0.5 and spec.dropped[0]["why"] == "z"


@pytest.mark.parametrize("change, what", [
    (('better = "e2gan / 8"', 'better = "e2gan / 16"'), "'better' = 'e2gan / 16'"),
    (("delta = 0.5\n", ""), "'delta' = None"),
    (('metric = "psnr"', 'metric = "fid"'), "'metric' = 'fid'"),
    (('claim = "d"', 'claim = "e"'), "'claim' = 'e'"),
    (('reason = "per-image pairing"\n', ""), "no 'reason'"),
    (('kind = "non-inferiority"', 'kind = "equivalence"'), "'kind' = 'equivalence'"),
    (('other = "e2gan / 0"', 'other = "greedy:searched"'), "'other' = 'greedy:searched'"),  # no [greedy] here
])
def test_bad_claims_are_one_line_errors(tmp_path, change, what):
    with pytest.raises(InputError) as exc:
        _load(tmp_path, HEAD + CLAIM.replace(*change))
    assert exc.value.what == what and "[[claims]] #1" in exc.value.where


def test_builtin_specs_decide_every_claim_with_three_or_more_seeds():
    claims = {}
    for name in ("main", "base-model", "ranks", "data-count", "layers", "pareto", "lr-sweep", "main-bases",
                 "claim-b", "claim-c", "claim-d"):
        spec = load_spec(name)
        assert len(spec.seeds) >= 3, name
        for c in spec.claims:
            claims.setdefault(c["claim"], []).append(name)
    assert len(load_spec("main").seeds) == 5 and len(load_spec("ranks").greedy["seeds"]) >= 3
    assert claims == {"a": ["main", "main", "main-bases"], "b": ["base-model"] * 2 + ["claim-b"] * 2,
                      "c": ["ranks"] * 2 + ["claim-c"] * 2, "d": ["data-count"] * 2 + ["claim-d"] * 2}
    assert len(load_spec("claim-c").greedy["seeds"]) >= 3


def test_compact_claim_specs_reuse_the_main_comparisons_runs():
    """claim-b/c/d are cheap only because their reference arms are main's runs (the same config, so
    the same run folder): a drift in either spec would silently train those arms again."""
    from e2gan.pipeline.adapt import adapt_dir
    from e2gan.pipeline.base import base_dir

    def dirs(spec, keep=lambda cell: True):
        return {adapt_dir(spec.cell_config(c), c["concept"]) for c in spec.grid() if keep(c)}

    main = dirs(load_spec("main"))
    b, c, d = (load_spec(n) for n in ("claim-b", "claim-c", "claim-d"))
    for arm in ("representative", "no-base"):
        assert dirs(b, lambda cell: cell["arm"] == arm) <= main, arm
    assert dirs(c) <= main  # its grid arm is main's e2gan; the greedy allocations are its own
    assert dirs(d, lambda cell: cell["adapt.train_pairs"] == 0) <= main
    assert [len(dirs(s) - main) for s in (b, c, d)] == [9, 0, 18]
    # precision's float32 arms are main's runs too; its bf16 arms the 45 new cells, on main's base.
    p = load_spec("precision")
    assert dirs(p, lambda cell: not cell["arm"].endswith("-bf16")) <= main and len(dirs(p) - main) == 45
    assert {base_dir(p.cell_config(c)) for c in p.grid()} == {base_dir(load_spec("main").cell_config(c))
                                                              for c in load_spec("main").grid()}


def test_a_comparison_that_decides_no_claim_loads_and_stays_out_of_the_claims_table(tmp_path):
    from e2gan.reporting.claims import claims_rows
    from e2gan.io import atomic_write_json

    spec = _load(tmp_path, HEAD + CLAIM.replace('claim = "d"', 'claim = "none"'))
    assert spec.claims[0]["claim"] == "none"
    atomic_write_json(tmp_path / "rep" / "t" / "claims.json", {"study": "t", "comparisons": [
        {"claim": "none", "better": "e2gan / 8", "other": "e2gan / 0", "metric": "psnr", "status": "ok",
         "kind": "non-inferiority", "delta": 0.5, "delta_hat": 0.1, "lo": -0.1, "hi": 0.3, "verdict": "holds"}]})
    rows = claims_rows(tmp_path / "rep", ["t"])
    assert [r["claim"][:3] for r in rows] == ["(a)", "(b)", "(c)", "(d)"]
    assert all(r["verdict"] == "not run" for r in rows)


POOLED_HEAD = ('name = "t"\ntable = "main"\nmetric = "fid"\nconcepts = ["hue-60"]\nseeds = [0, 1, 2]\n'
               '[arms.e2gan]\nadapt = { method = "lora" }\n[arms.full]\nadapt = { method = "full" }\n'
               '[arms.e2gan-b1]\nadapt = { method = "lora" }\ntrain = { seed = 1 }\n'
               '[arms.full-b1]\nadapt = { method = "full" }\ntrain = { seed = 1 }\n')
POOLED_CLAIM = ('[[claims]]\nclaim = "a"\nkind = "non-inferiority"\nbetter = "e2gan"\nother = "full"\n'
                'pooled = [["e2gan-b1", "full-b1"]]\nmetric = "psnr"\ndelta = 0.5\nreason = "per-image pairing"\n')


def test_pooled_pairs_are_arms_of_the_spec_each_used_once(tmp_path):
    spec = _load(tmp_path, POOLED_HEAD + POOLED_CLAIM)
    assert spec.claims[0]["pooled"] == [["e2gan-b1", "full-b1"]]
    assert spec.cell_config({"arm": "full-b1"}).train.seed == 1  # another base model for the pooled pair
    for bad, what in ((' [["e2gan-b2", "full-b1"]]', "'pooled'"), (' [["e2gan-b1"]]', "'pooled'"),
                      (' [["e2gan-b1", "full"]]', "an arm twice")):
        with pytest.raises(InputError) as exc:
            _load(tmp_path, POOLED_HEAD + POOLED_CLAIM.replace(' [["e2gan-b1", "full-b1"]]', bad))
        assert exc.value.what.startswith(what)
