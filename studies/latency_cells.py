"""Host latency of a study's trained generators, so its report has a latency table.

One run per arm (its first concept and seed) is timed per backend; runs that already hold a
record for that backend are skipped, so a resumed ``reproduce`` measures only what is missing.
"""
from __future__ import annotations

import json
from pathlib import Path

from e2gan.errors import InputError


def runs_to_time(study, spec, runs: str | Path | None = None) -> dict[str, Path]:
    """arm -> the run directory of its first complete cell (first concept, first seed); ``runs``:
    the runs folder, where a recorded run path that does not resolve here is looked up."""
    from optuna.trial import TrialState

    from e2gan.results import located

    picked: dict[str, tuple[tuple, Path]] = {}
    concepts, seeds = spec.concept_names(), spec.seeds
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        cell, run = t.user_attrs.get("cell") or {}, t.user_attrs.get("run_dir")
        if not run or cell.get("concept") not in concepts or cell.get("seed") not in seeds:
            continue
        if any(k not in ("arm", "concept", "seed") for k in cell):
            continue  # axes cells: one latency per arm is enough, taken from plain arm cells
        order = (concepts.index(cell["concept"]), seeds.index(cell["seed"]))
        arm = cell.get("arm", "default")
        if arm not in picked or order < picked[arm][0]:
            picked[arm] = (order, Path(located(run, runs)))
    return {arm: run for arm, (_, run) in sorted(picked.items())}


def measure_study_latency(study, spec, backends: list[str], progress: bool = True,
                          runs: str | Path | None = None) -> list[dict]:
    """Time one run per arm on each backend; returns the new latency rows."""
    import sys

    from e2gan.deploy.run_latency import latency_run

    rows = []
    for arm, run in runs_to_time(study, spec, runs).items():
        result = json.loads((run / "result.json").read_text()) if (run / "result.json").exists() else {}
        for backend in backends:
            if backend in (result.get("latency") or {}):
                continue
            try:
                rows.append(latency_run(run, backend))
            except InputError as exc:  # e.g. a generator LiteRT cannot convert: say so, keep going
                print(f"  latency {arm} / {backend}: skipped ({exc})", file=sys.stderr)
                continue
            if progress:
                print(f"  latency {arm} / {backend}: {rows[-1].get('median_ms', float('nan')):.2f} ms", file=sys.stderr)
    return rows
