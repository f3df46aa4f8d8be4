"""The paper's training-cost figure as a table: time, FLOPs, trainable params, bytes, ratios to pix2pix."""
from __future__ import annotations

from e2gan.reporting.columns import COST, COST_SHORT
from e2gan.reporting.paper_tables.common import (AGG_NOTE, PAPER_NOTE, frame_of, index_title, paper_entry,
                                                 paper_number, ratio, ratio_text, table_notes)
from e2gan.reporting.study_context import StudyContext, estimates
from e2gan.reporting.table import Table


PAPER_COST_KEYS = {"seconds": "train_seconds", "train_seconds": "train_seconds", "train_flops": "train_flops",
                   "params_trainable": "params_trainable", "bytes_stored": "bytes_stored"}


def reference_group(ctx: StudyContext) -> tuple | None:
    """The pix2pix row (by arm name, else by the method its runs recorded)."""
    if "arm" not in ctx.cell_cols:
        return None
    i = ctx.cell_cols.index("arm")
    for g in ctx.groups:
        if g[i] == "pix2pix":
            return g
    for g in ctx.groups:
        for r in ctx.run_results(ctx.group_rows(g)):
            method = r.get("method") or r.get("config", {}).get("adapt", {}).get("method")
            if method == "pix2pix":
                return g
    return None


def training_cost_table(ctx: StudyContext) -> Table:
    """The paper's training-cost figure: wall time, FLOPs, trainable params, bytes, ratios to pix2pix."""
    est = {k: estimates(ctx, k) for k, _, _ in COST}
    ref = reference_group(ctx)
    paper_keys = list(dict.fromkeys(k for v in ctx.paper.values() if isinstance(v, dict) for k in v
                                    if k in PAPER_COST_KEYS))
    ref_label = ctx.group_label(ref) if ref else None
    paper_ref = paper_entry(ctx, ref_label) if ref_label else paper_entry(ctx, "pix2pix")
    disp, data = {}, {}
    ratio_col = "pix2pix ÷ this (" + " / ".join(COST_SHORT[k] for k, _, _ in COST) + ")"
    for g in ctx.groups:
        label = ctx.group_label(g)
        row, rec = {}, {}
        for k, title, d in COST:
            row[title] = est[k][g].text(d)
            rec.update(est[k][g].record(k))
        ratios = [ratio(est[k][ref].mean, est[k][g].mean) if ref else float("nan") for k, _, _ in COST]
        row[ratio_col] = " / ".join(ratio_text(r) for r in ratios)
        rec.update({f"pix2pix/this {k}": r for (k, _, _), r in zip(COST, ratios)})
        entry = paper_entry(ctx, label) or {}
        for pk in paper_keys:
            row[f"paper {pk}"] = paper_number(entry.get(pk)) if pk in entry else "–"
            rec[f"paper {pk}"] = entry.get(pk)
            if paper_ref and pk in paper_ref:
                r = ratio(paper_ref.get(pk), entry.get(pk)) if pk in entry else float("nan")
                row[f"paper pix2pix ÷ this ({pk})"] = ratio_text(r)
                rec[f"paper pix2pix/this {pk}"] = r
        disp[label], data[label] = row, rec
    notes = [AGG_NOTE, "Wall time excludes evaluation; FLOPs are counted G+D forward and backward per step "
             "(torch.utils.flop_counter) times steps; trainable params and bytes are what one concept adds "
             "and stores. 'pix2pix ÷ this' is the ratio of means: above 1 means cheaper than pix2pix."]
    if ref is None:
        notes.append("No pix2pix arm in this study: ratios are not shown.")
    if paper_keys:
        notes.append(PAPER_NOTE + " The paper does not state the GPU behind its training times.")
    return Table("cost", "Training cost per concept", frame_of(disp, index_title(ctx)), frame_of(data, index_title(ctx)),
                 table_notes(ctx, extra=notes))
