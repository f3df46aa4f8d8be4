"""The learning rate each method keeps, computed from a rate sweep (``table = "rate-sweep"``).

Arms that differ only in their rate form one method; the rate kept is the one with the best final
validation PSNR (the pooled learning curve's last point: a choice, so the validation split makes
it, never the test split). A kept rate at the edge of the rates tried is flagged: the best may lie
beyond it.
"""
from __future__ import annotations

import json
import os

from e2gan.reporting.curves import arm_curves
from e2gan.reporting.paper_tables.common import frame_of, table_notes
from e2gan.reporting.stats import format_number
from e2gan.reporting.study_context import StudyContext
from e2gan.reporting.table import Table

# Keys of a run's adapt section that are not part of "the method": the rates swept and the seed.
RATE_KEYS = ("lr", "lr_g", "seed")


def method_key(result: dict) -> str:
    """What an arm's runs share besides their rate: the adapt section without rates and seed."""
    adapt = {k: v for k, v in result.get("config", {}).get("adapt", {}).items() if k not in RATE_KEYS}
    return json.dumps(adapt, sort_keys=True)


def effective_rate(result: dict) -> float | None:
    """The generator's learning rate the run trained at (its recorded training section's lr_g)."""
    rate = result.get("config", {}).get("train", {}).get("lr_g")
    return float(rate) if rate is not None else None


def method_label(labels: list[str]) -> str:
    """The arms' common name without the rate (``full-3e-4``, ``full-1e-3`` -> ``full``)."""
    if len(labels) == 1:
        return labels[0]
    prefix = os.path.commonprefix(labels).rstrip("-_ ")
    return prefix or " | ".join(labels)


def rate_choices(ctx: StudyContext) -> list[dict]:
    """One entry per method: its arms by rate, each with final val PSNR, CI, runs and collapses."""
    curves = arm_curves(ctx)
    methods: dict[str, list[dict]] = {}
    for g in ctx.groups:
        results = ctx.run_results(ctx.group_rows(g))
        if not results:
            continue
        rates = {effective_rate(r) for r in results}
        curve = curves.get(g)
        arm = {"arm": ctx.group_label(g), "rate": rates.pop() if len(rates) == 1 else None,
               "runs": len(results), "collapsed": sum(bool((r.get("collapsed") or {}).get("collapsed")) for r in results),
               "val_psnr": curve[-1].psnr if curve else None, "ci95": curve[-1].ci95 if curve else None,
               "step": curve[-1].step if curve else None}
        methods.setdefault(method_key(results[0]), []).append(arm)
    out = []
    for arms in methods.values():
        arms.sort(key=lambda a: (a["rate"] is None, a["rate"] or 0.0))
        scored = [a for a in arms if a["val_psnr"] is not None and a["rate"] is not None]
        best = max(scored, key=lambda a: a["val_psnr"]) if scored else None
        rates = [a["rate"] for a in scored]
        edge = best is not None and len(rates) > 1 and best["rate"] in (min(rates), max(rates))
        out.append({"method": method_label([a["arm"] for a in arms]), "arms": arms, "best": best, "edge": edge})
    return out


def rate_choice_table(ctx: StudyContext) -> Table:
    disp, data = {}, {}
    for m in rate_choices(ctx):
        best = m["best"]
        row = {f"rate {a['rate']:g}" if a['rate'] is not None else f"{a['arm']} (mixed rates)":
               (f"{format_number(a['val_psnr'], 2)} ± {format_number(a['ci95'], 2)}"
                + (f", {a['collapsed']}/{a['runs']} collapsed" if a["collapsed"] else "")
                if a["val_psnr"] is not None else "no curve") for a in m["arms"]}
        disp[m["method"]] = {
            "kept rate": (f"{best['rate']:g}" + (" (edge of the grid)" if m["edge"] else "")) if best else "–",
            "final val PSNR (dB) by rate": "; ".join(f"{k}: {v}" for k, v in row.items()),
        }
        data[m["method"]] = {"kept_rate": best["rate"] if best else None, "kept_arm": best["arm"] if best else None,
                             "edge_of_grid": m["edge"],
                             **{f"{a['arm']} {k}": a[k] for a in m["arms"] for k in ("rate", "val_psnr", "ci95", "runs", "collapsed")}}
    notes = ["Kept rate: the rate whose arm has the best final val PSNR (mean over its runs, held-out concepts × "
             "seeds pooled, ± 95% CI; at the last recorded validation). Chosen on the validation split; a "
             "collapsing rate scores its blank outputs' PSNR, so it is not kept. 'Edge of the grid': the best "
             "rate is the lowest or the highest tried, so a better one may lie beyond it.",
             "The rate is the generator's (adapt.lr for LoRA, adapt.lr_g or train.lr_g otherwise), read from "
             "each run's recorded training section; the discriminator's rate is not swept."]
    return Table("rate-choice", "Learning rate kept per method (validation split)",
                 frame_of(disp, "method"), frame_of(data, "method"), table_notes(ctx, extra=notes))
