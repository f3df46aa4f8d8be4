"""One report per study (tables, figures, image grids; Markdown + self-contained HTML) and the index.

Layout of a study report (``out_dir`` = ``reports/<preset>/<study>``)::

    index.html          self-contained: figures and grids embedded as data URIs, user strings escaped
    index.md            the same content in Markdown, linking the files below
    tables/<key>.md|.csv|.tex
    figures/<name>.png
    grids/<concept>.png source / teacher target / each method's output, a few test images
    trials.csv          the trials the report was built from

Inputs are plain (see ``study_context``): a spec-like object or dict, the trials DataFrame, and
the runs' result.json files (read here unless given).
"""
from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from e2gan.io import atomic_write_text
from e2gan.reporting.columns import DECIMALS, TITLES, metric_title
from e2gan.reporting.concept_grids import concept_grid
from e2gan.reporting.html import image_data_uri, page, paragraph
from e2gan.reporting.paper_tables.data_count import PAIRS_AXIS
from e2gan.reporting.paper_tables.latency import latency_rows
from e2gan.reporting.paper_tables.pareto import pareto_points
from e2gan.reporting.paper_tables.registry import build_tables
from e2gan.reporting.plots import Point, plot_cost_quality, plot_grouped_bars, plot_latency_macs, plot_lines
from e2gan.reporting.stats import format_number
from e2gan.reporting.study_context import StudyContext, estimates, spec_get, study_context
from e2gan.reporting.table import md_escape

EXTRA_STYLE = "<style>td.missing{color:#a00}td.paper,th.paper{background:#f3f0e6;font-style:italic}figure{margin:1em 0}figcaption{font-size:90%;color:#444}</style>"


@dataclass
class Figure:
    key: str
    title: str
    path: Path
    caption: str


def slug(text: str) -> str:
    """A safe file name for any user string (a short hash keeps distinct names distinct)."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-.")[:40] or "x"
    return f"{base}-{hashlib.sha256(str(text).encode()).hexdigest()[:6]}" if base != str(text) else base


# --------------------------------------------------------------------------------------------
# Figures.
# --------------------------------------------------------------------------------------------

def _points(ctx: StudyContext, x_key: str, y_key: str, label=None) -> list[Point]:
    ex, ey = estimates(ctx, x_key), estimates(ctx, y_key)
    label = label or ctx.group_label
    return [Point(label(g), ex[g].mean, ey[g].mean, ex[g].ci95, ey[g].ci95, "") for g in ctx.groups
            if ex[g].n and ey[g].n]


def build_figures(ctx: StudyContext, folder: Path) -> list[Figure]:
    from e2gan.reporting.noise import collapse_suffixes

    folder = Path(folder)
    out: list[Figure] = []
    suffix = collapse_suffixes(ctx)  # a row with collapsed runs says so on the plot too

    def label(g: tuple) -> str:
        return ctx.group_label(g) + suffix.get(g, "")
    ylab = f"{TITLES.get(ctx.metric, ctx.metric)} ({'higher' if ctx.maximize else 'lower'} is better)"
    ci = "Points: mean over seeds; bars: 95% CI."

    def add(key: str, title: str, path: Path, caption: str) -> None:
        out.append(Figure(key, title, path, caption))

    if ctx.kind == "main":
        p = plot_cost_quality(_points(ctx, "train_seconds", ctx.metric, label), folder / "cost-quality.png",
                              xlabel="training wall time per concept (s)", ylabel=ylab,
                              title="Cost vs quality per method", maximize_y=ctx.maximize)
        add("cost-quality", "Cost vs quality", p, f"{ci} The black step line is the Pareto front.")
        p = plot_cost_quality(_points(ctx, "params_trainable", ctx.metric, label), folder / "params-quality.png",
                              xlabel="trainable parameters per concept", ylabel=ylab,
                              title="Trainable parameters vs quality", maximize_y=ctx.maximize, log_x=True)
        add("params-quality", "Trainable parameters vs quality", p, ci)
        from e2gan.reporting.curves import curve_figures  # none without recorded curves: the table says so
        for key, title, path, caption in curve_figures(ctx, folder, label):
            add(key, title, path, caption)
    elif ctx.kind == "rate-sweep":
        from e2gan.reporting.curves import curve_figures
        for key, title, path, caption in curve_figures(ctx, folder, label):
            add(key, title, path, caption)
    elif ctx.kind == "ranks":
        p = plot_cost_quality(_points(ctx, "params_trainable", ctx.metric, label), folder / "rank-budget.png",
                              xlabel="trainable parameters (rank budget)", ylabel=ylab,
                              title="Quality vs rank budget per scheme", maximize_y=ctx.maximize)
        add("rank-budget", "Quality vs rank budget", p, f"{ci} The step line is the Pareto front.")
    elif ctx.kind == "layers":
        est = estimates(ctx, ctx.metric)
        p = plot_grouped_bars([label(g) for g in ctx.groups],
                              {TITLES.get(ctx.metric, ctx.metric): [(est[g].mean, est[g].ci95) for g in ctx.groups]},
                              folder / "layers.png", ylabel=ylab, title="Quality per LoRA group")
        add("layers", "Quality per LoRA group", p, ci)
        p = plot_cost_quality(_points(ctx, "params_trainable", ctx.metric, label), folder / "layers-params.png",
                              xlabel="trainable parameters", ylabel=ylab, title="Quality vs parameters per group",
                              maximize_y=ctx.maximize)
        add("layers-params", "Quality vs parameters per group", p, ci)
    elif ctx.kind == "base-model":
        keys = [*ctx.cell_cols, "concept"]
        groups = [(*g, c) for g in ctx.groups for c in ctx.concepts]
        per = estimates(ctx, ctx.metric, keys=keys, groups=groups, concepts=False)
        mean = estimates(ctx, ctx.metric)
        series = {label(g): [(per[(*g, c)].mean, per[(*g, c)].ci95) for c in ctx.concepts]
                  + [(mean[g].mean, mean[g].ci95)] for g in ctx.groups}
        p = plot_grouped_bars([*ctx.concepts, "mean"], series, folder / "base-model.png", ylabel=ylab,
                              title="Quality per concept and base model")
        add("base-model", "Quality per concept and base model", p, ci)
    elif ctx.kind == "data-count" and PAIRS_AXIS in ctx.cell_cols:
        i = ctx.cell_cols.index(PAIRS_AXIS)
        est = estimates(ctx, ctx.metric)
        series: dict[str, list] = {}
        for g in ctx.groups:
            name = " / ".join(str(v) for j, v in enumerate(g) if j != i) or "all"
            try:
                x = float(g[i])
            except (TypeError, ValueError):
                continue
            if x > 0:
                series.setdefault(name, []).append((x, est[g].mean, est[g].ci95))
        p = plot_lines(series, folder / "data-count.png", xlabel="training pairs of the new concept", ylabel=ylab,
                       title="Quality vs training pairs per selection method", log_x=True)
        add("data-count", "Quality vs number of training pairs", p,
            f"{ci} 'All pairs' cells are in the table, not on this axis.")
    elif ctx.kind == "pareto":
        df, _ = pareto_points(ctx)
        pts = [Point(f"t{int(r['trial'])}" if "trial" in df.columns else str(i), r["_x"], r["_y"])
               for i, r in df.iterrows()]
        p = plot_cost_quality(pts, folder / "pareto.png", xlabel="trainable parameters", ylabel=ylab,
                              title="NSGA-II trials and Pareto front", maximize_y=ctx.maximize)
        add("pareto", "Cost vs quality: NSGA-II trials", p, "Each point is one trial (mean over its runs); "
            "circled points form the Pareto front.")
    lat = latency_rows(ctx)
    if lat:
        pts = [Point(r["label"], r["macs"], r["estimate"].mean, float("nan"), r["estimate"].ci95, r["backend"])
               for r in lat if r["macs"]]
        p = plot_latency_macs(pts, folder / "latency-macs.png")
        add("latency-macs", "Latency vs MACs", p, "One marker style per backend; bars: 95% CI over measured runs.")
    return out


# --------------------------------------------------------------------------------------------
# The report.
# --------------------------------------------------------------------------------------------

def _rel(path: Path, base: Path) -> str:
    return path.relative_to(base).as_posix()


def _links(files: dict[str, Path], base: Path) -> str:
    return " · ".join(f"<a href='{html.escape(_rel(p, base), quote=True)}'>{k.upper()}</a>" for k, p in files.items())


def _missing_frame(ctx: StudyContext) -> pd.DataFrame:
    miss = ctx.missing_cells()
    if not miss:
        return pd.DataFrame()
    df = pd.DataFrame(miss)
    return df.rename(columns={"arm": "method"})


def _html_frame(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _md_frame(df: pd.DataFrame) -> str:
    def c(v: Any) -> str:
        return md_escape(v).replace("|", "\\|")

    lines = ["| " + " | ".join(c(x) for x in df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(c(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_study_report(spec: Any, trials_df: pd.DataFrame | None, out_dir: str | Path, *, preset: str | None = None,
                       concepts: Sequence[str] | None = None, results: dict[str, dict] | None = None,
                       grid_images: int = 3, grid_seed: Any = 0, grids: bool = True, device: str = "cpu",
                       extra_tables: Sequence[Any] = ()) -> Path:
    """Write the study's report into ``out_dir`` (``reports/<preset>/<study>``); returns index.html.

    spec: a StudySpec or a dict with name, title, table, metric, seeds, concepts, arms, axes,
    search, n_trials, paper. trials_df: ``studies.summary.trials_frame(study)``. concepts: the
    held-out concept names (default: the spec's ``concept_names(preset)`` when it has one, else
    those in the frame). results: run_dir -> result.json (default: read from each ``run_dir``).
    extra_tables: more ``Table`` objects to show after the study's own (e.g. the greedy rank search).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from e2gan.reporting.claims import comparisons_table, study_comparisons, write_claims
    from e2gan.reporting.noise import noise_table

    ctx = study_context(spec, trials_df, results=results, concepts=list(concepts) if concepts else None,
                        preset=preset)
    comparisons = study_comparisons(ctx, spec)
    write_claims(out_dir, ctx.name, comparisons)  # the index's claims table reads it
    tables = build_tables(ctx) + list(extra_tables)  # extra: tables of work run beside the study (greedy search)
    tables = [t for t in [comparisons_table(ctx, comparisons), *tables, noise_table(ctx)] if t is not None]
    dropped = list(spec_get(spec, "dropped", []) or [])
    table_files = {t.key: t.write(out_dir / "tables") for t in tables}
    figures = build_figures(ctx, out_dir / "figures")
    grid_list = ([concept_grid(ctx, c, out_dir / "grids" / f"{slug(c)}.png", grid_images, grid_seed, device)
                  for c in ctx.concepts] if grids else [])
    trials_out = (trials_df if trials_df is not None else pd.DataFrame())
    atomic_write_text(out_dir / "trials.csv", trials_out.to_csv(index=False))
    summary = best_line(ctx)
    missing = _missing_frame(ctx)
    title = f"{ctx.title or ctx.name} — preset {ctx.preset}"
    spec_info = {k: spec_get(spec, k) for k in ("name", "title", "table", "metric", "concepts", "seeds", "sampler",
                                                  "n_trials", "arms", "axes", "search", "paper", "claims")}
    if spec_get(spec, "path"):
        spec_info["file"] = Path(str(spec_get(spec, "path"))).name  # the file name only: no local folders

    # Markdown
    md = [f"# {md_escape(title)}\n", f"{md_escape(summary)}\n", f"Study `{ctx.name}` ({ctx.kind} table), objective "
          f"{metric_title(ctx.metric)}. Raw trials: [trials.csv](trials.csv).\n"]
    for t in tables:
        files = table_files[t.key]
        md.append(f"## {md_escape(t.title)}\n\n{t.to_markdown()}\n"
                  + " · ".join(f"[{k.upper()}]({_rel(p, out_dir)})" for k, p in files.items()) + "\n")
    if figures:
        md.append("## Figures\n")
        md += [f"### {f.title}\n\n![{f.title}]({_rel(f.path, out_dir)})\n\n{f.caption}\n" for f in figures]
    if grid_list:
        md.append("## Image grids (test split, seed " + str(grid_seed) + ")\n")
        for g in grid_list:
            md.append(f"### {md_escape(g.concept)}\n\nColumns: {md_escape(' | '.join(g.columns))}.\n")
            if g.path:
                md.append(f"![grid]({_rel(g.path, out_dir)})\n")
            md += [f"- {md_escape(n)}\n" for n in g.notes]
    if dropped:
        md.append("## Tried and dropped\n\nResults of earlier versions of this study, kept so that what failed "
                  "stays visible; not produced by the runs above.\n")
        md += [f"- **{md_escape(d.get('what', '?'))}**: {md_escape(d.get('result', ''))} "
               f"(dropped because: {md_escape(d.get('why', '?'))})\n" for d in dropped]
    if not missing.empty or ctx.problems:
        md.append("## Missing runs\n")
        if not missing.empty:
            md.append(f"{len(missing)} expected runs have no complete trial:\n\n{_md_frame(missing)}")
        md += [f"- unreadable result: {md_escape(p)}\n" for p in ctx.problems]
    atomic_write_text(out_dir / "index.md", "\n".join(md))

    # HTML
    sections: list[tuple[str, str]] = [
        ("Summary", EXTRA_STYLE + paragraph(summary) + paragraph(
            f"Study '{ctx.name}' ({ctx.kind} table); objective {metric_title(ctx.metric)}; seeds "
            f"{', '.join(map(str, ctx.seeds))}; held-out concepts {', '.join(ctx.concepts)}.")
         + "<p>Raw trials: <a href='trials.csv'>trials.csv</a> · Markdown version: "
           "<a href='index.md'>index.md</a></p>"),
    ]
    for t in tables:
        sections.append((t.title, t.to_html() + f"<p>{_links(table_files[t.key], out_dir)}</p>"))
    if figures:
        body = "<a id='figures'></a>" + "".join(f"<figure><img alt='{html.escape(f.title, quote=True)}' src='{image_data_uri(f.path)}'>"
                       f"<figcaption>{html.escape(f.title)}: {html.escape(f.caption)} "
                       f"<a href='{html.escape(_rel(f.path, out_dir), quote=True)}'>PNG</a></figcaption></figure>"
                       for f in figures)
        sections.append(("Figures", body))
    if grid_list:
        body = "<a id='grids'></a>"
        for g in grid_list:
            body += f"<h3>{html.escape(g.concept)}</h3>" + paragraph("Columns: " + " | ".join(g.columns) + ".")
            if g.path:
                body += (f"<img alt='{html.escape(g.concept, quote=True)}' src='{image_data_uri(g.path)}'> "
                         f"<a href='{html.escape(_rel(g.path, out_dir), quote=True)}'>PNG</a>")
            body += "".join(paragraph(n, "protocol") for n in g.notes)
        sections.append((f"Image grids (test split, seed {grid_seed})", body))
    if dropped:
        sections.append(("Tried and dropped", paragraph(
            "Results of earlier versions of this study, kept so that what failed stays visible; not produced by "
            "the runs above.") + "<ul>" + "".join(
            f"<li><b>{html.escape(str(d.get('what', '?')))}</b>: {html.escape(str(d.get('result', '')))} "
            f"(dropped because: {html.escape(str(d.get('why', '?')))})</li>" for d in dropped) + "</ul>"))
    if not missing.empty or ctx.problems:
        body = ""
        if not missing.empty:
            body += paragraph(f"{len(missing)} expected runs have no complete trial:") + _html_frame(missing)
        body += "".join(paragraph(f"unreadable result: {p}") for p in ctx.problems)
        sections.append(("Missing runs", body))
    sections.append(("Study spec", f"<pre>{html.escape(json.dumps(spec_info, indent=1, default=str))}</pre>"))
    return atomic_write_text(out_dir / "index.html", page(title, sections))


def summary_line(spec: Any, trials_df: pd.DataFrame | None, *, preset: str | None = None,
                 concepts: Sequence[str] | None = None, results: dict[str, dict] | None = None) -> str:
    """The study's one-line summary for the top-level index (best row on the objective, completeness)."""
    return best_line(study_context(spec, trials_df, results=results, concepts=list(concepts) if concepts else None,
                                   preset=preset))


def best_line(ctx: StudyContext) -> str:
    """A one-line summary of the study: the best row on its objective, and how complete it is."""
    name = TITLES.get(ctx.metric, ctx.metric)
    if ctx.frame.empty:
        return f"No complete trials yet (0 of {ctx.expected_cells()})."
    if ctx.sampler != "grid":
        df, front = pareto_points(ctx)
        if df.empty:
            return "No complete trials yet."
        pick = df.loc[df["_y"].idxmax() if ctx.maximize else df["_y"].idxmin()]
        return (f"{len(df)} of {ctx.n_trials or '?'} trials, {len(front)} on the Pareto front; best {name} "
                f"{format_number(pick['_y'], DECIMALS.get(ctx.metric, 3))} at "
                f"{format_number(pick['_x'], 0)} trainable params.")
    est = estimates(ctx, ctx.metric)
    ok = {g: e for g, e in est.items() if e.n}
    done = ctx.expected_cells() - len(ctx.missing_cells())
    tail = f"{done} of {ctx.expected_cells()} runs complete."
    if not ok:
        return f"No row has every concept finished for any seed; {tail}"
    best = (max if ctx.maximize else min)(ok, key=lambda g: ok[g].mean)
    return f"Best {name}: {ctx.group_label(best)} {ok[best].text(DECIMALS.get(ctx.metric, 3))}; {tail}"


# The preset's index page lives in index_page; imported here for the CLI's existing import path.
from e2gan.reporting.index_page import write_index  # noqa: E402,F401
