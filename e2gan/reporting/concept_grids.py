"""Image grids for a study report: source | teacher target | each method's output on a few test images
of a concept, drawn from the predictions each run saved at evaluation time (a report never runs a model)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from e2gan.reporting.paper_tables.pareto import pareto_points
from e2gan.reporting.study_context import StudyContext

TILE_MIN_PX = 96


@dataclass
class Grid:
    concept: str
    path: Path | None
    columns: list[str]
    notes: list[str]


def _methods(ctx: StudyContext, concept: str, seed: Any) -> list[tuple[str, str | None]]:
    """(label, run_dir) per method for one concept: the run of ``seed``, else its lowest seed."""
    out: list[tuple[str, str | None]] = []
    if ctx.sampler == "grid":
        for g in ctx.groups:
            rows = ctx.group_rows(g)
            rows = rows[rows["concept"] == concept] if "concept" in rows.columns else rows.iloc[0:0]
            run = None
            if len(rows) and "run_dir" in rows.columns:
                pick = rows[rows["seed"] == seed] if "seed" in rows.columns else rows
                if pick.empty and "seed" in rows.columns:
                    pick = rows.sort_values("seed", kind="mergesort")
                run = str(pick["run_dir"].iloc[0]) if len(pick) else None
            out.append((ctx.group_label(g), run))
        return out
    df, front = pareto_points(ctx)  # search studies: the front's trials, cheapest first
    for pos in front[:4]:
        r = df.iloc[pos]
        runs = r.get("runs") if "runs" in df.columns else None
        runs = list(runs) if isinstance(runs, (list, tuple)) else ([r["run_dir"]] if "run_dir" in df.columns else [])
        run = next((str(x) for x in runs if concept in (ctx.results.get(str(x), {}).get("concepts") or [])), None)
        label = f"trial {int(r['trial'])}" if "trial" in df.columns else f"#{pos}"
        out.append((label, run))
    return out


class NoSavedPredictions(Exception):
    """A run evaluated before predictions.npz was saved: the report draws nothing it did not store."""


def _predict(run_dir: str, concept: str, n: int, source_ids: list[str] | None, device: str) -> dict:
    """The run's test predictions saved at evaluation time (predictions.npz); a report never runs a model."""
    import torch

    from e2gan.metrics.per_image import PREDICTIONS_FILE, load_predictions

    z = load_predictions(Path(run_dir) / PREDICTIONS_FILE)
    if z is None:
        raise NoSavedPredictions(f"no {PREDICTIONS_FILE} in the run (evaluated before predictions were saved): "
                                 "rerun its evaluation")
    rows = [i for i, c in enumerate(z["concept"].tolist()) if c == concept]
    ids = [str(z["source_id"][i]) for i in rows]
    pick = rows[:n] if source_ids is None else [rows[ids.index(s)] for s in source_ids if s in ids]
    if not pick:
        raise NoSavedPredictions(f"no saved predictions for concept {concept!r}")
    t = lambda k: torch.from_numpy(z[k][pick])  # noqa: E731
    return {"sources": t("sources"), "targets": t("targets"), "outputs": t("outputs"),
            "source_ids": [str(z["source_id"][i]) for i in pick], "concepts": [concept] * len(pick)}


def _upscale(tiles: np.ndarray) -> np.ndarray:
    h = tiles.shape[-1]
    f = max(1, math.ceil(TILE_MIN_PX / max(1, h)))
    return tiles if f == 1 else tiles.repeat(f, axis=-1).repeat(f, axis=-2)


def concept_grid(ctx: StudyContext, concept: str, path: Path, n_images: int = 3, seed: Any = 0,
                 device: str = "cpu") -> Grid:
    """source | teacher target | each method's output, for the first ``n_images`` test images."""
    from e2gan.image_grid import save_triplet_grid

    methods = _methods(ctx, concept, seed)
    notes: list[str] = []
    preds: dict[str, dict] = {}
    ref = None
    for label, run in methods:
        if run is None:
            notes.append(f"{label}: no finished run for this concept")
            continue
        try:
            pred = _predict(run, concept, n_images, ref["source_ids"] if ref else None, device)
        except Exception as exc:  # a run moved, a data folder missing: the grid says so and goes on
            why = str(exc) if isinstance(exc, NoSavedPredictions) else f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            notes.append(f"{label}: not rendered ({why})")
            continue
        if ref is None:
            ref = pred
        preds[label] = pred
    columns = ["source", "teacher", *[label for label, _ in methods]]
    if ref is None:
        return Grid(concept, None, columns, notes or ["no run could be rendered"])
    ids = ref["source_ids"]
    shape = tuple(ref["sources"].shape[1:])
    rows = np.full((len(ids), len(columns), *shape), 200, dtype=np.uint8)
    rows[:, 0] = ref["sources"].numpy()
    rows[:, 1] = ref["targets"].numpy()
    for j, (label, _) in enumerate(methods, start=2):
        pred = preds.get(label)
        if pred is None:
            continue
        for i, sid in enumerate(ids):
            if sid in pred["source_ids"]:
                out = pred["outputs"][pred["source_ids"].index(sid)].numpy()
                if out.shape == shape:
                    rows[i, j] = out
                else:
                    notes.append(f"{label}: output shape {out.shape} differs from {shape}")
    save_triplet_grid(_upscale(rows), path, header=tuple(columns), row_labels=tuple(ids), label_px=96)
    return Grid(concept, Path(path), columns, notes)
