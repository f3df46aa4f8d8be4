"""Mean ± 95% confidence interval over seeds (Student t), with N and the seeds that are missing.

A cell of a study table is one number per seed (a metric averaged over the held-out concepts),
summarised as ``mean ± t(0.975, N-1) · s / sqrt(N)``. Seeds that did not finish are named in the
cell, never dropped silently; a seed where only some concepts finished does not count towards
N (its concept average would not be comparable) and is named as partial.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

CONFIDENCE = 0.95


def t_critical(n: int, confidence: float = CONFIDENCE) -> float:
    """Two-sided Student-t critical value for ``n`` samples (n - 1 degrees of freedom); nan if n < 2."""
    if n < 2:
        return float("nan")
    from scipy.special import stdtrit  # the Student-t quantile; lighter to import than scipy.stats

    return float(stdtrit(n - 1, 0.5 + confidence / 2.0))


def _finite(values: Iterable) -> list[float]:
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out.append(f)
    return out


def format_number(value: float | None, decimals: int = 2) -> str:
    """Short, stable text for a number: e-notation for magnitudes >= 1e6, '–' for missing."""
    if value is None:
        return "–"
    v = float(value)
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if decimals <= 0 and abs(v) < 1e9:
        return f"{v:,.0f}"
    if abs(v) >= 1e6:
        return f"{v:.3g}"
    return f"{v:.{max(0, decimals)}f}"


@dataclass(frozen=True)
class Estimate:
    """One table cell: the mean over seeds, the half-width of its 95% CI, N and what is missing."""

    mean: float
    ci95: float                       # half-width; nan when N < 2
    n: int
    std: float = float("nan")         # sample standard deviation (ddof = 1)
    expected: int | None = None       # seeds the spec asked for
    missing: tuple = ()               # seeds with no finished value
    partial: tuple = ()               # (seed, concepts done, concepts expected)
    values: tuple = field(default=(), compare=False)

    @property
    def complete(self) -> bool:
        return not self.missing and not self.partial

    def gaps(self) -> str:
        """What is missing, e.g. 'no seed 2' or 'seed 1: 2/3 concepts'."""
        parts = []
        if self.missing:
            parts.append(("no seeds " if len(self.missing) > 1 else "no seed ") + ", ".join(map(str, self.missing)))
        for seed, done, want in self.partial:
            parts.append(f"seed {seed}: {done}/{want} concepts")
        return "; ".join(parts)

    def text(self, decimals: int = 2) -> str:
        """``82.00 ± 4.97 (N=3)``; ``82.00 (N=1, no CI)``; gaps named: ``(N=2/3; no seed 2)``; ``missing (N=0/3)``."""
        n_txt = f"N={self.n}" if self.expected is None or self.expected == self.n else f"N={self.n}/{self.expected}"
        if self.n == 0:
            partial = "; ".join(f"seed {s}: {d}/{w} concepts" for s, d, w in self.partial)
            return f"missing ({n_txt}{'; ' + partial if partial else ''})"
        gaps = self.gaps()
        tail = f"{n_txt}; {gaps}" if gaps else n_txt
        if self.n == 1:
            return f"{format_number(self.mean, decimals)} ({tail}; no CI)"
        return f"{format_number(self.mean, decimals)} ± {format_number(self.ci95, decimals)} ({tail})"

    def record(self, prefix: str) -> dict:
        """Numeric columns for CSV: '<prefix> mean', '... ci95', '... n', '... missing'."""
        return {f"{prefix} mean": self.mean, f"{prefix} ci95": self.ci95, f"{prefix} n": self.n,
                f"{prefix} missing": self.gaps()}


def estimate(values: Sequence, expected: int | None = None, missing: Iterable = (), partial: Iterable = (),
             confidence: float = CONFIDENCE) -> Estimate:
    """Mean ± Student-t CI of the finite ``values`` (one per seed)."""
    vals = _finite(values)
    n = len(vals)
    if n == 0:
        return Estimate(float("nan"), float("nan"), 0, float("nan"), expected, tuple(missing), tuple(partial), ())
    mean = sum(vals) / n
    if n < 2:
        return Estimate(mean, float("nan"), 1, float("nan"), expected, tuple(missing), tuple(partial), tuple(vals))
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    half = t_critical(n, confidence) * std / math.sqrt(n)
    return Estimate(mean, half, n, std, expected, tuple(missing), tuple(partial), tuple(vals))


def _key(row_values) -> tuple:
    return tuple(row_values) if isinstance(row_values, tuple) else (row_values,)


def over_seeds(df: pd.DataFrame, keys: Sequence[str], value: str, seeds: Sequence | None = None,
               concepts: Sequence[str] | None = None, groups: Sequence[tuple] | None = None,
               seed_col: str = "seed", concept_col: str = "concept") -> dict[tuple, Estimate]:
    """One Estimate per group of ``keys``: ``value`` averaged over ``concepts`` per seed, then over seeds.

    seeds: the seeds the spec asked for (seeds found in ``df`` beyond these are used too).
    concepts: the concepts a seed must cover to count; None = average whatever rows a seed has.
    groups: the groups expected (key tuples), so a group with no finished trial still gets a row.
    """
    keys = list(keys)
    want_seeds = list(seeds) if seeds is not None else []
    if seed_col in df.columns:
        for s in df[seed_col].dropna().unique().tolist():
            if s not in want_seeds:
                want_seeds.append(s)
    if not want_seeds:
        want_seeds = [None]
    want_concepts = list(dict.fromkeys(concepts)) if concepts is not None else None
    found: dict[tuple, pd.DataFrame] = {}
    if not df.empty and value in df.columns:
        if keys:
            for k, g in df.groupby(keys, sort=False, dropna=False):
                found[_key(k)] = g
        else:
            found[()] = df
    order = [tuple(g) for g in groups] if groups is not None else []
    order += [k for k in found if k not in order]
    out: dict[tuple, Estimate] = {}
    for k in order:
        g = found.get(k, df.iloc[0:0] if not df.empty else pd.DataFrame())
        per_seed, missing, partial = [], [], []
        for s in want_seeds:
            rows = g if s is None or seed_col not in g.columns else g[g[seed_col] == s]
            if value in rows.columns:
                nums = pd.to_numeric(rows[value], errors="coerce").astype(float)
                rows = rows.assign(**{value: nums})[np.isfinite(nums.to_numpy())]
            else:
                rows = rows.iloc[0:0]
            if want_concepts is not None and concept_col in rows.columns:
                by_concept = rows[rows[concept_col].isin(want_concepts)].groupby(concept_col)[value].mean()
                done = len(by_concept)
                if done == len(want_concepts) and done:
                    per_seed.append(float(by_concept.mean()))
                elif done:
                    partial.append((s, done, len(want_concepts)))
                else:
                    missing.append(s)
            elif len(rows):
                per_seed.append(float(pd.to_numeric(rows[value]).mean()))
            else:
                missing.append(s)
        expected = len(want_seeds) if want_seeds != [None] else None
        out[k] = estimate(per_seed, expected=expected, missing=[m for m in missing if m is not None],
                          partial=partial)
    return out


def pareto_front(xs: Sequence[float], ys: Sequence[float], maximize_y: bool = False) -> list[int]:
    """Indices of the non-dominated points: x is a cost (lower is better), y a quality.

    A point is dominated when another is no worse in both and better in one. Returned in
    increasing x. Points with a non-finite coordinate are never on the front.
    """
    pts = []
    for i, (x, y) in enumerate(zip(xs, ys)):
        try:
            x, y = float(x), float(y)
        except (TypeError, ValueError):
            continue
        if math.isfinite(x) and math.isfinite(y):
            pts.append((x, -y if maximize_y else y, i))
    front = []
    for x, y, i in pts:
        dominated = any((x2 <= x and y2 <= y) and (x2 < x or y2 < y) for x2, y2, _ in pts)
        if not dominated:
            front.append((x, y, i))
    front.sort()
    return [i for _, _, i in front]
