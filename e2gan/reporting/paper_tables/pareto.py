"""A rank search's trials (NSGA-II): per-group ranks, the objective, trainable params, the Pareto front."""
from __future__ import annotations

import pandas as pd

from e2gan.markdown_table import label_value
from e2gan.reporting.columns import DECIMALS, TITLES, metric_title
from e2gan.reporting.paper_tables.common import frame_of, is_num, no_paper_note, table_notes
from e2gan.reporting.stats import format_number, pareto_front
from e2gan.reporting.study_context import StudyContext
from e2gan.reporting.table import Table


def search_columns(ctx: StudyContext) -> list[str]:
    cols = [k for k in ctx.search if k in ctx.frame.columns]
    return cols or [c for c in ctx.frame.columns if str(c).startswith("adapt.")]


def pareto_points(ctx: StudyContext) -> tuple[pd.DataFrame, list[int]]:
    """The trials sorted by trainable params, and the positions of the Pareto front among them."""
    df = ctx.frame
    if df.empty:
        return df.assign(_x=pd.Series(dtype=float), _y=pd.Series(dtype=float)), []
    value_col = "value" if "value" in df.columns else ctx.metric
    nan = pd.Series(float("nan"), index=df.index)
    df = df.assign(_y=pd.to_numeric(df[value_col] if value_col in df.columns else nan, errors="coerce"),
                   _x=pd.to_numeric(df["params_trainable"] if "params_trainable" in df.columns else nan,
                                    errors="coerce"))
    sort_cols = ["_x", "_y"] + (["trial"] if "trial" in df.columns else [])
    df = df.sort_values(sort_cols, kind="mergesort").reset_index(drop=True)
    front = pareto_front(df["_x"].tolist(), df["_y"].tolist(), maximize_y=ctx.maximize)
    return df, front


def pareto_table(ctx: StudyContext) -> Table:
    """NSGA-II trials: per-group ranks, the objective, trainable params, and which are on the front."""
    df, front = pareto_points(ctx)
    cols = search_columns(ctx)
    disp, data = {}, {}
    n_runs = len(ctx.concepts) * len(ctx.seeds)
    for pos, r in df.iterrows():
        label = f"trial {int(r['trial'])}" if "trial" in df.columns and is_num(r.get("trial")) else f"#{pos}"
        row = {c.split(".")[-1]: label_value(r[c]) for c in cols}
        runs = r.get("runs") if "runs" in df.columns else None
        n = len(runs) if isinstance(runs, (list, tuple)) else n_runs
        row[f"{metric_title(ctx.metric)} (mean of N runs)"] = (f"{format_number(r['_y'], DECIMALS.get(ctx.metric, 3))} "
                                                              f"(N={n or '?'})")
        row["PSNR dB ↑"] = format_number(r.get("psnr"), 2)
        row["trainable params"] = format_number(r["_x"], 0)
        row["Pareto front"] = "✓" if pos in front else ""
        disp[label] = row
        data[label] = {c: label_value(r[c]) for c in cols} | {ctx.metric: r["_y"], "n_runs": n, "psnr": r.get("psnr"),
                                                               "params_trainable": r["_x"], "front": pos in front}
    done = len(df)
    notes = [f"{done} of {ctx.n_trials or '?'} trials complete. Each trial's value is the mean over its N runs "
             f"(concepts × seeds); the front is the set of trials no other trial beats on both "
             f"{TITLES.get(ctx.metric, ctx.metric)} and trainable parameters.", no_paper_note(ctx)]
    return Table("pareto", "Rank search (NSGA-II): trials and Pareto front", frame_of(disp, "trial"),
                 frame_of(data, "trial"), table_notes(ctx, extra=notes))
