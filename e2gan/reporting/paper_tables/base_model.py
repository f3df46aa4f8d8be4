"""The paper's base-model ablation: the objective per concept (rows) and base model (columns)."""
from __future__ import annotations

from e2gan.reporting.columns import DECIMALS, metric_title
from e2gan.reporting.paper_tables.common import (AGG_NOTE, PAPER_NOTE, frame_of, no_paper_note, paper_number,
                                                 table_notes)
from e2gan.reporting.stats import format_number
from e2gan.reporting.study_context import StudyContext, estimates
from e2gan.reporting.table import Table


BASE_PAPER_COLUMNS = [("representative", "representative base"), ("random-half", "20 random concepts"),
                      (None, "200 art concepts"), ("single", "single concept")]


def base_model_table(ctx: StudyContext) -> Table:
    """The paper's base-model ablation: the objective per concept (rows) and base model (columns)."""
    arms = [g for g in ctx.groups]
    keys = [*ctx.cell_cols, "concept"]
    per = estimates(ctx, ctx.metric, keys=keys, groups=[(*g, c) for g in arms for c in ctx.concepts], concepts=False)
    mean = estimates(ctx, ctx.metric)
    d = DECIMALS.get(ctx.metric, 3)
    disp, data = {}, {}
    for c in ctx.concepts:
        disp[c] = {ctx.group_label(g): per[(*g, c)].text(d) for g in arms}
        data[c] = {kk: vv for g in arms for kk, vv in per[(*g, c)].record(ctx.group_label(g)).items()}
    disp["mean over concepts"] = {ctx.group_label(g): mean[g].text(d) for g in arms}
    data["mean over concepts"] = {kk: vv for g in arms for kk, vv in mean[g].record(ctx.group_label(g)).items()}
    notes = [AGG_NOTE.replace("Each cell", "The last row")
             + " Concept rows: that concept over seeds.", ]
    paper_rows = {k: v for k, v in ctx.paper.items() if isinstance(v, (list, tuple)) and len(v) == len(BASE_PAPER_COLUMNS)}
    if paper_rows:
        labels = {ctx.group_label(g) for g in arms}
        extra_cols = [title for arm, title in BASE_PAPER_COLUMNS if arm not in labels]
        for name, vals in paper_rows.items():
            row = {ctx.group_label(g): "–" for g in arms}
            rec = {}
            for (arm, title), v in zip(BASE_PAPER_COLUMNS, vals):
                col = arm if arm in labels else f"paper: {title}"
                row[col] = f"{paper_number(v)} (paper)"
                rec[f"paper {title}"] = v
            disp[f"paper: {name} (FFHQ)"] = row
            data[f"paper: {name} (FFHQ)"] = rec
        means = [sum(float(v[i]) for v in paper_rows.values()) / len(paper_rows) for i in range(len(BASE_PAPER_COLUMNS))]
        row = {ctx.group_label(g): "–" for g in arms}
        for (arm, title), v in zip(BASE_PAPER_COLUMNS, means):
            row[arm if arm in labels else f"paper: {title}"] = f"{format_number(v, 2)} (paper)"
        disp[f"paper: mean of its {len(paper_rows)} concepts (FFHQ)"] = row
        data[f"paper: mean of its {len(paper_rows)} concepts (FFHQ)"] = {f"paper {t}": m for (_, t), m in zip(BASE_PAPER_COLUMNS, means)}
        mapping = "; ".join(f"'{t}' → {a if a in labels else 'paper only'}" for a, t in BASE_PAPER_COLUMNS)
        notes.append(PAPER_NOTE + f" The paper's concepts differ from ours; its columns map to our arms as: {mapping}."
                     + (f" Paper-only column(s): {', '.join(extra_cols)}." if extra_cols else ""))
    else:
        notes.append(no_paper_note(ctx))
    return Table("base-model", f"Base-model ablation: {metric_title(ctx.metric)} per concept and base",
                 frame_of(disp, "concept"), frame_of(data, "concept"), table_notes(ctx, extra=notes))
