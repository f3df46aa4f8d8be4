"""The study tables, one builder per paper table, from a trials frame and the runs' result.json files.

Inputs are plain: a trials DataFrame (one row per complete trial: the cell columns ``arm``, axis
keys such as ``adapt.train_pairs``, ``concept`` and ``seed``, plus ``run_dir`` and the metrics),
a spec-like object or dict (name, title, table, metric, seeds, concepts, arms, axes, search,
n_trials, paper) and the result.json files read with :func:`e2gan.results.read_result`.

Every quality or cost cell is the metric averaged over the held-out concepts per seed, then
mean ± 95% CI (Student t) over seeds, with N; missing seeds are named in the cell. Every table
states its protocol, and shows the paper's number beside ours where the spec's ``[paper]`` has
one, in columns or rows marked as the paper's.
"""
from __future__ import annotations

import html
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd

from e2gan.markdown_table import label_value
from e2gan.reporting.stats import Estimate, estimate, format_number, over_seeds, pareto_front

QUALITY = [  # (result key, column title, decimals)
    ("fid", "FID", 2), ("kid_mean", "KID", 4), ("perceptual", "perceptual", 4), ("psnr", "PSNR dB", 2),
    ("ssim", "SSIM", 3),
]
MAXIMIZE = {"psnr", "ssim", "identity_psnr", "gain_db"}
TITLES = {k: t for k, t, _ in QUALITY} | {"identity_psnr": "identity PSNR dB", "gain_db": "PSNR gain dB"}
DECIMALS = {k: d for k, _, d in QUALITY} | {"identity_psnr": 2, "gain_db": 2}
COST = [  # (trials column, column title, decimals)
    ("train_seconds", "wall time s", 1), ("train_flops", "training FLOPs", 0),
    ("params_trainable", "trainable params", 0), ("bytes_stored", "bytes per concept", 0),
]
COST_SHORT = {"train_seconds": "time", "train_flops": "FLOPs", "params_trainable": "params", "bytes_stored": "bytes"}
PAPER_DATASETS = {"fid_scenery": "Flickr-Scenery", "fid_ffhq": "FFHQ"}
PAPER_COST_KEYS = {"seconds": "train_seconds", "train_seconds": "train_seconds", "train_flops": "train_flops",
                   "params_trainable": "params_trainable", "bytes_stored": "bytes_stored"}
# The paper's base-model table lists, per concept: ours / 20 random / 200 art concepts / single concept.
BASE_PAPER_COLUMNS = [("representative", "representative base"), ("random-half", "20 random concepts"),
                      (None, "200 art concepts"), ("single", "single concept")]
PAPER_NOTE = ("Columns and rows marked 'paper' hold the paper's numbers (256², FFHQ / Flickr-Scenery, "
              "Stable-Diffusion teacher, its own FID protocol); ours come from this preset's data and "
              "teacher, so compare rankings and ratios, not absolute values.")
AGG_NOTE = ("Each cell: the metric averaged over the held-out concepts per seed, then mean ± 95% CI "
            "(Student t, N-1 degrees of freedom) over seeds, with N. A seed where only some concepts "
            "finished is named as partial and not counted; missing seeds are named.")


def direction_word(metric: str) -> str:
    return "↑" if metric in MAXIMIZE else "↓"


def metric_title(metric: str) -> str:
    return f"{TITLES.get(metric, metric)} {direction_word(metric)}"


# --------------------------------------------------------------------------------------------
# A table: what it shows (strings), what it holds (numbers, for CSV) and what it states (notes).
# --------------------------------------------------------------------------------------------

@dataclass
class Table:
    key: str                  # file stem: tables/<key>.md|.csv|.tex
    title: str
    display: pd.DataFrame     # strings, as shown in Markdown / HTML / LaTeX
    data: pd.DataFrame        # numbers (mean, ci95, n, missing per column), as written to CSV
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.display.empty:
            self.display = self.display.astype(object).where(self.display.notna(), "–")

    def to_markdown(self) -> str:
        def cell(v: Any) -> str:
            return md_escape(v).replace("|", "\\|").replace("\n", " ")

        df = self.display
        head = [df.index.name or "", *map(str, df.columns)]
        lines = ["| " + " | ".join(cell(h) for h in head) + " |",
                 "|" + "|".join(["---"] + ["---:"] * len(df.columns)) + "|"]
        for idx, row in df.iterrows():
            lines.append("| " + " | ".join([cell(idx), *(cell(v) for v in row.tolist())]) + " |")
        notes = "".join(f"\n{md_escape(n)}\n" for n in self.notes)
        return "\n".join(lines) + "\n" + notes

    def to_html(self) -> str:
        df = self.display
        paper_cols = [str(c).startswith("paper") for c in df.columns]
        head = f"<th>{html.escape(str(df.index.name or ''))}</th>" + "".join(
            f"<th{' class=paper' if p else ''}>{html.escape(str(h))}</th>" for h, p in zip(df.columns, paper_cols))
        rows = []
        for idx, row in df.iterrows():
            paper_row = str(idx).startswith("paper") or "(paper only)" in str(idx)
            cells = [f"<td>{html.escape(str(idx))}</td>"]
            for v, p in zip(row.tolist(), paper_cols):
                text = str(v)
                cls = ("missing" if text.startswith("missing") or re.search(r"N=\d+/\d+", text)
                       else "paper" if p or paper_row or text.endswith("(paper)") else "")
                cells.append(f"<td{' class=' + cls if cls else ''}>{html.escape(text)}</td>")
            rows.append(f"<tr{' class=paper' if paper_row else ''}>" + "".join(cells) + "</tr>")
        notes = "".join(f"<p class='protocol'>{html.escape(n)}</p>" for n in self.notes)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>\n{notes}"

    def to_latex(self) -> str:
        body = self.display.to_latex(escape=True, caption=_latex_escape(self.title), label=f"tab:{self.key}")
        for a, b in (("±", r"$\pm$"), ("²", r"$^2$"), ("×", r"$\times$"), ("÷", r"$\div$"), ("↑", r"$\uparrow$"),
                     ("↓", r"$\downarrow$"), ("–", "--"), ("✓", r"$\checkmark$")):
            body = body.replace(a, b)
        return body

    def write(self, folder: str | Path) -> dict[str, Path]:
        from e2gan.io import atomic_write_text

        folder = Path(folder)
        out = {"md": folder / f"{self.key}.md", "csv": folder / f"{self.key}.csv", "tex": folder / f"{self.key}.tex"}
        atomic_write_text(out["md"], f"### {self.title}\n\n" + self.to_markdown())
        atomic_write_text(out["csv"], self.data.to_csv())
        atomic_write_text(out["tex"], self.to_latex())
        return out


def md_escape(text: Any) -> str:
    """User text for Markdown: '<' and '>' as entities, so no renderer turns a name into markup."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                 ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"), ("^", r"\^{}")):
        text = text.replace(a, b)
    return text


# --------------------------------------------------------------------------------------------
# The study context: spec fields, the normalised frame, the results, the expected cells.
# --------------------------------------------------------------------------------------------

def spec_get(spec: Any, key: str, default: Any = None) -> Any:
    if isinstance(spec, dict):
        return spec.get(key, default)
    return getattr(spec, key, default)


@dataclass
class StudyContext:
    name: str
    title: str
    kind: str
    metric: str
    preset: str
    seeds: list
    concepts: list[str]
    cell_cols: list[str]              # arm / axis columns that name a row
    groups: list[tuple]               # expected rows (normalised values of cell_cols)
    frame: pd.DataFrame               # trials, cell columns normalised to labels
    results: dict[str, dict]          # run_dir -> result.json
    problems: list[str]               # result.json files that could not be read
    paper: dict
    sampler: str = "grid"
    n_trials: int = 0
    search: dict = field(default_factory=dict)

    @property
    def maximize(self) -> bool:
        return self.metric in MAXIMIZE

    def group_label(self, g: tuple) -> str:
        return " / ".join(map(str, g)) if g else "all"

    def group_rows(self, g: tuple) -> pd.DataFrame:
        df = self.frame
        for col, v in zip(self.cell_cols, g):
            df = df[df[col] == v]
        return df

    def run_results(self, rows: pd.DataFrame | None = None) -> list[dict]:
        rows = self.frame if rows is None else rows
        out = []
        for rd in run_dirs(rows):
            if rd in self.results:
                out.append(self.results[rd])
        return out

    def missing_cells(self) -> list[dict]:
        """Every expected (cell, concept, seed) with no complete trial."""
        if self.sampler != "grid":
            return []
        done = set()
        cols = [*self.cell_cols, "concept", "seed"]
        if not self.frame.empty and all(c in self.frame.columns for c in cols):
            done = {tuple(r) for r in self.frame[cols].itertuples(index=False)}
        out = []
        for g in self.groups:
            for c in self.concepts:
                for s in self.seeds:
                    if (*g, c, s) not in done:
                        out.append({**dict(zip(self.cell_cols, g)), "concept": c, "seed": s})
        return out

    def expected_cells(self) -> int:
        return len(self.groups) * len(self.concepts) * len(self.seeds) if self.sampler == "grid" else int(self.n_trials)


def run_dirs(rows: pd.DataFrame) -> list[str]:
    out: list[str] = []
    if "run_dir" in rows.columns:
        out += [str(r) for r in rows["run_dir"].tolist() if isinstance(r, (str, Path)) and str(r)]
    if "runs" in rows.columns:
        for runs in rows["runs"].tolist():
            if isinstance(runs, (list, tuple)):
                out += [str(r) for r in runs]
    return list(dict.fromkeys(out))


def load_results(trials: pd.DataFrame) -> tuple[dict[str, dict], list[str]]:
    """result.json of every run named by the frame (``run_dir`` and ``runs``); unreadable ones listed."""
    from e2gan.errors import InputError
    from e2gan.results import read_result

    results, problems = {}, []
    for rd in run_dirs(trials):
        try:
            results[rd] = read_result(rd)
        except InputError as exc:
            problems.append(f"{rd}: {exc}")
        except OSError as exc:
            problems.append(f"{rd}: {exc}")
    return results, problems


def study_context(spec: Any, trials: pd.DataFrame | None, results: dict[str, dict] | None = None,
                  concepts: list[str] | None = None, preset: str | None = None) -> StudyContext:
    trials = pd.DataFrame() if trials is None else trials
    problems: list[str] = []
    if results is None:
        results, problems = load_results(trials)
    arms = list(spec_get(spec, "arms", {}) or {})
    axes = dict(spec_get(spec, "axes", {}) or {})
    search = dict(spec_get(spec, "search", {}) or {})
    sampler = spec_get(spec, "sampler", "grid") or "grid"
    frame = trials.copy()
    cell_cols: list[str] = []
    if arms or ("arm" in frame.columns and set(frame["arm"].dropna().map(str)) - {"default"}):
        cell_cols.append("arm")
    cell_cols += [a for a in axes]
    if sampler != "grid":
        cell_cols = []
    for col in cell_cols:
        if col not in frame.columns:
            frame[col] = "default" if col == "arm" else None
        frame[col] = frame[col].map(label_value)
    arm_values = arms or (["default"] if "arm" in cell_cols else [])
    value_lists = ([arm_values] if "arm" in cell_cols else []) + [[label_value(v) for v in axes[a]] for a in axes]
    groups = [tuple(p) for p in itertools.product(*value_lists)] if cell_cols else []
    for g in (frame[cell_cols].drop_duplicates().itertuples(index=False) if cell_cols and not frame.empty else []):
        if tuple(g) not in groups:
            groups.append(tuple(g))
    if concepts is None:
        concept_names = spec_get(spec, "concept_names")
        if callable(concept_names):
            try:
                concepts = list(concept_names(preset) if preset else concept_names())
            except Exception:  # a spec whose concept file is not here: fall back to the frame
                concepts = None
    if concepts is None:
        listed = [str(c) for c in (spec_get(spec, "concepts", []) or [])]
        seen = [str(c) for c in frame["concept"].dropna().unique().tolist()] if "concept" in frame.columns else []
        concepts = list(dict.fromkeys([c for c in listed if c in seen] + seen)) or listed
    seeds = list(spec_get(spec, "seeds", [0]) or [0])
    if "seed" in frame.columns:
        seeds += [s for s in frame["seed"].dropna().unique().tolist() if s not in seeds]
    for col in ("psnr", "identity_psnr"):
        if col not in frame.columns:
            frame[col] = float("nan")
    frame["gain_db"] = pd.to_numeric(frame["psnr"], errors="coerce") - pd.to_numeric(frame["identity_psnr"], errors="coerce")
    _fill_from_results(frame, results)
    preset = preset or _first_preset(results) or spec_get(spec, "preset") or "?"  # the runs' own preset first
    return StudyContext(name=str(spec_get(spec, "name", "study")), title=str(spec_get(spec, "title", "") or ""),
                        kind=str(spec_get(spec, "table", "main")), metric=str(spec_get(spec, "metric", "fid")),
                        preset=str(preset), seeds=seeds, concepts=[str(c) for c in concepts], cell_cols=cell_cols,
                        groups=groups, frame=frame, results=results, problems=problems,
                        paper=dict(spec_get(spec, "paper", {}) or {}), sampler=sampler,
                        n_trials=int(spec_get(spec, "n_trials", 0) or 0), search=search)


def _first_preset(results: dict[str, dict]) -> str | None:
    for r in results.values():
        p = r.get("protocol", {}).get("preset") or r.get("config", {}).get("preset")
        if p:
            return str(p)
    return None


def _fill_from_results(frame: pd.DataFrame, results: dict[str, dict]) -> None:
    """Columns a trials frame may lack (kid_mean, cost) taken from each run's result.json."""
    if frame.empty or "run_dir" not in frame.columns:
        return
    wanted = [k for k, _, _ in QUALITY] + [k for k, _, _ in COST]
    for key in wanted:
        if key not in frame.columns:
            frame[key] = float("nan")
        vals = []
        for rd, cur in zip(frame["run_dir"].tolist(), frame[key].tolist()):
            v = cur
            if (v is None or (isinstance(v, float) and math.isnan(v))) and str(rd) in results:
                r = results[str(rd)]
                v = r.get("metrics", {}).get("mean_over_concepts", {}).get(key, r.get("cost", {}).get(key))
            vals.append(float("nan") if v is None else v)
        frame[key] = pd.to_numeric(pd.Series(vals, index=frame.index), errors="coerce")


# --------------------------------------------------------------------------------------------
# Protocol statement.
# --------------------------------------------------------------------------------------------

def _distinct(values: Iterable) -> str:
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

    def backbone(p: dict) -> str:
        b = p.get("backbone")
        return str(b.get("name", b)) if isinstance(b, dict) else str(b) if b else ""

    n_per = []
    for r, p in zip(results, protos):
        per = p.get("n_per_concept") or {c: m.get("n") for c, m in r.get("metrics", {}).get("per_concept", {}).items()}
        n_per += [v for v in per.values() if v is not None]
    res = _distinct(p.get("resolution") for p in protos)
    return (f"{head}; FID/KID backbone {_distinct(backbone(p) for p in protos)} "
            f"({_distinct(p.get('fid_mode', 'clean') for p in protos)} mode); perceptual "
            f"{_distinct(p.get('perceptual') for p in protos)}; reference set "
            f"{_distinct(p.get('reference_set') for p in protos)}; N = {_distinct(n_per)} test images per concept; "
            f"resolution {res}{'²' if res.isdigit() else ''}; checkpoint {_distinct(p.get('checkpoint') for p in protos)}; "
            f"device {_distinct(r.get('env', {}).get('device') for r in results)}; {len(results)} runs.")


def _table_notes(ctx: StudyContext, rows: pd.DataFrame | None = None, extra: Iterable[str] = ()) -> list[str]:
    notes = [protocol_text(ctx.run_results(rows), ctx.preset, ctx.seeds, ctx.concepts)]
    notes += [n for n in extra if n]
    return notes


# --------------------------------------------------------------------------------------------
# Builders.
# --------------------------------------------------------------------------------------------

def _estimates(ctx: StudyContext, value: str, keys: list[str] | None = None, groups: list[tuple] | None = None,
               concepts: list[str] | None | bool = True) -> dict[tuple, Estimate]:
    keys = ctx.cell_cols if keys is None else keys
    groups = ctx.groups if groups is None else groups
    cons = ctx.concepts if concepts is True else (None if concepts is False else concepts)
    return over_seeds(ctx.frame, keys, value, seeds=ctx.seeds, concepts=cons, groups=groups)


def _index(ctx: StudyContext, name: str | None = None) -> str:
    return name or (" / ".join("method" if c == "arm" else c for c in ctx.cell_cols) or "cell")


def _paper_entry(ctx: StudyContext, label: str) -> dict | None:
    v = ctx.paper.get(label)
    return v if isinstance(v, dict) else None


def main_quality_table(ctx: StudyContext) -> Table:
    """The paper's main table: FID, KID, perceptual distance and PSNR per method, over concepts."""
    metrics = [k for k, _, _ in QUALITY]
    est = {k: _estimates(ctx, k) for k in metrics}
    paper_keys = list(dict.fromkeys(k for v in ctx.paper.values() if isinstance(v, dict) for k in v
                                    if k.startswith("fid")))
    disp, data = {}, {}
    for g in ctx.groups:
        label = ctx.group_label(g)
        disp[label] = {metric_title(k): est[k][g].text(DECIMALS[k]) for k in metrics}
        data[label] = {kk: vv for k in metrics for kk, vv in est[k][g].record(k).items()}
        entry = _paper_entry(ctx, label) or {}
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
    return Table("quality", "Quality per method (mean over held-out concepts)", _frame(disp, _index(ctx)),
                 _frame(data, _index(ctx)), _table_notes(ctx, extra=notes))


def _paper_col(key: str) -> str:
    ds = PAPER_DATASETS.get(key)
    return f"paper FID ({ds})" if ds else f"paper {key}"


def per_concept_table(ctx: StudyContext) -> Table:
    """The objective and PSNR per method and concept (each concept over seeds)."""
    keys = [*ctx.cell_cols, "concept"]
    groups = [(*g, c) for g in ctx.groups for c in ctx.concepts]
    cols = list(dict.fromkeys([ctx.metric, "psnr", "gain_db"]))
    est = {k: _estimates(ctx, k, keys=keys, groups=groups, concepts=False) for k in cols}
    disp, data = {}, {}
    for g in groups:
        label = ctx.group_label(g)
        disp[label] = {metric_title(k): est[k][g].text(DECIMALS.get(k, 3)) for k in cols}
        data[label] = {kk: vv for k in cols for kk, vv in est[k][g].record(k).items()}
    note = ("Per concept: mean ± 95% CI over seeds, with N. 'PSNR gain' is the PSNR over the identity "
            "baseline (the unedited source against the teacher's target).")
    return Table("per-concept", "Per held-out concept", _frame(disp, _index(ctx) + " / concept"),
                 _frame(data, _index(ctx) + " / concept"), _table_notes(ctx, extra=[note]))


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
    est = {k: _estimates(ctx, k) for k, _, _ in COST}
    ref = reference_group(ctx)
    paper_keys = list(dict.fromkeys(k for v in ctx.paper.values() if isinstance(v, dict) for k in v
                                    if k in PAPER_COST_KEYS))
    ref_label = ctx.group_label(ref) if ref else None
    paper_ref = _paper_entry(ctx, ref_label) if ref_label else _paper_entry(ctx, "pix2pix")
    disp, data = {}, {}
    ratio_col = "pix2pix ÷ this (" + " / ".join(COST_SHORT[k] for k, _, _ in COST) + ")"
    for g in ctx.groups:
        label = ctx.group_label(g)
        row, rec = {}, {}
        for k, title, d in COST:
            row[title] = est[k][g].text(d)
            rec.update(est[k][g].record(k))
        ratios = [_ratio(est[k][ref].mean, est[k][g].mean) if ref else float("nan") for k, _, _ in COST]
        row[ratio_col] = " / ".join(_ratio_text(r) for r in ratios)
        rec.update({f"pix2pix/this {k}": r for (k, _, _), r in zip(COST, ratios)})
        entry = _paper_entry(ctx, label) or {}
        for pk in paper_keys:
            row[f"paper {pk}"] = paper_number(entry.get(pk)) if pk in entry else "–"
            rec[f"paper {pk}"] = entry.get(pk)
            if paper_ref and pk in paper_ref:
                r = _ratio(paper_ref.get(pk), entry.get(pk)) if pk in entry else float("nan")
                row[f"paper pix2pix ÷ this ({pk})"] = _ratio_text(r)
                rec[f"paper pix2pix/this {pk}"] = r
        disp[label], data[label] = row, rec
    notes = [AGG_NOTE, "Wall time excludes evaluation; FLOPs are counted G+D forward and backward per step "
             "(torch.utils.flop_counter) times steps; trainable params and bytes are what one concept adds "
             "and stores. 'pix2pix ÷ this' is the ratio of means: above 1 means cheaper than pix2pix."]
    if ref is None:
        notes.append("No pix2pix arm in this study: ratios are not shown.")
    if paper_keys:
        notes.append(PAPER_NOTE + " The paper does not state the GPU behind its training times.")
    return Table("cost", "Training cost per concept", _frame(disp, _index(ctx)), _frame(data, _index(ctx)),
                 _table_notes(ctx, extra=notes))


def _ratio(a: Any, b: Any) -> float:
    try:
        a, b = float(a), float(b)
    except (TypeError, ValueError):
        return float("nan")
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return float("nan")
    return a / b


def paper_number(v: Any) -> str:
    """A number from the spec's [paper] table, as the paper printed it (no re-rounding)."""
    if v is None:
        return "–"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def _ratio_text(r: float) -> str:
    if not math.isfinite(r):
        return "–"
    return f"{r:.3g}×"


def base_model_table(ctx: StudyContext) -> Table:
    """The paper's base-model ablation: the objective per concept (rows) and base model (columns)."""
    arms = [g for g in ctx.groups]
    keys = [*ctx.cell_cols, "concept"]
    per = _estimates(ctx, ctx.metric, keys=keys, groups=[(*g, c) for g in arms for c in ctx.concepts], concepts=False)
    mean = _estimates(ctx, ctx.metric)
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
        notes.append(_no_paper_note(ctx))
    return Table("base-model", f"Base-model ablation: {metric_title(ctx.metric)} per concept and base",
                 _frame(disp, "concept"), _frame(data, "concept"), _table_notes(ctx, extra=notes))


def _no_paper_note(ctx: StudyContext) -> str:
    if ctx.paper:
        return "The paper's numbers in this spec: " + "; ".join(f"{k} = {v}" for k, v in ctx.paper.items()) + " (paper)."
    return "The paper has no retrievable numbers for this table."


def layers_table(ctx: StudyContext) -> Table:
    """Crucial layers: quality per LoRA group, trainable params and quality gained per parameter."""
    cols = list(dict.fromkeys([ctx.metric, "psnr", "gain_db"]))
    est = {k: _estimates(ctx, k) for k in cols}
    params = _estimates(ctx, "params_trainable")
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
    index = "LoRA groups" if ctx.cell_cols == ["adapt.groups"] else _index(ctx)
    notes = [AGG_NOTE, "PSNR gain: over the identity baseline (source vs target). 'Gain per 1k params' divides "
             "the mean gain by the mean trainable parameters of the row (LoRA factors plus the concept's "
             "embedding row).", _no_paper_note(ctx)]
    return Table("layers", "Crucial layers: LoRA on one group at a time", _frame(disp, index), _frame(data, index),
                 _table_notes(ctx, extra=notes))


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
    est = {k: _estimates(ctx, k) for k in cols}
    params = _estimates(ctx, "params_trainable")
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
                 if ctx.paper else _no_paper_note(ctx))
    return Table("ranks", "Rank allocation: quality vs trainable parameters", _frame(disp, "scheme"),
                 _frame(data, "scheme"), _table_notes(ctx, extra=notes))


def greedy_search_table(search: dict) -> Table:
    """The greedy rank search (``search.json`` written by ``studies.rank_search``) as a report table:
    the searched allocation beside uniform 1x, uniform 4x and random at the searched budget."""
    proto, rows = search.get("protocol", {}), search.get("table", [])
    metric = proto.get("metric", "fid")
    title = metric_title(metric)
    disp, data = {}, {}
    for r in rows:
        quality = next((v for k, v in r.items() if k not in ("scheme", "ranks", "LoRA params", "seeds", "paper FID (Flickr-Scenery)",
                                                               "paper params (M)") and not k.endswith("sd over seeds")), None)
        sd = next((v for k, v in r.items() if k.endswith("sd over seeds")), None)
        paper_params = r.get("paper params (M)")
        disp[r["scheme"]] = {"ranks": r.get("ranks", "–"), title: format_number(quality, 3)
                             + (f" (sd {format_number(sd, 3)})" if sd is not None else ""),
                             "LoRA params": format_number(r.get("LoRA params"), 0), "seeds": r.get("seeds", "–"),
                             "paper FID": paper_number(r.get("paper FID (Flickr-Scenery)")),
                             "paper params": format_number(paper_params * 1e6, 0) if paper_params is not None else "–"}
        data[r["scheme"]] = {"ranks": r.get("ranks"), metric: quality, f"{metric}_sd": sd,
                             "lora_params": r.get("LoRA params"), "seeds": r.get("seeds"),
                             "paper_fid": r.get("paper FID (Flickr-Scenery)"), "paper_params_m": paper_params}
    rounds = len((search.get("search") or {}).get("rounds", []))
    notes = [f"Greedy search on {', '.join(proto.get('concepts', []))}: every group of "
             f"{', '.join(proto.get('groups', []))} starts at rank {proto.get('start_rank', 1)}; each round doubles "
             f"the group whose doubling buys the most {title} per added LoRA parameter (a gain of at least {proto.get('delta')}); "
             f"{rounds} round(s), stopped by {(search.get('search') or {}).get('stop_reason', '?')}; "
             f"{proto.get('steps')} steps per allocation; seeds {proto.get('seeds')}; "
             f"{proto.get('evaluations', '?')} allocations trained. LoRA params exclude the concept embedding.",
             PAPER_NOTE + " The paper's rank table is Flickr-Scenery FID, mean over 10 concepts."]
    return Table("greedy-rank-search", "Greedy rank search: searched allocation vs references", _frame(disp, "scheme"),
                 _frame(data, "scheme"), notes)


PAIRS_AXIS, SELECTION_AXIS = "adapt.train_pairs", "adapt.selection"


def data_count_table(ctx: StudyContext) -> Table:
    """Data count: quality vs number of training pairs (rows) per selection method (columns)."""
    if PAIRS_AXIS not in ctx.cell_cols:
        t = main_quality_table(ctx)
        t.key, t.title = "data-count", "Data count (no adapt.train_pairs axis: shown per cell)"
        return t
    i = ctx.cell_cols.index(PAIRS_AXIS)
    cols = list(dict.fromkeys([ctx.metric, "psnr"]))
    est = {k: _estimates(ctx, k) for k in cols}
    pairs = list(dict.fromkeys(g[i] for g in ctx.groups))
    pairs.sort(key=lambda v: (float(v) if _is_num(v) and float(v) > 0 else math.inf))  # 0 = all pairs: last
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
             "subset was chosen (random, or the samples nearest k-means centres).", _no_paper_note(ctx)]
    return Table("data-count", "Data count: quality vs training pairs per selection method",
                 _frame(disp, "training pairs"), _frame(data, "training pairs"), _table_notes(ctx, extra=notes))


def _is_num(v: Any) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


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
        label = f"trial {int(r['trial'])}" if "trial" in df.columns and _is_num(r.get("trial")) else f"#{pos}"
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
             f"{TITLES.get(ctx.metric, ctx.metric)} and trainable parameters.", _no_paper_note(ctx)]
    return Table("pareto", "Rank search (NSGA-II): trials and Pareto front", _frame(disp, "trial"),
                 _frame(data, "trial"), _table_notes(ctx, extra=notes))


def latency_rows(ctx: StudyContext) -> list[dict]:
    """One row per (cell, backend): latencies recorded in the cell's runs (result['latency'])."""
    out = []
    groups = ctx.groups or [()]
    for g in groups:
        rows = ctx.group_rows(g) if g else ctx.frame
        per_backend: dict[str, list[dict]] = {}
        for r in ctx.run_results(rows):
            for backend, rec in (r.get("latency") or {}).items():
                # Rows are kept per protocol tag; the bare backend key repeats the latest of them.
                if isinstance(rec, dict) and (not rec.get("protocol_tag") or backend == rec["protocol_tag"]):
                    per_backend.setdefault(str(backend), []).append(rec)
        for backend, recs in per_backend.items():
            ms = [_latency_ms(x) for x in recs]
            out.append({"group": g, "label": ctx.group_label(g), "backend": backend, "estimate": estimate(ms),
                        "p10": min((x.get("p10_ms") for x in recs if x.get("p10_ms") is not None), default=None),
                        "p90": max((x.get("p90_ms") for x in recs if x.get("p90_ms") is not None), default=None),
                        "macs": next((x.get("macs") for x in recs if x.get("macs")), None),
                        "threads": _distinct(x.get("threads", x.get("protocol", {}).get("threads")) for x in recs),
                        "device": _distinct(_device_name(x, backend) for x in recs)})
    return out


def _latency_ms(rec: dict) -> float | None:
    for k in ("latency_ms", "median_ms", "mean_ms"):
        if rec.get(k) is not None:
            return rec[k]
    return None


def _device_name(rec: dict, backend: str) -> str:
    dev = rec.get("device")
    if isinstance(dev, dict):
        return " ".join(str(dev[k]) for k in ("manufacturer", "model", "soc") if dev.get(k)) or "phone"
    if dev:
        return str(dev)
    return "host" if rec.get("backend", backend) in ("torch", "litert") else "phone"


def latency_table(ctx: StudyContext) -> Table:
    """The paper's latency column: host (torch, LiteRT) and phone (adb) per method, with MACs."""
    disp, data = {}, {}
    for row in latency_rows(ctx):
        label = f"{row['label']} / {row['backend']}"
        e: Estimate = row["estimate"]
        paper = _paper_entry(ctx, row["label"]) or {}
        paper_ms = paper.get("phone_ms", paper.get("latency_ms"))  # the paper measured on a phone only
        disp[label] = {"latency ms (mean of runs)": e.text(2),
                       "p10–p90 ms": (f"{format_number(row['p10'], 2)}–{format_number(row['p90'], 2)}"
                                      if row["p10"] is not None else "–"),
                       "MACs": format_number(row["macs"], 0), "threads": row["threads"], "device": row["device"],
                       "paper phone ms": paper_number(paper_ms)}
        data[label] = {**e.record("latency_ms"), "p10_ms": row["p10"], "p90_ms": row["p90"], "macs": row["macs"],
                       "threads": row["threads"], "device": row["device"], "paper_phone_ms": paper_ms}
    notes = ["Host: median of timed calls after warm-up (torch eager or the LiteRT interpreter); phone: "
             "benchmark_model's average over its runs. Cells: mean ± 95% CI over the measured runs (N = runs). "
             "MACs per image from torch.utils.flop_counter (transposed convs at input resolution)."]
    if not disp:
        notes.insert(0, "No run of this study has a latency record yet: measure the runs (torch / LiteRT on the "
                        "host, or a phone over adb) and rebuild the report.")
    if any(isinstance(v, dict) and "phone_ms" in v for v in ctx.paper.values()):
        notes.append("'paper phone ms': the paper's on-phone latency (iPhone 14; runtime not stated), from the "
                     "spec's [paper] table.")
    empty_cols = ["latency ms (mean of runs)", "p10–p90 ms", "MACs", "threads", "device", "paper phone ms"]
    display = _frame(disp, _index(ctx) + " / backend") if disp else pd.DataFrame(columns=empty_cols).rename_axis(_index(ctx) + " / backend")
    return Table("latency", "Latency and MACs", display, _frame(data, _index(ctx) + " / backend"),
                 _table_notes(ctx, extra=notes))


def _frame(rows: dict[str, dict], index_name: str) -> pd.DataFrame:
    df = pd.DataFrame.from_dict(rows, orient="index") if rows else pd.DataFrame()
    df.index.name = index_name
    return df


BUILDERS: dict[str, list[Callable[[StudyContext], Table]]] = {
    "main": [main_quality_table, per_concept_table, training_cost_table, latency_table],
    "base-model": [base_model_table, per_concept_table],
    "layers": [layers_table, per_concept_table],
    "ranks": [ranks_table, per_concept_table],
    "data-count": [data_count_table],
    "pareto": [pareto_table],
}


def build_tables(ctx: StudyContext) -> list[Table]:
    """Every table of the study's kind; a latency table wherever a run has a latency record."""
    builders = list(BUILDERS.get(ctx.kind, [main_quality_table, per_concept_table]))
    if latency_table not in builders and latency_rows(ctx):
        builders.append(latency_table)
    return [b(ctx) for b in builders]


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
    est = _estimates(ctx, ctx.metric)
    ok = {g: e for g, e in est.items() if e.n}
    done = ctx.expected_cells() - len(ctx.missing_cells())
    tail = f"{done} of {ctx.expected_cells()} runs complete."
    if not ok:
        return f"No row has every concept finished for any seed; {tail}"
    best = (max if ctx.maximize else min)(ok, key=lambda g: ok[g].mean)
    return f"Best {name}: {ctx.group_label(best)} {ok[best].text(DECIMALS.get(ctx.metric, 3))}; {tail}"
