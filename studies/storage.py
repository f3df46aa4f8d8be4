"""The study storage as workers see it: every call retried through outages, passwords never shown.

A PostgreSQL restart, a dropped connection or a locked SQLite file is an outage, not a failure:
each storage call retries with capped exponential backoff until the storage answers or the outage
has lasted ``patience`` seconds. One line says when the storage is lost and one when it is back
(shared by all threads of a process, so a worker and its heartbeat thread print one pair). When
the patience runs out the call raises ``StorageGone``: the CLI turns it into one line and exit 2.
"""
from __future__ import annotations

import re
import sys
import threading
import time

from e2gan.errors import InputError

PATIENCE_S = 600.0
BACKOFF_START_S = 0.25
BACKOFF_CAP_S = 8.0


def redact(url: str) -> str:
    """A storage URL with its password replaced, for logs, results and reports."""
    # user:password@ up to the last '@' of the host part (an empty user too), and password= options.
    url = re.sub(r"(://[^:/?#@]*:)[^/?#]*@", r"\1***@", url)
    return re.sub(r"(?i)([?&](?:password|passwd|pwd)=)[^&#]*", r"\1***", url)


class StorageGone(InputError):
    """The storage stayed unreachable for longer than the patience."""


def is_outage(exc: BaseException) -> bool:
    """True for errors that mean "the storage is not answering now" rather than "the call is wrong"."""
    import sqlalchemy.exc as sa

    seen, depth = exc, 0
    while seen is not None and depth < 8:
        if isinstance(seen, (sa.OperationalError, sa.InterfaceError, sa.DisconnectionError, sa.PendingRollbackError,
                             ConnectionError, TimeoutError)) or getattr(seen, "connection_invalidated", False):
            return True
        code = getattr(seen, "code", None)  # grpc.RpcError: the proxy (or its database) is down
        if callable(code) and type(seen).__module__.startswith("grpc"):
            try:
                return code().name in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL")
            except Exception:
                return False
        seen, depth = seen.__cause__ or seen.__context__, depth + 1
    return False


def _first_line(exc: BaseException) -> str:
    inner = exc
    while inner.__cause__ is not None:
        inner = inner.__cause__
    text = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {text[0][:160] if text else ''}"


class Outage:
    """One process's view of whether its storage answers; thread-safe, prints one line per change."""

    def __init__(self, where: str, patience: float = PATIENCE_S, out=None):
        self.where, self.patience = where, float(patience)
        self.out = out
        self.since: float | None = None
        self._lock = threading.Lock()

    def _say(self, line: str) -> None:
        print(line, file=self.out or sys.stderr, flush=True)

    def lost(self, exc: BaseException) -> float:
        """Record a failed call; returns the seconds the outage has lasted."""
        with self._lock:
            now = time.monotonic()
            if self.since is None:
                self.since = now
                self._say(f"storage lost: {self.where} ({_first_line(exc)}); retrying for up to {self.patience:.0f} s")
            return now - self.since

    def back(self) -> None:
        if self.since is None:  # the common case, without taking the lock
            return
        with self._lock:
            if self.since is not None:
                self._say(f"storage back: {self.where} after {time.monotonic() - self.since:.0f} s")
                self.since = None

    def gone(self) -> StorageGone:
        return StorageGone(f"study storage unreachable for {self.patience:.0f} s", self.where,
                           "a reachable storage (finished cells keep their result.json and are recorded by the "
                           "next worker; --storage-patience waits longer)")


def retry(outage: Outage, fn, *args, on_retry=None, **kwargs):
    """``fn(*args, **kwargs)``, retried through outages with capped exponential backoff.

    ``on_retry(exc)``, when given, settles a call that failed after an earlier attempt may already
    have been committed (the reply, not the write, was lost): it returns ``(True, value)`` to stop.
    """
    delay, retried = BACKOFF_START_S, False
    while True:
        try:
            out = fn(*args, **kwargs)
        except Exception as exc:
            if not is_outage(exc):
                if retried and on_retry is not None:
                    done, value = on_retry(exc)
                    if done:
                        outage.back()
                        return value
                raise
            lasted = outage.lost(exc)
            if lasted >= outage.patience:
                raise outage.gone() from None
            time.sleep(min(delay, outage.patience - lasted))
            delay, retried = min(delay * 2, BACKOFF_CAP_S), True
            continue
        outage.back()
        return out


def retry_on(storage, fn, *args):
    """``fn(*args)`` through ``retry`` when ``storage`` is the retrying wrapper (it carries the
    outage tracker), else called once: direct database work beside the storage's own methods."""
    outage = getattr(storage, "outage", None)
    return retry(outage, fn, *args) if outage is not None else fn(*args)


def _retrying_class():
    """A storage that forwards every method of Optuna's storage and heartbeat interfaces through ``retry``."""
    import optuna
    from optuna.storages import BaseStorage
    from optuna.storages._heartbeat import BaseHeartbeat

    def forward(name):
        def method(self, *args, **kwargs):
            return retry(self.outage, getattr(self.inner, name), *args, **kwargs)
        method.__name__ = name
        return method

    names = sorted(BaseStorage.__abstractmethods__ | BaseHeartbeat.__abstractmethods__
                   | {"get_n_trials", "get_best_trial", "get_trial_params", "get_trial_user_attrs",
                      "get_trial_system_attrs", "get_failed_trial_callback", "remove_session"})
    body = {name: forward(name) for name in names}

    def __init__(self, inner, outage: Outage):
        self.inner, self.outage = inner, outage

    def set_trial_state_values(self, trial_id, state, values=None):
        # A retried write that was committed the first time now meets a finished trial: if the
        # trial holds the state we asked for, the write is done.
        def settled(exc):
            if isinstance(exc, optuna.exceptions.UpdateFinishedTrialError):
                return self.get_trial(trial_id).state == state, True
            return False, None
        return retry(self.outage, self.inner.set_trial_state_values, trial_id, state, values, on_retry=settled)

    def create_new_trial(self, study_id, template_trial=None):
        # An enqueued attempt carries a unique id: on a retry, find it rather than queue it twice.
        token = (template_trial.user_attrs.get("queue_id") if template_trial is not None else None)

        tries = []

        def once():
            tries.append(1)
            if token is not None and len(tries) > 1:
                for t in self.inner.get_all_trials(study_id, deepcopy=False):
                    if t.user_attrs.get("queue_id") == token:
                        return t._trial_id
            return self.inner.create_new_trial(study_id, template_trial)
        return retry(self.outage, once)

    body.update(__init__=__init__, set_trial_state_values=set_trial_state_values,
                create_new_trial=create_new_trial)
    return type("RetryingStorage", (BaseStorage, BaseHeartbeat), body)


_CLASS = None


def _quiet_fallback(record) -> bool:
    # Optuna logs a dropped connection in a bulk read as a multi-line warning, then retries it
    # slowly; the retry layer says the same in one line.
    return not str(record.msg).startswith("Caught an error from sqlalchemy")


def retrying(inner, outage: Outage):
    """Wrap an Optuna storage so that every call survives outages up to ``outage.patience``."""
    import logging

    global _CLASS
    if _CLASS is None:
        _CLASS = _retrying_class()
        logging.getLogger("optuna.storages._rdb.storage").addFilter(_quiet_fallback)
    return _CLASS(inner, outage)


def rdb_of(storage):
    """The RDBStorage under the wrappers, or None (another backend)."""
    from optuna.storages import RDBStorage

    seen = 0
    while storage is not None and seen < 4:
        if isinstance(storage, RDBStorage):
            return storage
        storage = getattr(storage, "inner", None) or getattr(storage, "_backend", None)
        seen += 1
    return None
