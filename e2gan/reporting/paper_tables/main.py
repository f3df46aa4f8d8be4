"""The paper's main table (quality per method, over the held-out concepts) and its per-concept view."""
from __future__ import annotations

from e2gan.reporting.columns import DECIMALS, QUALITY, metric_title
from e2gan.reporting.paper_tables.common import (AGG_NOTE, PAPER_NOTE, frame_of, index_title, paper_entry,
                                                 paper_number, table_notes)
from e2gan.reporting.study_context import StudyContext, estimates
from e2gan.reporting.table import Table


PAPER_DATASETS = {"fid_scenery": "Flickr-Scenery", "fid_ffhq": "FFHQ"}


def main_quality_table(ctx: StudyContext) -> Table:
    """The paper's main table: FID, KID, perceptual distance and PSNR per method, over concepts."""
    metrics = [k for k, _, _ in QUALITY]
    est = {k: estimates(ctx, k) for k in metrics}
    paper_keys = list(dict.fromkeys(k for v in ctx.paper.values() if isinstance(v, dict) for k in v
                                    if k.startswith("fid")))
    disp, data = {}, {}
    for g in ctx.groups:
        label = ctx.group_label(g)
        disp[label] = {metric_title(k): est[k][g].text(DECIMALS[k]) for k in metrics}
        data[label] = {kk: vv for k in metrics for kk, vv in est[k][g].record(k).items()}
        entry = paper_entry(ctx, label) or {}
        for pk in paper_keys:
            disp[label][_paper_col(pk)] = paper_number(entry.get(pk)) if pk in entry else "–"
            data[label][f"paper {pk}"] = entry.get(pk)
    labels = [ctx.group_label(g) for g in ctx.groups]
    for name, entry in ctx.paper.items():  # the paper's methods we do not run
        if isinstance(entry, dict) and name not in labels and any(k in entry for k in paper_keys):
            row = f"{name} (paper only)"
            disp[row] = {metric_title(k): "not run" for k in metrics}
            disp[row].update({_paper_col(pk): paper_number(entry.get(pk)) if pk in entry else "–" for pk in paper_keys})
            data[row] = {f"paper {pk}": entry.get(pk) for pk in paper_keys}
    notes = [AGG_NOTE]
    if paper_keys:
        notes.append(PAPER_NOTE)
    return Table("quality", "Quality per method (mean over held-out concepts)", frame_of(disp, index_title(ctx)),
                 frame_of(data, index_title(ctx)), table_notes(ctx, extra=notes))


def _paper_col(key: str) -> str:
    ds = PAPER_DATASETS.get(key)
    return f"paper FID ({ds})" if ds else f"paper {key}"


def per_concept_table(ctx: StudyContext) -> Table:
    """The objective and PSNR per method and concept (each concept over seeds)."""
    keys = [*ctx.cell_cols, "concept"]
    groups = [(*g, c) for g in ctx.groups for c in ctx.concepts]
    cols = list(dict.fromkeys([ctx.metric, "psnr", "gain_db"]))
    est = {k: estimates(ctx, k, keys=keys, groups=groups, concepts=False) for k in cols}
    disp, data = {}, {}
    for g in groups:
        label = ctx.group_label(g)
        disp[label] = {metric_title(k): est[k][g].text(DECIMALS.get(k, 3)) for k in cols}
        data[label] = {kk: vv for k in cols for kk, vv in est[k][g].record(k).items()}
    note = ("Per concept: mean ± 95% CI over seeds, with N. 'PSNR gain' is the PSNR over the identity "
            "baseline (the unedited source against the teacher's target).")
    return Table("per-concept", "Per held-out concept", frame_of(disp, index_title(ctx) + " / concept"),
                 frame_of(data, index_title(ctx) + " / concept"), table_notes(ctx, extra=[note]))
