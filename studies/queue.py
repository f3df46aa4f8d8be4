"""The grid's queue in the study storage: one attempt of a cell at a time, claimed atomically.

A cell's attempts are trials carrying the cell and a queue id (``<cell>#<attempt>``). The queue is
refilled by the coordinator (every missing cell) and by idle workers (cells whose last attempt died
with its worker); a cell that has failed ``max_retries`` times is given up.
"""
from __future__ import annotations

import json
from pathlib import Path

from studies.heartbeat import WORKER_ATTR, reap_stale, worker_id
from studies.spec import StudySpec
from studies.storage import rdb_of, retry_on

MAX_RETRIES = 3
DUPLICATE_ATTR = "e2gan:duplicate"


def cell_key(params: dict) -> str:
    return json.dumps(params, sort_keys=True)


def current_runs(spec: StudySpec, preset: str):
    """The names of the run directories the spec names now: per grid cell (a dict), or, for a search,
    per trial's parameters (``SearchRuns``: the sorted names of its concept x seed runs).

    A cell is named by its arm, axes, concept and seed only; the run's name carries the hash of its
    whole configuration, so a trial whose run is not this one ran an earlier version of the spec.
    """
    from e2gan.pipeline.adapt import adapt_dir

    if spec.sampler != "grid":
        return SearchRuns(spec, preset)
    return {cell_key(c): adapt_dir(spec.cell_config(c, preset), c["concept"]).name for c in spec.grid(preset)}


class SearchRuns:
    """A search trial's parameters (as ``cell_key``) -> the sorted names of the runs they name now.

    Computed per lookup: a search space (4^5 rank allocations) is far larger than the trials asked.
    """

    def __init__(self, spec: StudySpec, preset: str):
        self.spec, self.preset = spec, preset
        self.concepts = spec.concept_names(preset)  # read once: every lookup runs the same concept x seed cells

    def get(self, key: str) -> list[str]:
        from e2gan.pipeline.adapt import adapt_dir

        params = json.loads(key)
        return sorted(adapt_dir(self.spec.cell_config({**params, "concept": c, "seed": s}, self.preset), c).name
                      for c in self.concepts for s in self.spec.seeds)


def found_done(trial) -> bool:
    """A complete cell whose run was found on disk (another study's, the same configuration):
    ``runner.evaluate_cell`` trained nothing for it."""
    return trial.state.name == "COMPLETE" and bool(trial.user_attrs.get("found_done"))


def superseded(trial, runs_now) -> bool:
    """A trial that ran its cell under an earlier spec (an arm's or the config's values changed since):
    its result is not this spec's, so the cell is queued again (a search asks another trial) and
    reports leave the trial out.

    A grid trial carries the run name it was queued for (``run_name``); one queued before that
    attribute existed is judged by the run directory it recorded. A search trial is judged by the
    runs it recorded (``runs``); a search's sampler still learns from it (Optuna's history holds
    every trial). A waiting or running trial is never superseded: its worker builds the cell's
    config from the spec it has, and once it finishes under a stale name the cell is queued again
    and found on disk.
    """
    from optuna.trial import TrialState

    want = (runs_now or {}).get(cell_key(trial.user_attrs.get("cell", trial.params)))
    if want is None or getattr(trial, "state", None) in (TrialState.WAITING, TrialState.RUNNING):
        return False
    if isinstance(want, list):  # a search trial
        runs = trial.user_attrs.get("runs")
        return bool(runs) and sorted(Path(r).name for r in runs) != want
    queued = trial.user_attrs.get("run_name")
    if queued is not None:
        return queued != want
    run = trial.user_attrs.get("run_dir")
    return bool(run) and Path(run).name != want


def attempts_by_cell(study, runs_now: dict[str, str] | None = None) -> dict[str, dict]:
    """Per grid cell: its active trial (complete, pruned, waiting or running) and its failed attempts.
    ``runs_now`` (``current_runs``): trials of an earlier spec are no attempt of today's cell."""
    from optuna.trial import TrialState

    out: dict[str, dict] = {}
    for t in study.get_trials(deepcopy=False):
        if t.system_attrs.get(DUPLICATE_ATTR):
            continue  # a second queue entry for an attempt, never run: no attempt of its own
        entry = out.setdefault(cell_key(t.user_attrs.get("cell", t.params)),
                               {"active": None, "failed": [], "superseded": []})
        if superseded(t, runs_now):
            entry["superseded"].append(t)  # an earlier spec's run: it numbers attempts, it is not one now
        elif t.state == TrialState.FAIL:
            entry["failed"].append(t)
        elif entry["active"] is None or t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            entry["active"] = t
    return out


def reconcile(study, spec: StudySpec, preset: str, max_retries: int = MAX_RETRIES, stale_only: bool = False,
              grace: float | None = None) -> int:
    """Fail stale trials, then queue every grid cell with no complete, pruned, waiting or running trial
    that has failed fewer than ``max_retries`` times.

    ``stale_only`` (workers): queue again only cells whose last attempt died with its worker; a cell
    that raised an error is queued again by the next `run`/`resume`, not at once by every worker.
    """
    import datetime

    from studies import heartbeat

    reaped = set(reap_stale(study, grace))
    if spec.sampler != "grid":
        return 0
    runs_now = current_runs(spec, preset)
    cells = attempts_by_cell(study, runs_now)
    added = 0
    for cell in spec.grid(preset):
        key = cell_key(cell)
        entry = cells.get(key, {"active": None, "failed": [], "superseded": []})
        failed = entry["failed"]
        if entry["active"] is not None or len(failed) >= max_retries:
            continue
        if stale_only and failed:
            last = failed[-1]
            if not last.user_attrs.get("stale"):
                continue
            # The worker that failed it queues it now; another one only if that worker died before
            # queueing it (a grace period later), so idle workers do not all queue the same attempt.
            done = last.datetime_complete
            if last.number not in reaped and done is not None and \
                    (datetime.datetime.now() - done).total_seconds() < heartbeat.GRACE_S:
                continue
        attempt = len(failed) + len(entry["superseded"]) + 1
        # The queue id names the attempt: two workers queueing the same attempt at once make two
        # entries with one id, and the claim keeps only the first (see _claim_waiting).
        study.enqueue_trial({}, user_attrs={"cell": cell, "attempt": attempt, "queue_id": f"{key}#{attempt}",
                                            "run_name": runs_now[key]}, skip_if_exists=False)
        added += 1
    return added


def _claim_waiting(study):
    """Atomically move one WAITING trial to RUNNING; None when the queue is empty."""
    import optuna
    from optuna.trial import TrialState

    storage = study._storage
    for t in storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.WAITING,)):
        if _claim(storage, t._trial_id):
            # Beat at once: a trial with no heartbeat yet is never found stale, so a worker killed
            # right after claiming would otherwise leave its cell RUNNING for ever.
            storage.record_heartbeat(t._trial_id)
            storage.set_trial_system_attr(t._trial_id, WORKER_ATTR, worker_id())
            queue_id = t.user_attrs.get("queue_id")
            if queue_id and any(o.user_attrs.get("queue_id") == queue_id and o._trial_id < t._trial_id
                                for o in storage.get_all_trials(study._study_id, deepcopy=False)):
                storage.set_trial_system_attr(t._trial_id, DUPLICATE_ATTR, True)
                storage.set_trial_user_attr(t._trial_id, "fail_reason", f"second queue entry for attempt {queue_id}")
                storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
                continue
            return optuna.Trial(study, t._trial_id)
    return None


def _claim(storage, trial_id: int) -> bool:
    """WAITING -> RUNNING in one conditional UPDATE; True only for the one caller whose update hit.

    Optuna's own claim reads the row, then writes it: on SQLite the read holds no lock (the driver
    begins a transaction only at the write), so two workers can both see WAITING and both claim it.
    """
    from optuna.trial import TrialState

    rdb = rdb_of(storage)
    if rdb is None:
        return storage.set_trial_state_values(trial_id, state=TrialState.RUNNING)
    return retry_on(storage, _claim_row, rdb, trial_id)


def _claim_row(rdb, trial_id: int) -> bool:
    import datetime

    import sqlalchemy
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    session = rdb.scoped_session()
    try:
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)  # the column holds UTC
        done = session.execute(
            sqlalchemy.update(models.TrialModel)
            .where(models.TrialModel.trial_id == trial_id, models.TrialModel.state == TrialState.WAITING)
            .values(state=TrialState.RUNNING, _datetime_start_utc=now)
            .execution_options(synchronize_session=False))
        session.commit()
        return done.rowcount == 1
    except Exception:
        session.rollback()
        raise
    finally:
        session.close()
