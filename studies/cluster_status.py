"""Who is working on a study: workers holding cells, cells retried and why, cells gone stale."""
from __future__ import annotations

from studies.heartbeat import GRACE_S, WORKER_ATTR, beat_ages
from studies.runner import attempts_by_cell, cell_key


def _cell_name(cell: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in cell.items())


def cluster(study, grace: float | None = None) -> dict:
    """Running cells with their worker and heartbeat age, stale ones, and every retried cell's reasons."""
    from optuna.trial import TrialState

    grace = float(grace if grace is not None else GRACE_S)
    ages = beat_ages(study)
    running, stale = [], []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        w = t.system_attrs.get(WORKER_ATTR) or {}
        row = {"trial": t.number, "cell": t.user_attrs.get("cell", t.params), "host": w.get("host", "?"),
               "pid": w.get("pid", "?"), "beat_age_s": ages.get(t._trial_id)}
        running.append(row)
        if row["beat_age_s"] is not None and row["beat_age_s"] > grace:
            stale.append(row)
    retried = []
    for key, entry in attempts_by_cell(study).items():
        if entry["failed"]:
            active = entry["active"]
            retried.append({"cell": entry["failed"][0].user_attrs.get("cell", {}), "attempts": len(entry["failed"])
                            + (active is not None), "now": active.state.name if active is not None else "FAIL",
                            "reasons": [t.user_attrs.get("fail_reason", "no reason recorded") for t in entry["failed"]]})
    retried.sort(key=lambda r: cell_key(r["cell"]))
    return {"running": running, "stale": stale, "retried": retried, "grace_s": grace}


def cluster_lines(info: dict) -> list[str]:
    lines = []
    if info["running"]:
        lines.append("workers holding cells:")
        for r in info["running"]:
            age = "no beat yet" if r["beat_age_s"] is None else f"last beat {r['beat_age_s']:.0f} s ago"
            lines.append(f"  {r['host']} pid {r['pid']}: trial {r['trial']} ({_cell_name(r['cell'])}), {age}")
    if info["stale"]:
        lines.append(f"stale (no beat for more than {info['grace_s']:.0f} s; the next idle worker or `resume` "
                     "fails and queues them again):")
        for r in info["stale"]:
            lines.append(f"  trial {r['trial']} ({_cell_name(r['cell'])}) on {r['host']} pid {r['pid']}")
    if info["retried"]:
        lines.append("cells retried:")
        for r in info["retried"]:
            lines.append(f"  {_cell_name(r['cell'])}: {r['attempts']} attempts, now {r['now']}")
            lines += [f"    attempt {i}: {reason}" for i, reason in enumerate(r["reasons"], start=1)]
    return lines
