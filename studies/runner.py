"""Run study specs as Optuna studies: resumable, many workers, every grid cell exactly once.

Grid cells are enqueued once by the coordinator (`run` / `resume`); workers claim WAITING trials
atomically through the storage, so two workers never run the same cell. A worker that dies leaves
its trial RUNNING with a stale heartbeat: any surviving worker (or the next `run`/`resume`) fails
it with the reason (which worker, when it last beat) and queues the cell again, and the retry
resumes the run directory from its last checkpoint. Workers wait while cells run elsewhere and
exit only when every cell is COMPLETE, PRUNED, or has failed ``max_retries`` times. Every storage
call survives outages up to a patience (studies.storage); leases are in studies.heartbeat, the
grid queue (claims, retries, duplicate entries) in studies.queue.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path

from e2gan.errors import InputError
from studies import heartbeat as hb
from studies.heartbeat import GRACE_S, HEARTBEAT_S, CellLost, Heartbeat
from studies.queue import (DUPLICATE_ATTR, MAX_RETRIES, _claim_waiting, attempts_by_cell, cell_key, current_runs,
                           reconcile, superseded)
from studies.spec import StudySpec
from studies.storage import PATIENCE_S, Outage, StorageGone, is_outage, rdb_of, redact, retrying

# A worker's threads (training loop, heartbeat) share one pool: two connections stay open per worker
# (measured with pg_stat_activity, README "On a cluster"); a burst may open two more, closed after use.
ENGINE_KWARGS = {"pool_pre_ping": True, "pool_size": 2, "max_overflow": 2}
# Re-exported: the queue and storage helpers were split out of this module.
__all__ = ["DUPLICATE_ATTR", "GRACE_S", "HEARTBEAT_S", "MAX_RETRIES", "PATIENCE_S", "StorageGone", "_claim_waiting",
           "attempts_by_cell", "cell_key", "current_runs", "reconcile", "redact", "superseded"]


def default_storage(spec: StudySpec, runs: str | Path, preset: str) -> str:
    path = Path(runs).resolve() / "studies" / f"{spec.name}-{preset}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


_CREATION_RACE = ("already exists", "duplicate", "unique constraint", "database is locked")
# A server there but restarting: wait for it (up to the patience). "Connection refused" at first
# still fails at once: that is as often a wrong host or port as a restart.
_RESTARTING = ("shutting down", "starting up", "closed the connection unexpectedly", "terminating connection",
               "in recovery mode")


FIRST_CONTACT_S = 10.0  # how long a worker's first contact waits through a refused connection


def open_storage(url: str, attempts: int = 5, patience: float | None = None):
    """The storage at ``url``, every call retried through outages for up to ``patience`` seconds.

    Opening fails fast (a mistyped URL should not wait ten minutes): a refused connection is retried
    for ``FIRST_CONTACT_S`` only, enough for a server's restart (down for seconds) that a worker
    starts into; a server seen restarting is waited for up to the patience, as outages are once a
    worker is connected.
    """
    import optuna
    import sqlalchemy.exc

    patience = PATIENCE_S if patience is None else patience
    outage, attempt, seen_restart, refused_since = Outage(redact(url), patience), 0, False, None
    while True:
        try:
            with warnings.catch_warnings():  # Optuna calls heartbeats experimental: not two lines in every log
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                rdb = optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                                                 engine_kwargs=None if url.startswith("sqlite") else ENGINE_KWARGS)
            outage.back()
            return retrying(optuna.storages._CachedStorage(rdb), outage)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError) as exc:
            last, attempt = exc, attempt + 1
            text = str(exc).lower()
            # Once it was seen restarting, "refused" is the restart too; before that, a refusal may be a
            # restart's down window or a wrong host/port: waited for briefly, then reported.
            seen_restart = seen_restart or any(m in text for m in _RESTARTING)
            if seen_restart and is_outage(exc) and outage.lost(exc) < patience:
                time.sleep(1.0)
                continue
            refused_since = refused_since or time.monotonic()
            if (is_outage(exc) and not url.startswith("sqlite")  # a file does not restart
                    and time.monotonic() - refused_since < min(patience, FIRST_CONTACT_S)):
                time.sleep(1.0)  # quietly: a wrong URL's one line comes when this wait ends
                continue
            # Two processes opening a fresh storage at once race to create its tables: the loser
            # sees "already exists", a duplicate key or a locked SQLite file, and retries.
            if attempt >= attempts or not any(m in text for m in _CREATION_RACE):
                break
            time.sleep(0.2 * 2 ** (attempt - 1))
        except Exception as exc:  # sqlalchemy raises many types for a bad or unreachable URL
            last = exc
            break
    raise InputError("cannot open study storage", redact(url),
                     f"a reachable SQLAlchemy URL ({type(last).__name__}: {str(last).splitlines()[0][:160]})") from None


def study_name(spec: StudySpec, preset: str) -> str:
    return f"{spec.name}-{preset}"


def _sampler(spec: StudySpec, n_trials: int = 0):
    """The spec's sampler, seeded by the spec's first seed and the number of trials already asked.

    Every worker (and every ``work(max_trials=1)`` call of ``reproduce``) loads the study anew: a
    sampler seeded by the spec alone would restart its random stream each time and ask for the
    same parameters again and again. Offsetting by the trial count keeps a rerun reproducible.
    """
    import optuna

    seed = spec.seeds[0] * 1_000_003 + n_trials
    if spec.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if spec.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=0)  # grid: every trial is enqueued with fixed params


def _reseed(study, spec: StudySpec):
    study.sampler = _sampler(spec, len(study.get_trials(deepcopy=False)))
    return study


def load_study(spec: StudySpec, storage_url: str, preset: str, create: bool = False,
               patience: float | None = None):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(storage_url, patience=patience)
    directions = [spec.direction, "minimize"] if spec.sampler == "nsga2" else [spec.direction]
    pruner = optuna.pruners.MedianPruner(n_warmup_steps=1) if spec.pruner == "median" else optuna.pruners.NopPruner()
    name = study_name(spec, preset)
    if create:
        study = optuna.create_study(study_name=name, storage=storage, directions=directions,
                                    sampler=_sampler(spec), pruner=pruner, load_if_exists=True)
        _reseed(study, spec)
        study.set_user_attr("spec", spec.path)
        study.set_user_attr("metric", spec.metric)
        study.set_user_attr("preset", preset)
        return study
    try:
        return _reseed(optuna.load_study(study_name=name, storage=storage, sampler=_sampler(spec), pruner=pruner), spec)
    except KeyError:
        raise InputError(f"no study '{name}'", redact(storage_url), "a study started with `e2gan study run`") from None


def prepare(spec: StudySpec, preset: str, runs: str | Path, progress: bool = True) -> None:
    """Build shared prerequisites once, before any worker starts: the data and every base model."""
    from e2gan.pipeline.base import ensure_base
    from e2gan.pipeline.data import ensure_data
    from e2gan.teachers.data_key import data_key

    cells = spec.grid(preset) if spec.sampler == "grid" else [{"concept": c, "seed": s}
                                                               for c in spec.concept_names(preset) for s in spec.seeds]
    configs = {}
    for cell in cells:
        cfg = spec.cell_config(cell, preset)
        if cfg.adapt.method in ("lora", "full"):
            configs.setdefault(cfg.key("data", "model", "disc", "train"), cfg)
        configs.setdefault("data-" + data_key(cfg), cfg)
    for key, cfg in configs.items():
        data, _ = ensure_data(cfg, runs, progress=progress)
        if not key.startswith("data-"):
            ensure_base(cfg, data, runs, progress=progress)


def evaluate_cell(spec: StudySpec, params: dict, preset: str, runs: str | Path, trial=None,
                  progress: bool = False) -> dict:
    """Run one cell (train if needed, evaluate) and return its metrics and where it lives."""
    from e2gan.pipeline.adapt import adapt_dir, adapt_is_done, ensure_adapt
    from e2gan.pipeline.base import base_dir
    from e2gan.teachers.data_key import data_dir

    cfg = spec.cell_config(params, preset)
    found = adapt_is_done(adapt_dir(cfg, params["concept"], runs))  # another study's run: nothing trained
    data = data_dir(cfg, runs)
    base = base_dir(cfg, runs) if cfg.adapt.method in ("lora", "full") else None
    callbacks = [hb.lease_callback(hb.current)] if hb.current is not None else []
    if trial is not None and spec.pruner == "median":
        from lightning_modules.callbacks import OptunaPruning
        callbacks.append(OptunaPruning(trial, "val_psnr"))
    run_dir, result = ensure_adapt(cfg, params["concept"], data, base, runs, progress=progress,
                                   extra_callbacks=callbacks)
    mean, cost = result["metrics"]["mean_over_concepts"], result["cost"]
    return {"run_dir": str(run_dir), "value": float(mean[spec.metric]), **{k: mean.get(k) for k in METRICS_KEPT},
            "params_trainable": cost["params_trainable"], "train_seconds": cost["train_seconds"],
            "bytes_stored": cost["bytes_stored"], "train_flops": cost["train_flops"], "found_done": found}


METRICS_KEPT = ("psnr", "ssim", "fid", "kid_mean", "perceptual", "identity_psnr")


def _search_params(trial, spec: StudySpec) -> dict:
    return {key: trial.suggest_categorical(key, values) for key, values in spec.search.items()}


def run_trial(study, trial, spec: StudySpec, preset: str, runs: str | Path, progress: bool) -> str:
    """Run a claimed or asked trial to COMPLETE, PRUNED or FAIL (with the reason recorded).

    Returns "lost" when another worker failed the trial meanwhile (this worker looked dead to it):
    the cell stops here, unrecorded, and its new attempt belongs to whoever claims it.
    """
    import optuna

    try:
        with Heartbeat(study, trial._trial_id) as beat:
            hb.current = beat
            try:
                _run_cells(study, trial, spec, preset, runs, progress)
            finally:
                hb.current = None
        return "complete"
    except (CellLost, optuna.exceptions.UpdateFinishedTrialError) as exc:
        return _lost(trial, exc)
    except StorageGone:
        raise
    except optuna.TrialPruned:
        try:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        except optuna.exceptions.UpdateFinishedTrialError as exc:
            return _lost(trial, exc)
        return "pruned"
    except Exception as exc:  # any failure fails this trial only; KeyboardInterrupt/SystemExit still stop the worker
        try:
            trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}"[:500])
            trial.set_user_attr("traceback", traceback.format_exc()[-2000:])
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError as lost:
            return _lost(trial, lost)
        return "failed"


def _lost(trial, exc) -> str:
    print(f"trial {trial.number}: failed by another worker meanwhile ({str(exc)[:200]}); "
          "stopped here, the cell's next attempt goes on from its checkpoint", file=sys.stderr, flush=True)
    return "lost"


def _run_cells(study, trial, spec: StudySpec, preset: str, runs: str | Path, progress: bool) -> None:
    if spec.sampler == "grid":
        cell = trial.user_attrs.get("cell") or study._storage.get_trial(trial._trial_id).user_attrs["cell"]
        out = evaluate_cell(spec, cell, preset, runs, trial, progress)
        hb.check_lease()  # the cell is still ours: record it (a lost cell's result.json serves its next attempt)
        for k, v in out.items():
            trial.set_user_attr(k, v)
        study.tell(trial, out["value"])
        return
    params = _search_params(trial, spec)
    outs = [evaluate_cell(spec, {**params, "concept": c, "seed": s}, preset, runs, trial, progress)
            for c in spec.concept_names(preset) for s in spec.seeds]
    hb.check_lease()
    # The sampler (TPE, NSGA-II) chooses by this value, so it is the validation split's
    # (studies.validation); the test-split mean stays beside it for the report.
    from e2gan.pipeline.evaluate import val_quality

    cell_concepts = [c for c in spec.concept_names(preset) for _ in spec.seeds]
    value = sum(val_quality(o["run_dir"], [c], spec.metric) for o, c in zip(outs, cell_concepts)) / len(outs)
    trial.set_user_attr("value_test", sum(o["value"] for o in outs) / len(outs))
    trial.set_user_attr("runs", [o["run_dir"] for o in outs])
    for k in ("params_trainable", "train_seconds", *METRICS_KEPT):
        vals = [o[k] for o in outs if o.get(k) is not None]
        trial.set_user_attr(k, sum(vals) / len(vals) if vals else None)
    params_cost = outs[0]["params_trainable"]
    study.tell(trial, [value, params_cost] if spec.sampler == "nsga2" else value)


def _next_trial(study, spec: StudySpec, preset: str):
    from optuna.trial import TrialState

    if spec.sampler == "grid":
        return _claim_waiting(study)
    runs_now = current_runs(spec, preset)
    done = [t for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
            and not superseded(t, runs_now)]
    return study.ask() if len(done) < spec.n_trials else None


def work(spec: StudySpec, storage_url: str, preset: str, runs: str | Path, progress: bool = False,
         max_trials: int | None = None, *, max_retries: int = MAX_RETRIES, patience: float | None = None,
         poll_s: float | None = None, study=None) -> dict:
    """A worker: run trials until every cell is done (grid) or the trial budget is used (search).

    With nothing to claim but cells RUNNING elsewhere it waits (every ``poll_s``, default the
    heartbeat interval), failing and queueing again the cells whose worker stopped beating.
    """
    own = study is None  # a study passed in shares its caller's connections; our own is closed after
    study = load_study(spec, storage_url, preset, patience=patience) if own else _reseed(study, spec)
    try:
        return _work(study, spec, preset, runs, progress, max_trials, max_retries, poll_s)
    finally:
        if own and rdb_of(study._storage) is not None:
            rdb_of(study._storage).engine.dispose()


def _work(study, spec: StudySpec, preset: str, runs, progress: bool, max_trials, max_retries: int, poll_s) -> dict:
    from optuna.trial import TrialState

    poll = float(poll_s if poll_s is not None else max(1, HEARTBEAT_S))
    counts = {"complete": 0, "pruned": 0, "failed": 0}
    lost, waiting_on = 0, None
    while max_trials is None or sum(counts.values()) < max_trials:
        # Take over dead workers' cells before each claim, not only when idle: busy survivors would
        # otherwise leave a killed cell until the rest of the grid is done.
        reconcile(study, spec, preset, max_retries=max_retries, stale_only=True)
        trial = _next_trial(study, spec, preset)
        if trial is None:
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if not running:
                break
            if len(running) != waiting_on:
                print(f"waiting: {len(running)} cell(s) running on other workers; taking over any that stop "
                      f"beating for {GRACE_S} s", file=sys.stderr, flush=True)
                waiting_on = len(running)
            time.sleep(poll)
            continue
        waiting_on = None
        outcome = run_trial(study, trial, spec, preset, runs, progress)
        if outcome == "lost":
            lost += 1
        else:
            counts[outcome] += 1
    return {**counts, **({"lost": lost} if lost else {})}


def status(study, spec: StudySpec, preset: str) -> dict:
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False) if not t.system_attrs.get(DUPLICATE_ATTR)]
    by_state = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    expected = len(spec.grid(preset)) if spec.sampler == "grid" else spec.n_trials
    runs_now = current_runs(spec, preset)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and not superseded(t, runs_now)]
    best = None
    if complete and spec.sampler != "nsga2":
        pick = max if spec.direction == "maximize" else min
        b = pick(complete, key=lambda t: t.value)
        best = {"value": b.value, "cell": b.user_attrs.get("cell", b.params)}
    done_cells = {cell_key(t.user_attrs.get("cell", t.params)) for t in complete}
    return {"study": study.study_name, "expected": expected, "done": len(done_cells) if spec.sampler == "grid" else len(complete),
            "states": by_state, "best": best, "metric": spec.metric, "direction": spec.direction}


def status_line(st: dict) -> str:
    s = st["states"]
    best = f", best {st['metric']} {st['best']['value']:.3f}" if st.get("best") else ""
    return (f"{st['study']}: {st['done']}/{st['expected']} done, {s.get('running', 0)} running, "
            f"{s.get('waiting', 0)} waiting, {s.get('fail', 0)} failed, {s.get('pruned', 0)} pruned{best}")


def worker_command(spec: StudySpec, storage_url: str, preset: str, runs: str | Path,
                   max_retries: int = MAX_RETRIES, patience: float | None = None) -> list[str]:
    """The command line of one `e2gan study worker` process on this study."""
    return [sys.executable, "-m", "e2gan.cli", "study", "worker", spec.path, "--storage", storage_url,
            "--preset", preset, "--runs", str(runs), "--no-progress", "--max-retries", str(max_retries),
            "--storage-patience", str(PATIENCE_S if patience is None else patience),
            *(["--config", spec.user_config] if spec.user_config else [])]


def worker_env(threads: int) -> dict:
    """The environment of a worker process limited to ``threads`` CPU threads."""
    return dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))


def spawn_workers(spec: StudySpec, storage_url: str, preset: str, runs: str | Path, n: int,
                  poll_s: float = 2.0, progress: bool = True, max_retries: int = MAX_RETRIES,
                  patience: float | None = None, study=None) -> list[int]:
    """Start ``n`` worker processes on the study and show progress until they all exit."""
    env = worker_env(max(1, (os.cpu_count() or 1) // n))
    cmd = worker_command(spec, storage_url, preset, runs, max_retries, patience)
    procs = [subprocess.Popen(cmd, env=env) for _ in range(n)]
    study = study or load_study(spec, storage_url, preset, patience=patience)
    last = ""
    while any(p.poll() is None for p in procs):
        line = status_line(status(study, spec, preset))
        if progress and line != last:
            print(line, file=sys.stderr, flush=True)
            last = line
        time.sleep(poll_s)
    return [p.returncode for p in procs]


def export_trials(study, out_path: str | Path) -> Path:
    """All trials as CSV (params, state, values, user attributes) for analysis elsewhere."""
    from e2gan.io import atomic_write_text

    df = study.trials_dataframe(attrs=("number", "state", "values", "params", "user_attrs", "datetime_start",
                                       "datetime_complete"), multi_index=False)
    drop = [c for c in df.columns if c.endswith("traceback")]
    df = df.drop(columns=drop)
    atomic_write_text(out_path, df.to_csv(index=False))
    return Path(out_path)
