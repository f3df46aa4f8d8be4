"""The table a study prints when it ends: mean, spread and N of the metric per arm and axis value."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from e2gan.results import located


def trials_frame(study, runs_now: dict[str, str] | None = None, runs: str | Path | None = None) -> pd.DataFrame:
    """One row per complete trial: its cell (or search params) and user attributes. ``runs_now``
    (``studies.queue.current_runs``): trials of an earlier version of the spec are left out.
    ``runs``: the runs folder, where a recorded run path that does not resolve here is looked up."""
    from optuna.trial import TrialState

    from studies.queue import superseded

    rows = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if superseded(t, runs_now):
            continue
        cell = t.user_attrs.get("cell") or dict(t.params)
        attrs = {k: v for k, v in t.user_attrs.items() if k not in ("cell", "traceback")}
        if isinstance(attrs.get("run_dir"), str):
            attrs["run_dir"] = located(attrs["run_dir"], runs)
        if isinstance(attrs.get("runs"), list):
            attrs["runs"] = [located(str(r), runs) for r in attrs["runs"]]
        rows.append({**cell, **attrs, "trial": t.number})
    return pd.DataFrame(rows)


def summary_table(study, spec, preset: str | None = None) -> str | None:
    from e2gan.markdown_table import label_value, to_markdown
    from studies.queue import current_runs

    df = trials_frame(study, current_runs(spec, preset or spec.preset))
    if df.empty:
        return None
    keys = [k for k in ("arm", *spec.axes) if k in df.columns] or [c for c in spec.search if c in df.columns]
    if not keys:
        return None
    for k in keys:  # list-valued axes (layer groups) as their report labels: a list cannot be grouped on
        df[k] = df[k].map(lambda v: label_value(v) if isinstance(v, (list, tuple, dict)) else v)
    g = df.groupby(keys, sort=False)
    agg = pd.DataFrame({f"{spec.metric} mean": g[spec.metric].mean(), "std": g[spec.metric].std(),
                        "N": g[spec.metric].count()})
    for col in dict.fromkeys(("psnr", "params_trainable", "train_seconds")):
        if col in df.columns and col != spec.metric:
            agg[f"{col} mean"] = g[col].mean()
    agg.index = agg.index.map(lambda k: " / ".join(map(str, k)) if isinstance(k, tuple) else str(k))
    agg.index.name = " / ".join(keys)
    return to_markdown(agg)
