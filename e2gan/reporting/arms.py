"""The runs behind one arm of a study, with their per-image scores, aligned on shared test images.

An arm is a row label of the study's grid (``e2gan``, ``e2gan / 32 / kmeans``) or a scheme of the
greedy rank search run beside it (``greedy:searched``, ``greedy:uniform-1x``, ``greedy:random``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from e2gan.metrics.per_image import load_scores, scores_name
from e2gan.reporting.bootstrap import Run
from e2gan.reporting.study_context import StudyContext

GREEDY = "greedy:"


@dataclass
class ArmRun:
    run_dir: str
    concept: str
    seed: object
    result: dict | None
    scores: dict | None      # scores.npz rows of this concept, or None (evaluated before they were saved)

    @property
    def collapsed(self) -> bool | None:
        c = (self.result or {}).get("collapsed")
        return bool(c.get("collapsed")) if isinstance(c, dict) else None


def scheme_label(scheme: str) -> str:
    """search.json's scheme name as a spec names it: 'uniform 1x' -> 'uniform-1x' (``greedy:uniform-1x``)."""
    return scheme.replace(" ", "-")


def runs_root(ctx: StudyContext) -> Path | None:
    """The runs folder: the parent of the trials' run directories."""
    if "run_dir" in ctx.frame.columns and len(ctx.frame):
        return Path(str(ctx.frame["run_dir"].iloc[0])).parent
    return None


def greedy_search(ctx: StudyContext) -> dict | None:
    """The greedy search's search.json (written by studies.rank_search beside the study storage)."""
    import json

    root = runs_root(ctx)
    path = root / "studies" / f"{ctx.name}-{ctx.preset}-greedy" / "search.json" if root else None
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None


def _concept_rows(scores: dict | None, concept: str) -> dict | None:
    if scores is None:
        return None
    rows = scores["concept"] == concept
    if not rows.any():
        return None
    return {k: (v[rows] if isinstance(v, np.ndarray) and v.ndim >= 1 and len(v) == len(rows) else v)
            for k, v in scores.items()}


def _arm_run(ctx: StudyContext, run_dir: str, concept: str | None, seed) -> ArmRun:
    result = ctx.results.get(str(run_dir))
    if result is None:
        try:
            from e2gan.results import read_result

            result = read_result(run_dir)
        except Exception:  # a moved run: no result, no scores
            result = None
    if concept is None:
        concept = ((result or {}).get("concepts") or ["?"])[0]
    if seed is None:
        seed = (result or {}).get("config", {}).get("adapt", {}).get("seed")
    label = (result or {}).get("protocol", {}).get("checkpoint", "last")
    name = (result or {}).get("protocol", {}).get("per_image_file") or scores_name(label)
    return ArmRun(str(run_dir), str(concept), seed, result, _concept_rows(load_scores(Path(run_dir) / name), str(concept)))


def arm_runs(ctx: StudyContext, label: str) -> list[ArmRun] | None:
    """Every finished run of the arm (None: no such arm in this study)."""
    if label.startswith(GREEDY):
        search = greedy_search(ctx)
        if search is None:
            return None
        scheme = label[len(GREEDY):]
        row = next((r for r in search.get("table", []) if scheme_label(str(r.get("scheme"))) == scheme), None)
        if row is None:
            return None
        from e2gan.results import located

        dirs = (search.get("runs") or {}).get(row.get("ranks"), [])
        return [_arm_run(ctx, located(d, runs_root(ctx)), None, None) for d in dirs]
    group = next((g for g in ctx.groups if ctx.group_label(g) == label), None)
    if group is None:
        return None
    rows = ctx.group_rows(group)
    out = []
    for _, r in rows.iterrows():
        if "run_dir" in rows.columns and isinstance(r.get("run_dir"), str):
            out.append(_arm_run(ctx, r["run_dir"], r.get("concept"), r.get("seed")))
    return out


def by_concept(runs: list[ArmRun]) -> dict[str, list[ArmRun]]:
    out: dict[str, list[ArmRun]] = {}
    for r in sorted(runs, key=lambda r: (r.concept, str(r.seed))):
        out.setdefault(r.concept, []).append(r)
    return out


def align(a: list[ArmRun], b: list[ArmRun]) -> tuple[list[Run], list[Run]]:
    """Bootstrap runs of both arms on one concept, rows restricted to the test images all of them scored."""
    common = None
    for r in a + b:
        ids = list(r.scores["source_id"])
        common = ids if common is None else [i for i in common if i in set(ids)]
    common = common or []

    def run(r: ArmRun) -> Run:
        pos = {sid: i for i, sid in enumerate(r.scores["source_id"])}
        ix = np.array([pos[i] for i in common], dtype=int)
        return Run(r.seed, r.scores["mse"][ix], r.scores["perceptual"][ix],
                   r.scores["feat_out"][ix], r.scores["feat_tgt"][ix])
    return [run(r) for r in a], [run(r) for r in b]
