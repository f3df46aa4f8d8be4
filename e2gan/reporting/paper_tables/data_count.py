"""Data count: quality vs number of training pairs (rows) per selection method (columns)."""
from __future__ import annotations

import math

from e2gan.reporting.columns import DECIMALS, metric_title
from e2gan.reporting.paper_tables.common import AGG_NOTE, frame_of, is_num, no_paper_note, table_notes
from e2gan.reporting.paper_tables.main import main_quality_table
from e2gan.reporting.study_context import StudyContext, estimates
from e2gan.reporting.table import Table


PAIRS_AXIS, SELECTION_AXIS = "adapt.train_pairs", "adapt.selection"


def data_count_table(ctx: StudyContext) -> Table:
    """Data count: quality vs number of training pairs (rows) per selection method (columns)."""
    if PAIRS_AXIS not in ctx.cell_cols:
        t = main_quality_table(ctx)
        t.key, t.title = "data-count", "Data count (no adapt.train_pairs axis: shown per cell)"
        return t
    i = ctx.cell_cols.index(PAIRS_AXIS)
    cols = list(dict.fromkeys([ctx.metric, "psnr"]))
    est = {k: estimates(ctx, k) for k in cols}
    pairs = list(dict.fromkeys(g[i] for g in ctx.groups))
    pairs.sort(key=lambda v: (float(v) if is_num(v) and float(v) > 0 else math.inf))  # 0 = all pairs: last
    disp: dict[str, dict] = {}
    data: dict[str, dict] = {}
    for g in ctx.groups:
        rest = " / ".join(str(v) for j, v in enumerate(g) if j != i) or "all"
        rlabel = "all" if str(g[i]) == "0" else str(g[i])
        for k in cols:
            disp.setdefault(rlabel, {})[f"{rest}: {metric_title(k)}"] = est[k][g].text(DECIMALS.get(k, 3))
            data.setdefault(rlabel, {}).update(est[k][g].record(f"{rest} {k}"))
    order = ["all" if str(p) == "0" else str(p) for p in pairs]
    disp = {k: disp[k] for k in order if k in disp}
    data = {k: data[k] for k in order if k in data}
    notes = [AGG_NOTE, "Rows: training pairs of the new concept ('all' = every training pair); columns: how the "
             "subset was chosen (random, or the samples nearest k-means centres); at 'all' nothing is chosen, so "
             "its random and k-means columns are the same runs.", no_paper_note(ctx)]
    return Table("data-count", "Data count: quality vs training pairs per selection method",
                 frame_of(disp, "training pairs"), frame_of(data, "training pairs"), table_notes(ctx, extra=notes))
