"""Learning curves per arm, read from each run's result.json (``cost.curve``, recorded at every
validation while training): val PSNR against training seconds and against counted FLOPs, and the
first recorded point that reaches a target quality.

Pooled: a point of an arm's curve is the mean over every run of the arm (held-out concepts × seeds)
that recorded that step, with a Student-t 95% CI over those runs. Only steps every run of the arm
recorded are drawn, so a mean never mixes runs at different steps. Nothing is interpolated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from e2gan.reporting.paper_tables.common import frame_of, index_title, table_notes
from e2gan.reporting.stats import estimate, format_number
from e2gan.reporting.study_context import StudyContext
from e2gan.reporting.table import Table

TARGET_ARM = "full"        # the arm whose final val PSNR sets the target
TARGET_MARGIN_DB = 0.5     # the delta of the main spec's non-inferiority claims (claim a)
NO_CURVE = ("No run of this study recorded a learning curve (adapt.curve_points = 0, or runs from before "
            "curves were recorded): no curve figure is drawn and no step to a target can be read.")


@dataclass(frozen=True)
class CurvePoint:
    step: int
    seconds: float   # mean training seconds to this step (validation excluded)
    flops: float     # counted training FLOPs to this step
    psnr: float      # mean val PSNR (dB)
    ci95: float
    n: int           # runs behind the mean


def _finite(v) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def run_curves(ctx: StudyContext, g: tuple) -> list[list[dict]]:
    """The recorded curve of every run of row ``g`` that has one."""
    out = []
    for r in ctx.run_results(ctx.group_rows(g)):
        pts = [p for p in (r.get("cost", {}).get("curve") or []) if _finite(p.get("val_psnr"))]
        if pts:
            out.append(pts)
    return out


def mean_curve(runs: list[list[dict]]) -> list[CurvePoint]:
    """The arm's pooled curve at the steps every run recorded."""
    if not runs:
        return []
    by_run = [{int(p["step"]): p for p in run} for run in runs]
    steps = sorted(set.intersection(*(set(d) for d in by_run)))
    out = []
    for s in steps:
        pts = [d[s] for d in by_run]
        e = estimate([p["val_psnr"] for p in pts])
        secs = [float(p["train_seconds"]) for p in pts if _finite(p.get("train_seconds"))]
        flops = [float(p["flops"]) for p in pts if _finite(p.get("flops"))]
        out.append(CurvePoint(s, sum(secs) / len(secs) if secs else float("nan"),
                              sum(flops) / len(flops) if flops else float("nan"), e.mean, e.ci95, e.n))
    return out


def arm_curves(ctx: StudyContext) -> dict[tuple, list[CurvePoint]]:
    """Row -> its pooled curve, for the rows with any recorded curve."""
    curves = {g: mean_curve(run_curves(ctx, g)) for g in ctx.groups}
    return {g: c for g, c in curves.items() if c}


def target_psnr(ctx: StudyContext, curves: dict[tuple, list[CurvePoint]]) -> float:
    """The reference arm's final pooled val PSNR minus the margin (nan without that arm's curve)."""
    ref = next((c for g, c in curves.items() if ctx.group_label(g) == TARGET_ARM), None)
    return ref[-1].psnr - TARGET_MARGIN_DB if ref else float("nan")


def first_reaching(curve: list[CurvePoint], target: float) -> CurvePoint | None:
    return next((p for p in curve if p.psnr >= target), None) if _finite(target) else None


def steps_to_target_table(ctx: StudyContext) -> Table:
    """Per arm: the first recorded step (and its training seconds and FLOPs) whose val PSNR reaches the target."""
    curves = arm_curves(ctx)
    target = target_psnr(ctx, curves)
    disp, data = {}, {}
    for g in ctx.groups:
        label, curve = ctx.group_label(g), curves.get(g)
        if not curve:
            if curves:
                disp[label] = {"steps to target": "no curve recorded"}
                data[label] = {"steps": None}
            continue
        hit = first_reaching(curve, target)
        last = curve[-1]
        disp[label] = {
            "steps to target": str(hit.step) if hit else ("not reached" if _finite(target) else "no target"),
            "training s to target": format_number(hit.seconds, 1) if hit else "–",
            "FLOPs to target": f"{hit.flops:.3g}" if hit and _finite(hit.flops) else "–",
            "final val PSNR (dB)": f"{format_number(last.psnr, 2)} ± {format_number(last.ci95, 2)} at step {last.step}",
            "runs": str(last.n),
        }
        data[label] = {"steps": hit.step if hit else None, "train_seconds": hit.seconds if hit else None,
                       "flops": hit.flops if hit else None, "final val_psnr mean": last.psnr,
                       "final val_psnr ci95": last.ci95, "final step": last.step, "runs": last.n,
                       "target val_psnr": target}
    if not curves:
        notes = [NO_CURVE]
    else:
        rule = (f"Target: the '{TARGET_ARM}' arm's final val PSNR minus {TARGET_MARGIN_DB} dB (the margin of "
                f"the non-inferiority claim) = {format_number(target, 2)} dB" if _finite(target) else
                f"No target: the '{TARGET_ARM}' arm recorded no curve")
        notes = [f"{rule}. Steps to target: the first recorded validation whose mean val PSNR reaches it "
                 "('not reached' when none does); only recorded points count, nothing is interpolated.",
                 f"On the validation split (set-level PSNR at each validation during training), not the test "
                 f"split. Each point: the mean over the arm's runs (held-out concepts × seeds pooled, "
                 f"{len(ctx.concepts)} concepts × up to {len(ctx.seeds)} seeds) that recorded that step; 'runs' "
                 "is their number. Training seconds exclude validation and checkpoint writing, measured on "
                 "the machine that trained; FLOPs are counted per step (generator and discriminator, "
                 "forward and backward) times the step."]
    return Table("steps-to-target", "Steps to a target quality (validation split)",
                 frame_of(disp, index_title(ctx)), frame_of(data, index_title(ctx)),
                 table_notes(ctx, extra=notes) if curves else notes)


def curve_figures(ctx: StudyContext, folder: Path, label) -> list[tuple[str, str, Path, str]]:
    """(key, title, path, caption) of the val-PSNR-vs-seconds and vs-FLOPs figures; none without curves."""
    from e2gan.reporting.plots import plot_lines

    curves = arm_curves(ctx)
    if not curves:
        return []
    caption = ("Val PSNR (validation split, higher is better) at each recorded validation; points: mean over the "
               "arm's runs (concepts × seeds pooled), bars: 95% CI. ")
    out = []
    for key, attr, xlabel, log_x, how in (
            ("curve-seconds", "seconds", "training seconds per concept (validation excluded)", False,
             "Training seconds: the mean over the runs at that step."),
            ("curve-flops", "flops", "training FLOPs per concept (counted)", True,
             "FLOPs: counted per step times the step.")):
        series = {label(g): [(getattr(p, attr), p.psnr, p.ci95) for p in c] for g, c in curves.items()}
        path = plot_lines(series, Path(folder) / f"{key}.png", xlabel=xlabel, ylabel="val PSNR (dB)",
                          title=f"Quality at equal {'wall time' if attr == 'seconds' else 'FLOPs'}", log_x=log_x)
        out.append((key, f"Val PSNR vs {'training seconds' if attr == 'seconds' else 'FLOPs'}", path, caption + how))
    return out
