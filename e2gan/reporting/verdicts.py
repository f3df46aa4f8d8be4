"""The verdict rule, Holm's step-down over a table's comparisons, and the minimal detectable difference.

Δ is oriented so that a positive value favours the claim; [lo, hi] is its two-sided CI.
- superiority:     holds if lo > 0;  contradicted if hi < 0;  otherwise inconclusive.
- non-inferiority: holds if lo > −δ; contradicted if hi < −δ; otherwise inconclusive.
The rule is written before the numbers are seen; the margin δ comes from the spec.
"""
from __future__ import annotations

import math

from e2gan.errors import InputError

KINDS = ("superiority", "non-inferiority")
HOLDS, CONTRADICTED, INCONCLUSIVE = "holds", "contradicted", "inconclusive"
# Minimal detectable difference: (z_{1-α/2} + z_{power}) × SE = (1.96 + 0.84) × SE at α 0.05, 80% power.
MDD_FACTOR = 2.8


def verdict(kind: str, lo: float, hi: float, delta: float = 0.0) -> str:
    """holds / contradicted / inconclusive from the CI of Δ (and the margin δ ≥ 0 for non-inferiority)."""
    if kind not in KINDS:
        raise InputError(f"claim kind {kind!r}", "verdict", f"one of {list(KINDS)}")
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        return INCONCLUSIVE
    if kind == "superiority":
        bound = 0.0
    else:
        if not (math.isfinite(delta) and delta >= 0):
            raise InputError(f"margin δ = {delta!r}", "non-inferiority verdict", "a finite margin >= 0")
        bound = -delta
    if lo > bound:
        return HOLDS
    if hi < bound:
        return CONTRADICTED
    return INCONCLUSIVE


def null_value(kind: str, delta: float = 0.0) -> float:
    """The value of Δ whose two-sided test the verdict amounts to (0, or −δ)."""
    return 0.0 if kind == "superiority" else -float(delta)


def holm(p_values: list[float], alpha: float = 0.05) -> list[dict]:
    """Holm's step-down: per comparison (input order) its level α/(m − rank) and whether it is rejected.

    Sorted ascending, the i-th smallest p (0-based) is rejected while p_(i) ≤ α/(m − i); at the
    first that is not, it and every larger p are kept (not rejected).
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: (p_values[i], i))
    out = [dict() for _ in range(m)]
    stopped = False
    for rank, i in enumerate(order):
        level = alpha / (m - rank)
        ok = not stopped and p_values[i] <= level
        stopped = stopped or not ok
        out[i] = {"p": p_values[i], "level": level, "rejected": ok, "rank": rank + 1}
    return out


def mdd(se: float) -> float:
    """The smallest true difference this comparison detects at α 0.05 with 80% power."""
    return MDD_FACTOR * se


def table_mdd(seed_sd: float, n_seeds: int) -> float:
    """The same for two arms compared over seeds alone: 2.8 × sd × √(2/n)."""
    if n_seeds < 2 or not math.isfinite(seed_sd):
        return float("nan")
    return MDD_FACTOR * seed_sd * math.sqrt(2.0 / n_seeds)


def decide(comparisons: list[dict], alpha: float = 0.05) -> list[dict]:
    """Verdicts for a family of comparisons, Holm-adjusted.

    comparisons: dicts with ``cmp`` (a bootstrap ``Comparison``), ``kind`` and ``delta``. Each gets
    its Holm level; its CI is taken at 1 − level and the verdict rule applied to it; one that
    Holm's step-down stopped before stays inconclusive whatever its own CI says.
    """
    ps = [c["cmp"].p_value(null_value(c["kind"], c.get("delta") or 0.0)) for c in comparisons]
    adj = holm(ps, alpha)
    out = []
    for c, h in zip(comparisons, adj):
        lo, hi = c["cmp"].ci(1.0 - h["level"])
        v = verdict(c["kind"], lo, hi, c.get("delta") or 0.0)
        if not h["rejected"]:
            v = INCONCLUSIVE
        out.append({**c, "lo": lo, "hi": hi, "verdict": v, "p": h["p"], "level": h["level"],
                    "m": len(comparisons), "mdd": mdd(c["cmp"].se)})
    return out
