"""Crucial layers: quality per LoRA group, trainable params and quality gained per parameter."""
from __future__ import annotations

from e2gan.reporting.columns import DECIMALS, metric_title
from e2gan.reporting.paper_tables.common import AGG_NOTE, frame_of, index_title, no_paper_note, table_notes
from e2gan.reporting.stats import format_number
from e2gan.reporting.study_context import StudyContext, estimates
from e2gan.reporting.table import Table


def layers_table(ctx: StudyContext) -> Table:
    """Crucial layers: quality per LoRA group, trainable params and quality gained per parameter."""
    cols = list(dict.fromkeys([ctx.metric, "psnr", "gain_db"]))
    est = {k: estimates(ctx, k) for k in cols}
    params = estimates(ctx, "params_trainable")
    disp, data = {}, {}
    for g in ctx.groups:
        label = ctx.group_label(g)
        row = {metric_title(k): est[k][g].text(DECIMALS.get(k, 3)) for k in cols}
        rec = {kk: vv for k in cols for kk, vv in est[k][g].record(k).items()}
        row["trainable params"] = format_number(params[g].mean, 0)
        rec["params_trainable"] = params[g].mean
        per_k = est["gain_db"][g].mean / params[g].mean * 1000 if params[g].n and params[g].mean else float("nan")
        row["gain dB per 1k params"] = format_number(per_k, 3)
        rec["gain_db per 1k params"] = per_k
        disp[label], data[label] = row, rec
    index = "LoRA groups" if ctx.cell_cols == ["adapt.groups"] else index_title(ctx)
    notes = [AGG_NOTE, "PSNR gain: over the identity baseline (source vs target). 'Gain per 1k params' divides "
             "the mean gain by the mean trainable parameters of the row (LoRA factors plus the concept's "
             "embedding row).", no_paper_note(ctx)]
    return Table("layers", "Crucial layers: LoRA on one group at a time", frame_of(disp, index), frame_of(data, index),
                 table_notes(ctx, extra=notes))
