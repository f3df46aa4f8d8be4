"""Heartbeats of running cells: the lease a worker holds on its cell, and how others end a dead lease.

A worker beats every ``HEARTBEAT_S`` seconds while it runs a cell. Another worker fails a cell
whose last beat is older than ``GRACE_S`` (atomically: the trial is failed only if it is still
RUNNING and still stale in the same transaction, with the reason written beside it) and queues the
cell again. The owner, for its part, stops training once it has gone ``GRACE_S / 2`` without a
successful beat (its storage is away: it cannot know whether the others still see it alive) and
goes on only when a beat lands and the trial is still its own; a trial failed by someone else
ends the cell here with ``CellLost``. So one cell never trains in two places at once.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time

from studies.storage import StorageGone, rdb_of, retry_on

HEARTBEAT_S = int(os.environ.get("E2GAN_HEARTBEAT_S", "30"))
GRACE_S = int(os.environ.get("E2GAN_GRACE_S", "120"))
WORKER_ATTR = "e2gan:worker"


def worker_id() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid()}


class CellLost(Exception):
    """This worker's trial was failed by another worker (it looked dead to them)."""


class Heartbeat:
    """Beats for one trial in a daemon thread that outlives storage outages and any error."""

    def __init__(self, study, trial_id: int, interval: float | None = None, grace: float | None = None):
        self.storage, self.trial_id = study._storage, trial_id
        self.interval = max(1.0, float(interval if interval is not None else HEARTBEAT_S))
        self.grace = float(grace if grace is not None else GRACE_S)
        self.last_ok = time.monotonic()  # the claim beat just now
        self.lost: str | None = None
        self.gone: StorageGone | None = None
        self._stop, self._news = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"heartbeat-{trial_id}")
        self._warned = False

    def _beat_once(self) -> None:
        from optuna.trial import TrialState

        sent = time.monotonic()  # the lease runs from before the beat was sent: conservative
        trial = self.storage.get_trial(self.trial_id)
        if trial.state != TrialState.RUNNING:
            self.lost = trial.user_attrs.get("fail_reason") or f"trial is {trial.state.name}"
            return
        self.storage.record_heartbeat(self.trial_id)
        self.last_ok = sent

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._beat_once()
            except StorageGone as exc:
                self.gone = exc
            except Exception as exc:  # never die silently: a cell without beats looks dead to everyone
                if not self._warned:
                    print(f"warning: heartbeat of trial {self.trial_id}: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:160] if str(exc) else ''}; still beating", file=sys.stderr)
                    self._warned = True
            self._news.set()
            if self.lost is not None or self.gone is not None:
                return
            self._stop.wait(self.interval)

    def check(self) -> None:
        """Between training steps: go on, wait while the lease is at risk, or stop this cell."""
        while True:
            if self.gone is not None:
                raise self.gone
            if self.lost is not None:
                raise CellLost(self.lost)
            if time.monotonic() - self.last_ok < self.grace / 2 or not self._thread.is_alive():
                return
            self._news.wait(1.0)
            self._news.clear()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=2)


def _db_now(session):
    import sqlalchemy

    return session.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar().replace(tzinfo=None)


def beat_ages(study) -> dict[int, float | None]:
    """Seconds since the last beat of every RUNNING trial, by the database's clock (None: no beat yet)."""
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    rdb = rdb_of(study._storage)
    if rdb is None:
        return {}

    def read():
        session = rdb.scoped_session()
        try:
            now = _db_now(session)
            rows = (session.query(models.TrialModel.trial_id, models.TrialHeartbeatModel.heartbeat)
                    .outerjoin(models.TrialHeartbeatModel, models.TrialHeartbeatModel.trial_id == models.TrialModel.trial_id)
                    .filter(models.TrialModel.study_id == study._study_id,
                            models.TrialModel.state == TrialState.RUNNING).all())
            return {tid: (now - beat).total_seconds() if beat is not None else None for tid, beat in rows}
        finally:
            session.close()
    return retry_on(study._storage, read)


def _fail_if_stale(rdb, trial_id: int, grace: float, reason: str) -> bool:
    """Fail the trial only if it is still RUNNING with a beat older than ``grace`` (or no beat at all,
    claimed more than ``grace`` ago); the reason is written in the same commit."""
    import datetime

    import sqlalchemy
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    session = rdb.scoped_session()
    try:
        cutoff = _db_now(session) - datetime.timedelta(seconds=grace)
        beats = sqlalchemy.select(models.TrialHeartbeatModel.trial_id).where(
            models.TrialHeartbeatModel.trial_id == trial_id)
        old_beat = beats.where(models.TrialHeartbeatModel.heartbeat < cutoff)
        # A claim whose reply was lost leaves a RUNNING trial that nobody beats for: its start
        # (the claimer's UTC clock) is all there is to go by.
        started_before = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(seconds=grace)
        stale = sqlalchemy.or_(models.TrialModel.trial_id.in_(old_beat),
                               sqlalchemy.and_(~models.TrialModel.trial_id.in_(beats),
                                               models.TrialModel._datetime_start_utc < started_before))
        done = session.execute(
            sqlalchemy.update(models.TrialModel)
            .where(models.TrialModel.trial_id == trial_id, models.TrialModel.state == TrialState.RUNNING, stale)
            .values(state=TrialState.FAIL, _datetime_complete_utc=datetime.datetime.now(datetime.timezone.utc)
                    .replace(tzinfo=None))
            .execution_options(synchronize_session=False))
        if done.rowcount != 1:
            session.rollback()
            return False
        session.add(models.TrialUserAttributeModel(trial_id=trial_id, key="fail_reason", value_json=json.dumps(reason)))
        session.add(models.TrialUserAttributeModel(trial_id=trial_id, key="stale", value_json="true"))
        session.commit()
        return True
    except Exception:
        session.rollback()
        raise
    finally:
        session.close()


def reap_stale(study, grace: float | None = None) -> list[int]:
    """Fail every RUNNING trial whose heartbeat is older than the grace period; their numbers."""
    import optuna

    grace = float(grace if grace is not None else GRACE_S)
    rdb = rdb_of(study._storage)
    if rdb is None:  # a backend without our transaction: Optuna's own check, no reason recorded
        optuna.storages.fail_stale_trials(study)
        return []
    me = worker_id()
    failed = []
    import datetime

    for trial_id, age in beat_ages(study).items():
        trial = None
        if age is None:  # never beaten for: judged by when it was claimed
            trial = study._storage.get_trial(trial_id)
            if trial.datetime_start is None or (datetime.datetime.now() - trial.datetime_start).total_seconds() <= grace:
                continue
        elif age <= grace:
            continue
        trial = trial or study._storage.get_trial(trial_id)
        w = trial.system_attrs.get(WORKER_ATTR) or {}
        last = f"last beat {age:.0f} s ago" if age is not None else "no beat since it was claimed"
        reason = (f"worker {w.get('host', '?')} pid {w.get('pid', '?')} stopped beating: {last} "
                  f"(grace {grace:.0f} s); failed by {me['host']} pid {me['pid']}")
        if retry_on(study._storage, _fail_if_stale, rdb, trial_id, grace, reason):
            failed.append(trial.number)
    return failed


current: Heartbeat | None = None  # the heartbeat of the cell this process is running, if any


def check_lease() -> None:
    """Raise if the running cell is no longer this worker's; wait while its lease is at risk."""
    if current is not None:
        current.check()


def lease_callback(beat: Heartbeat):
    """A Lightning callback that checks the lease after every training step."""
    from lightning.pytorch.callbacks import Callback

    class LeaseGuard(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            beat.check()

    return LeaseGuard()
