"""What every paper table shares: the protocol sentence, the aggregation and paper notes, the
paper's numbers as printed, ratios, and the frame a table's rows become."""
from __future__ import annotations

import math
from typing import Any, Iterable

import pandas as pd

from e2gan.reporting.study_context import StudyContext
from e2gan.results import backbone_label


PAPER_NOTE = ("Columns and rows marked 'paper' hold the paper's numbers (256², FFHQ / Flickr-Scenery, "
              "Stable-Diffusion teacher, its own FID protocol); ours come from this preset's data and "
              "teacher, so compare rankings and ratios, not absolute values.")
AGG_NOTE = ("Each cell: the metric averaged over the held-out concepts per seed, then mean ± 95% CI "
            "(Student t, N-1 degrees of freedom) over seeds, with N. A seed where only some concepts "
            "finished is named as partial and not counted; missing seeds are named.")


def distinct(values: Iterable) -> str:
    vals = [str(v) for v in values if v not in (None, "", {})]
    uniq = list(dict.fromkeys(vals))
    if not uniq:
        return "?"
    return uniq[0] if len(uniq) == 1 else "mixed: " + " | ".join(uniq)


def protocol_text(results: list[dict], preset: str, seeds: list, concepts: list[str]) -> str:
    """One sentence stating how the numbers of a table were measured (from the runs' result.json)."""
    head = (f"Protocol: preset {preset}; held-out concepts {', '.join(concepts) or '?'}; "
            f"seeds {', '.join(map(str, seeds))}")
    if not results:
        return head + "; measurement protocol unknown (no result.json could be read for these runs)."
    protos = [r.get("protocol", {}) for r in results]

    n_per = []
    for r, p in zip(results, protos):
        per = p.get("n_per_concept") or {c: m.get("n") for c, m in r.get("metrics", {}).get("per_concept", {}).items()}
        n_per += [v for v in per.values() if v is not None]
    res = distinct(p.get("resolution") for p in protos)
    return (f"{head}; FID/KID backbone {distinct(backbone_label(p.get('backbone')) for p in protos)} "
            f"({distinct(p.get('fid_mode', 'clean') for p in protos)} mode); perceptual "
            f"{distinct(p.get('perceptual') for p in protos)}; reference set "
            f"{distinct(p.get('reference_set') for p in protos)}; N = {distinct(n_per)} test images per concept; "
            f"resolution {res}{'²' if res.isdigit() else ''}; checkpoint {distinct(p.get('checkpoint') for p in protos)}; "
            f"device {distinct(r.get('env', {}).get('device') for r in results)}; {len(results)} runs.")


def table_notes(ctx: StudyContext, rows: pd.DataFrame | None = None, extra: Iterable[str] = ()) -> list[str]:
    notes = [protocol_text(ctx.run_results(rows), ctx.preset, ctx.seeds, ctx.concepts)]
    notes += [n for n in extra if n]
    return notes


def index_title(ctx: StudyContext, name: str | None = None) -> str:
    return name or (" / ".join("method" if c == "arm" else c for c in ctx.cell_cols) or "cell")


def paper_entry(ctx: StudyContext, label: str) -> dict | None:
    v = ctx.paper.get(label)
    return v if isinstance(v, dict) else None


def no_paper_note(ctx: StudyContext) -> str:
    if ctx.paper:
        return "The paper's numbers in this spec: " + "; ".join(f"{k} = {v}" for k, v in ctx.paper.items()) + " (paper)."
    return "The paper has no retrievable numbers for this table."


def paper_number(v: Any) -> str:
    """A number from the spec's [paper] table, as the paper printed it (no re-rounding)."""
    if v is None:
        return "–"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def ratio(a: Any, b: Any) -> float:
    try:
        a, b = float(a), float(b)
    except (TypeError, ValueError):
        return float("nan")
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return float("nan")
    return a / b


def ratio_text(r: float) -> str:
    if not math.isfinite(r):
        return "–"
    return f"{r:.3g}×"


def is_num(v: Any) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def frame_of(rows: dict[str, dict], index_name: str) -> pd.DataFrame:
    df = pd.DataFrame.from_dict(rows, orient="index") if rows else pd.DataFrame()
    df.index.name = index_name
    return df
