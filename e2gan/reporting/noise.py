"""Each study's noise floor, floors and collapsed runs, as one table.

Per row of the study: how many runs collapsed (and by which statistic), the objective's mean over
the runs that did not collapse beside its median over all runs, the seed-to-seed sd, FID∞ and KID
beside FID, and the floors stored at evaluation time (unedited source vs target; two halves of the
teacher's own targets). The note states the smallest difference the table can detect over seeds.
"""
from __future__ import annotations

import math
import statistics

import pandas as pd

from e2gan.metrics.collapse import same_across_seeds
from e2gan.reporting.arms import arm_runs, by_concept
from e2gan.reporting.columns import DECIMALS, metric_title
from e2gan.reporting.stats import format_number
from e2gan.reporting.study_context import StudyContext, estimates
from e2gan.reporting.table import Table
from e2gan.reporting.verdicts import table_mdd

FLOORS = {"fid": ("floor_identity_fid", "floor_halves_fid"), "kid_mean": ("floor_identity_kid", "floor_halves_kid"),
          "psnr": ("identity_psnr", None)}


def _metric(r, key: str) -> float:
    v = ((r.result or {}).get("metrics", {}).get("mean_over_concepts", {}) or {}).get(key)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return float("nan")
    return f if math.isfinite(f) else float("nan")


def _mean(vals) -> float:
    vals = [v for v in vals if math.isfinite(v)]
    return sum(vals) / len(vals) if vals else float("nan")


def collapsed_runs(runs) -> dict[str, list[str]]:
    """run_dir -> why it collapsed: its own check in result.json, or the same outputs as another seed."""
    out: dict[str, list[str]] = {}
    for r in runs:
        c = (r.result or {}).get("collapsed")
        if isinstance(c, dict) and c.get("collapsed"):
            out.setdefault(r.run_dir, []).extend(c.get("by") or ["collapsed"])
    for concept, rs in by_concept(runs).items():
        feats = {i: r.scores["feat_out"] for i, r in enumerate(rs) if r.scores is not None}
        for i, same in same_across_seeds(feats).items():
            seeds = ", ".join(str(rs[j].seed) for j in same)
            out.setdefault(rs[i].run_dir, []).append(f"{concept}: same outputs as seed(s) {seeds}")
    return out


def collapse_suffixes(ctx: StudyContext) -> dict[tuple, str]:
    """Row -> ' (k/n collapsed)' for the rows of a grid study with collapsed runs (figure labels)."""
    if ctx.sampler != "grid" or ctx.frame.empty:
        return {}
    out = {}
    for g in ctx.groups:
        runs = arm_runs(ctx, ctx.group_label(g)) or []
        bad = collapsed_runs(runs)
        if bad:
            out[g] = f" ({len(bad)}/{len(runs)} collapsed)"
    return out


def noise_table(ctx: StudyContext) -> Table | None:
    """None for search studies (their runs are trials, not arms) or an empty study."""
    if ctx.sampler != "grid" or ctx.frame.empty:
        return None
    m = ctx.metric
    est = estimates(ctx, m)
    d = DECIMALS.get(m, 3)
    disp, data, sds, checked, stored = {}, {}, [], 0, 0
    for g in ctx.groups:
        label = ctx.group_label(g)
        runs = arm_runs(ctx, label) or []
        if not runs:
            continue
        bad = collapsed_runs(runs)
        checked += sum(isinstance((r.result or {}).get("collapsed"), dict) for r in runs)
        stored += sum(r.scores is not None for r in runs)
        vals = [_metric(r, m) for r in runs]
        ok_vals = [v for r, v in zip(runs, vals) if r.run_dir not in bad]
        finite = [v for v in vals if math.isfinite(v)]
        e = est.get(g)
        if e is not None and math.isfinite(e.std):
            sds.append(e.std)
        floors = FLOORS.get(m, (None, None))
        row = {"collapsed": f"{len(bad)}/{len(runs)}",
               f"{metric_title(m)} mean, not collapsed": format_number(_mean(ok_vals), d),
               f"{metric_title(m)} median, all runs": format_number(statistics.median(finite), d) if finite else "–",
               "seed-to-seed sd": format_number(e.std if e else float("nan"), d),
               "FID": format_number(_mean([_metric(r, "fid") for r in runs]), 2),
               "FID∞": format_number(_mean([_metric(r, "fid_inf") for r in runs]), 2),
               "KID": format_number(_mean([_metric(r, "kid_mean") for r in runs]), 4),
               "floor: source vs target": format_number(_mean([_metric(r, floors[0]) for r in runs]), d)
               if floors[0] else "–",
               "floor: target halves": format_number(_mean([_metric(r, floors[1]) for r in runs]), d)
               if floors[1] else "–",
               "why collapsed": "; ".join(dict.fromkeys(w for ws in bad.values() for w in ws)) or "–"}
        disp[label] = row
        data[label] = {"runs": len(runs), "collapsed": len(bad), f"{m} mean not collapsed": _mean(ok_vals),
                       f"{m} median all": statistics.median(finite) if finite else float("nan"),
                       "seed sd": e.std if e else float("nan")}
    if not disp:
        return None
    n_seeds = len(ctx.seeds)
    pooled = math.sqrt(sum(s * s for s in sds) / len(sds)) if sds else float("nan")
    notes = [f"Seed-to-seed sd: of the per-seed {metric_title(m)} (mean over concepts) within each row; pooled "
             f"{format_number(pooled, d)}. Over {n_seeds} seeds two rows must differ by about "
             f"{format_number(table_mdd(pooled, n_seeds), d)} (2.8 × sd × √(2/{n_seeds})) to be detected at "
             "α 0.05 with 80% power from seeds alone; paired comparisons over images and seeds detect less "
             "(their MDD is in the comparisons table).",
             "Collapsed: outputs near-constant (mean per-image pixel std < 0.1 of the targets'), the same for "
             "every input (spread across inputs < 0.1 of the targets'), or the same as another seed's (output "
             "features within 1e-3 relative). Collapsed runs are left out of the 'mean, not collapsed' column "
             "and kept in the median; the other tables average every run.",
             "Floors: the unedited source scored against the teacher's targets (what doing nothing gets) and two "
             "disjoint halves of the teacher's targets against each other (N/2 each: about what a perfect model "
             "gets at this N). FID∞: least-squares extrapolation of FID over subset sizes to infinite N."]
    total = sum(len(arm_runs(ctx, ctx.group_label(g)) or []) for g in ctx.groups)
    if checked < total:
        notes.append(f"{total - checked} of {total} runs were evaluated before the collapse check existed "
                     "(no 'collapsed' field): rerun their evaluation to check them.")
    if stored < total:
        notes.append(f"{total - stored} of {total} runs have no per-image scores stored: rerun their evaluation "
                     "(e2gan evaluate) for FID∞, floors and paired comparisons.")
    return Table("noise", "Noise floor, floors and collapsed runs", pd.DataFrame.from_dict(disp, orient="index")
                 .rename_axis("row"), pd.DataFrame.from_dict(data, orient="index").rename_axis("row"), notes)
