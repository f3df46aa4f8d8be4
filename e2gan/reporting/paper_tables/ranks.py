"""The paper's rank-search table: quality vs trainable parameters per rank scheme."""
from __future__ import annotations

from e2gan.reporting.columns import DECIMALS, metric_title
from e2gan.reporting.paper_tables.common import (AGG_NOTE, PAPER_NOTE, frame_of, no_paper_note, paper_number,
                                                 table_notes)
from e2gan.reporting.stats import format_number
from e2gan.reporting.study_context import StudyContext, estimates
from e2gan.reporting.table import Table


def _ranks_of(result: dict) -> str:
    a = result.get("config", {}).get("adapt", {})
    ranks = a.get("ranks") or {}
    groups = a.get("groups") or list(ranks)
    if ranks:
        return ", ".join(f"{g} {ranks.get(g, a.get('rank'))}" for g in dict.fromkeys([*groups, *ranks]))
    return f"{a.get('rank')} on {'+'.join(groups)}" if a.get("rank") is not None else "?"


def ranks_table(ctx: StudyContext) -> Table:
    """The paper's rank-search table: quality vs trainable parameters per rank scheme."""
    cols = list(dict.fromkeys([ctx.metric, "psnr"]))
    est = {k: estimates(ctx, k) for k in cols}
    params = estimates(ctx, "params_trainable")
    disp, data = {}, {}
    for g in ctx.groups:
        label = ctx.group_label(g)
        res = ctx.run_results(ctx.group_rows(g))
        row = {"ranks": _ranks_of(res[0]) if res else "?"}
        row.update({metric_title(k): est[k][g].text(DECIMALS.get(k, 3)) for k in cols})
        row["trainable params"] = format_number(params[g].mean, 0)
        rec = {kk: vv for k in cols for kk, vv in est[k][g].record(k).items()} | {"params_trainable": params[g].mean}
        p = ctx.paper.get(label)
        row["paper FID"] = paper_number(p[0]) if isinstance(p, (list, tuple)) else "–"
        row["paper params"] = paper_number(p[1]) if isinstance(p, (list, tuple)) and len(p) > 1 else "–"
        rec["paper fid"], rec["paper params"] = (p[0], p[1] if len(p) > 1 else None) if isinstance(p, (list, tuple)) else (None, None)
        disp[label], data[label] = row, rec
    labels = [ctx.group_label(g) for g in ctx.groups]
    for name, p in ctx.paper.items():
        if name not in labels and isinstance(p, (list, tuple)):
            row = {"ranks": "searched by the paper" if name == "searched" else "?"}
            row.update({metric_title(k): "not run" for k in cols})
            row.update({"trainable params": "–", "paper FID": paper_number(p[0]),
                        "paper params": paper_number(p[1]) if len(p) > 1 else "–"})
            disp[f"{name} (paper only)"] = row
            data[f"{name} (paper only)"] = {"paper fid": p[0], "paper params": p[1] if len(p) > 1 else None}
    notes = [AGG_NOTE, "The greedy rank search, when the spec runs it, has its own table below (its random "
                       "scheme is drawn at the searched allocation's budget)."]
    notes.append(PAPER_NOTE + " The paper's rank table is Flickr-Scenery FID, mean over 10 concepts."
                 if ctx.paper else no_paper_note(ctx))
    return Table("ranks", "Rank allocation: quality vs trainable parameters", frame_of(disp, "scheme"),
                 frame_of(data, "scheme"), table_notes(ctx, extra=notes))
