"""A study as the tables see it, read from stored results only: the spec's fields, the trials frame
with its cell columns as labels, each run's result.json, and the cells the grid expects.

Inputs are plain: a trials DataFrame (one row per complete trial: the cell columns ``arm``, axis
keys such as ``adapt.train_pairs``, ``concept`` and ``seed``, plus ``run_dir`` and the metrics),
a spec-like object or dict (name, title, table, metric, seeds, concepts, arms, axes, search,
n_trials, paper) and the result.json files read with :func:`e2gan.results.read_result`.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from e2gan.markdown_table import label_value
from e2gan.reporting.columns import COST, MAXIMIZE, QUALITY
from e2gan.reporting.stats import Estimate, over_seeds


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


def estimates(ctx: StudyContext, value: str, keys: list[str] | None = None, groups: list[tuple] | None = None,
              concepts: list[str] | None | bool = True) -> dict[tuple, Estimate]:
    """``value`` per group: averaged over the held-out concepts per seed (``concepts=False``: per row),
    then mean ± 95% CI over seeds."""
    keys = ctx.cell_cols if keys is None else keys
    groups = ctx.groups if groups is None else groups
    cons = ctx.concepts if concepts is True else (None if concepts is False else concepts)
    return over_seeds(ctx.frame, keys, value, seeds=ctx.seeds, concepts=cons, groups=groups)
