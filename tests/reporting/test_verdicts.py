"""The verdict rule, Holm's step-down against a hand-worked example, and the MDD."""
import math

import numpy as np
import pytest

from e2gan.errors import InputError
from e2gan.reporting.bootstrap import Comparison
from e2gan.reporting.verdicts import decide, holm, mdd, table_mdd, verdict


@pytest.mark.parametrize("kind, lo, hi, delta, want", [
    ("superiority", 0.1, 0.5, 0, "holds"),
    ("superiority", -0.5, -0.1, 0, "contradicted"),
    ("superiority", -0.1, 0.2, 0, "inconclusive"),
    ("superiority", 0.0, 0.2, 0, "inconclusive"),        # a bound on 0 does not exclude it
    ("non-inferiority", -0.3, 0.2, 0.5, "holds"),
    ("non-inferiority", -0.9, -0.6, 0.5, "contradicted"),
    ("non-inferiority", -0.7, 0.1, 0.5, "inconclusive"),
    ("non-inferiority", -0.5, 0.1, 0.5, "inconclusive"),  # on the margin
    ("non-inferiority", -0.3, 0.2, 0.0, "inconclusive"),  # δ = 0 is superiority's bound
    ("superiority", float("nan"), 1.0, 0, "inconclusive"),
])
def test_verdict_rule(kind, lo, hi, delta, want):
    assert verdict(kind, lo, hi, delta) == want


def test_verdict_rejects_bad_input():
    with pytest.raises(InputError):
        verdict("equivalence", 0, 1)
    with pytest.raises(InputError):
        verdict("non-inferiority", 0, 1, -1.0)


def test_holm_hand_worked():
    # sorted: 0.005 <= 0.05/4; 0.01 <= 0.05/3; 0.03 > 0.05/2 -> stop; 0.04 kept whatever its level
    res = holm([0.01, 0.04, 0.03, 0.005], alpha=0.05)
    assert [r["rejected"] for r in res] == [True, False, False, True]
    assert [r["level"] for r in res] == pytest.approx([0.05 / 3, 0.05, 0.025, 0.0125])
    assert [r["rank"] for r in res] == [2, 4, 3, 1]
    assert [r["rejected"] for r in holm([0.04, 0.001], 0.05)] == [True, True]  # 0.04 <= 0.05/1


def test_decide_applies_holm_then_the_rule():
    rng = np.random.default_rng(0)
    def cmp(delta):  # all of Δ's spread from images (image_draws = draws): a normal interval, SE 0.1
        d = rng.normal(delta, 0.1, 4000)
        return Comparison(delta, d, (3, 3), 500, ["c"], image_draws=d)
    strong, weak, noninf = cmp(1.0), cmp(0.21), cmp(-0.1)   # weak: p ≈ 0.036 on its own
    out = decide([{"cmp": strong, "kind": "superiority"}, {"cmp": noninf, "kind": "non-inferiority", "delta": 0.5}])
    assert [o["verdict"] for o in out] == ["holds", "holds"] and out[0]["m"] == 2
    assert out[0]["mdd"] == pytest.approx(2.8 * 0.1, rel=0.05)
    assert out[0]["lo"] == pytest.approx(1.0 - 2.2414 * strong.se, abs=1e-3)  # normal CI at the Holm level 0.05/2
    assert decide([{"cmp": weak, "kind": "superiority"}])[0]["verdict"] == "holds"
    # Two such comparisons: the smaller p must beat 0.05/2, so Holm stops at once and both stay inconclusive.
    weak2 = cmp(0.21)
    two = decide([{"cmp": weak, "kind": "superiority"}, {"cmp": weak2, "kind": "superiority"}])
    assert [o["verdict"] for o in two] == ["inconclusive", "inconclusive"]
    assert sorted(o["level"] for o in two) == pytest.approx([0.025, 0.05])


def test_mdd():
    assert mdd(0.5) == pytest.approx(1.4)
    assert table_mdd(1.0, 8) == pytest.approx(2.8 * 0.5)
    assert math.isnan(table_mdd(1.0, 1))


def test_seed_dominated_interval_uses_t_with_n_minus_1_df():
    rng = np.random.default_rng(1)
    d = rng.normal(0.5, 0.2, 4000)
    c = Comparison(0.5, d, (3, 4), 500, ["c"])            # no image-level spread: all from 3 seeds
    se = np.std(d, ddof=1) * math.sqrt(3 / 2)              # the seed part scaled by n/(n-1)
    assert c.se == pytest.approx(se) and c.df == pytest.approx(2.0)
    lo, hi = c.ci(0.95)
    assert hi - 0.5 == pytest.approx(4.3027 * se, rel=1e-4) and lo == pytest.approx(1.0 - hi)
    assert c.p_value(lo) == pytest.approx(0.05, rel=1e-3)  # the CI's end is where p = α
