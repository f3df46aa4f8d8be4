"""Mean ± 95% CI over seeds: hand-computed values, and missing seeds named rather than hidden."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from e2gan.reporting.stats import estimate, format_number, over_seeds, pareto_front, t_critical

T2, T3 = 12.706204736174707, 4.302652729749464  # Student t, 0.975 quantile, 1 and 2 degrees of freedom


def test_t_critical_matches_tables():
    assert t_critical(2) == pytest.approx(T2)
    assert t_critical(3) == pytest.approx(T3)
    assert t_critical(31) == pytest.approx(2.0423, abs=1e-4)
    assert math.isnan(t_critical(1))


@pytest.mark.parametrize("values, mean, half, text", [
    ([80.0, 82.0, 84.0], 82.0, T3 * 2.0 / math.sqrt(3), "82.00 ± 4.97 (N=3)"),
    ([55.0, 56.0], 55.5, T2 * math.sqrt(0.5) / math.sqrt(2), "55.50 ± 6.35 (N=2)"),
    ([7.0], 7.0, float("nan"), "7.00 (N=1; no CI)"),
    ([float("nan"), None, 3.0, 5.0], 4.0, T2 * math.sqrt(2) / math.sqrt(2), "4.00 ± 12.71 (N=2)"),
])
def test_estimate_by_hand(values, mean, half, text):
    e = estimate(values)
    assert e.mean == pytest.approx(mean)
    assert (math.isnan(e.ci95) and math.isnan(half)) or e.ci95 == pytest.approx(half)
    assert e.text(2) == text


def test_missing_and_partial_seeds_are_named():
    df = pd.DataFrame([
        {"arm": "a", "concept": "x", "seed": 0, "fid": 10.0}, {"arm": "a", "concept": "y", "seed": 0, "fid": 20.0},
        {"arm": "a", "concept": "x", "seed": 1, "fid": 12.0}, {"arm": "a", "concept": "y", "seed": 1, "fid": 22.0},
        {"arm": "a", "concept": "x", "seed": 2, "fid": 99.0},                       # seed 2: y never finished
        {"arm": "b", "concept": "x", "seed": 0, "fid": 30.0}, {"arm": "b", "concept": "y", "seed": 0, "fid": 40.0},
    ])
    est = over_seeds(df, ["arm"], "fid", seeds=[0, 1, 2], concepts=["x", "y"], groups=[("a",), ("b",), ("c",)])
    a, b, c = est[("a",)], est[("b",)], est[("c",)]
    assert (a.n, a.mean, a.partial) == (2, 16.0, ((2, 1, 2),))           # seed 2 does not count
    assert a.text(1) == f"16.0 ± {T2 * math.sqrt(2) / math.sqrt(2):.1f} (N=2/3; seed 2: 1/2 concepts)"
    assert (b.n, b.missing) == (1, (1, 2))
    assert b.text(1) == "35.0 (N=1/3; no seeds 1, 2; no CI)"
    assert c.text() == "missing (N=0/3)"                                  # a row with nothing still shows
    assert list(est) == [("a",), ("b",), ("c",)]


def test_pareto_front_min_and_max():
    xs, ys = [1, 2, 3, 4, 2], [10, 8, 9, 5, 8.5]
    assert pareto_front(xs, ys) == [0, 1, 3]
    assert pareto_front(xs, ys, maximize_y=True) == [0]          # cheapest and best: dominates all
    assert pareto_front(xs, [5, 8, 7, 9, 6], maximize_y=True) == [0, 1, 3]
    assert pareto_front([1, float("nan")], [1, 0]) == [0]


def test_format_number():
    assert format_number(None) == "–" and format_number(float("nan")) == "–"
    assert format_number(11_378_000, 0) == "11,378,000"
    assert format_number(2.8e16, 0) == "2.8e+16"
    assert format_number(80.276, 2) == "80.28"
