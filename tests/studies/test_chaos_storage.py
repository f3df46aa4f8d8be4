"""Storage outages, heartbeats and takeovers, fast: flaky storages and forced races on SQLite."""
import json
import re

import pytest
import sqlalchemy.exc

from e2gan.cli import main
from tests.studies.test_runner import trials, write_spec


def _down(n):
    """A call that fails ``n`` times as a dropped PostgreSQL connection does, then answers."""
    calls = []

    def call():
        calls.append(1)
        if len(calls) <= n:
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("the database system is shutting down"))
        return "ok"
    return call, calls


def test_an_outage_prints_one_line_lost_and_one_back(capsys, monkeypatch):
    from studies import storage

    monkeypatch.setattr(storage, "BACKOFF_START_S", 0.01)
    outage = storage.Outage(storage.redact("postgresql://lab:hunter2@db:5432/studies"), patience=30)
    call, calls = _down(4)
    assert storage.retry(outage, call) == "ok" and len(calls) == 5
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "hunter2" not in "".join(err)
    assert err[0].startswith("storage lost: postgresql://lab:***@db:5432/studies (OperationalError")
    assert err[1].startswith("storage back: postgresql://lab:***@db:5432/studies after")


def test_patience_exhausted_is_one_line_naming_the_redacted_storage(monkeypatch):
    from studies import storage

    monkeypatch.setattr(storage, "BACKOFF_START_S", 0.01)
    outage = storage.Outage(storage.redact("postgresql://lab:hunter2@db/studies"), patience=0.2)
    call, _ = _down(10 ** 6)
    with pytest.raises(storage.StorageGone) as info:
        storage.retry(outage, call)
    assert str(info.value).startswith("study storage unreachable for 0 s (postgresql://lab:***@db/studies)")


def test_errors_that_are_not_outages_are_not_retried():
    from studies import storage

    outage = storage.Outage("x", patience=30)
    with pytest.raises(ValueError):
        storage.retry(outage, lambda: (_ for _ in ()).throw(ValueError("bad value")))
    assert outage.since is None


def test_a_committed_write_whose_reply_was_lost_is_not_an_error(tmp_path, monkeypatch):
    """A COMPLETE that reached the database before the connection dropped: the retry finds it done."""
    import optuna

    from studies import runner, storage
    from studies.spec import load_spec

    monkeypatch.setattr(storage, "BACKOFF_START_S", 0.01)
    spec = load_spec(write_spec(tmp_path))
    study = runner.load_study(spec, f"sqlite:///{tmp_path / 's.db'}", "tiny", create=True)
    runner.reconcile(study, spec, "tiny")
    trial = runner._claim_waiting(study)
    inner = study._storage.inner
    real = inner.set_trial_state_values

    def commit_then_drop(trial_id, state, values=None):
        real(trial_id, state, values)
        inner.set_trial_state_values = real
        raise sqlalchemy.exc.OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))

    inner.set_trial_state_values = commit_then_drop
    study.tell(trial, 21.5)
    assert study._storage.get_trial(trial._trial_id).state == optuna.trial.TrialState.COMPLETE


def test_worker_exits_2_with_one_line_when_the_storage_stays_away(tmp_path, monkeypatch, capsys):
    import optuna

    from studies import runner, storage
    from studies.spec import load_spec

    monkeypatch.setattr(storage, "BACKOFF_START_S", 0.01)
    path = write_spec(tmp_path)
    url = f"sqlite:///{tmp_path / 'away.db'}"
    runner.reconcile(runner.load_study(load_spec(path), url, "tiny", create=True), load_spec(path), "tiny")

    def away(self, *a, **k):
        raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("could not connect to server"))

    monkeypatch.setattr(optuna.storages.RDBStorage, "_get_trials", away)
    assert main(["study", "worker", str(path), "--storage", url, "--storage-patience", "0.3", "--runs",
                 str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert [line.split(":")[0] for line in err] == ["storage lost", "error"]
    assert err[1].startswith(f"error: study storage unreachable for 0 s ({url})")


def test_the_heartbeat_thread_survives_errors_and_outages(tmp_path, monkeypatch, capsys):
    """An error in a beat ends no thread: a still-training cell must never look dead."""
    import time

    from studies import heartbeat, runner, storage
    from studies.spec import load_spec

    monkeypatch.setattr(storage, "BACKOFF_START_S", 0.01)
    spec = load_spec(write_spec(tmp_path))
    study = runner.load_study(spec, f"sqlite:///{tmp_path / 'beat.db'}", "tiny", create=True)
    runner.reconcile(study, spec, "tiny")
    trial = runner._claim_waiting(study)
    inner, beats = study._storage.inner, []
    real = inner.record_heartbeat
    faults = iter([RuntimeError("boom"), sqlalchemy.exc.OperationalError("UPDATE", {}, Exception("gone away"))])

    def flaky(trial_id):
        fault = next(faults, None)
        if fault is not None:
            raise fault
        beats.append(time.monotonic())
        real(trial_id)

    inner.record_heartbeat = flaky
    with heartbeat.Heartbeat(study, trial._trial_id, interval=1.0, grace=30) as beat:
        time.sleep(3.5)
        assert beat._thread.is_alive() and beat.lost is None and beat.gone is None
    assert len(beats) >= 2
    err = capsys.readouterr().err
    assert "RuntimeError: boom; still beating" in err and "storage back:" in err


@pytest.mark.parametrize("when", ["mid-training", "after-training"])
def test_a_worker_whose_trial_was_failed_by_another_stops_that_cell_and_goes_on(when, tmp_path, monkeypatch):
    """The race a partitioned worker meets: another worker finds its beat stale and fails its trial
    while it still runs the cell. It stops that cell (training or not), records nothing on the
    failed trial, and goes on; the cell's new attempt runs exactly once."""
    import time

    from studies import heartbeat, runner
    from studies.spec import load_spec

    monkeypatch.setattr(heartbeat, "HEARTBEAT_S", 1)
    spec = load_spec(write_spec(tmp_path))
    storage = f"sqlite:///{tmp_path / 'race.db'}"
    runner.reconcile(runner.load_study(spec, storage, "tiny", create=True), spec, "tiny")
    other = runner.load_study(spec, storage, "tiny")  # the other worker, with its own connection
    runs, steps_after_fail = [], []

    def cell(spec, params, preset, runs_dir, trial=None, progress=False):
        runs.append(json.dumps(params, sort_keys=True))
        if len(runs) == 1:
            assert runner.reconcile(other, spec, "tiny", stale_only=True, grace=-5) == 1  # the other one takes over
            assert other.trials[trial.number].state.name == "FAIL"
            if when == "mid-training":
                end = time.monotonic() + 10
                while time.monotonic() < end:  # training steps, each checking the lease
                    heartbeat.check_lease()
                    steps_after_fail.append(1)
                    time.sleep(0.05)
                raise AssertionError("training went on after the trial was failed by another worker")
        return {"run_dir": str(tmp_path / f"cell-{len(runs)}"), "value": 20.0}

    monkeypatch.setattr(runner, "evaluate_cell", cell)
    counts = runner.work(spec, storage, "tiny", tmp_path / "runs")
    assert counts == {"complete": 4, "pruned": 0, "failed": 0, "lost": 1}
    assert len(steps_after_fail) < 40  # stopped within about one heartbeat
    by_state: dict[str, list] = {}
    for t in trials(storage, "micro-tiny"):
        by_state.setdefault(t.state.name, []).append(t)
    assert len(by_state["COMPLETE"]) == len({json.dumps(t.user_attrs["cell"]) for t in by_state["COMPLETE"]}) == 4
    [failed] = by_state["FAIL"]
    assert json.dumps(failed.user_attrs["cell"], sort_keys=True) == runs[0] == runs[-1]
    assert "stopped beating" in failed.user_attrs["fail_reason"] and "value" not in failed.user_attrs
    assert "run_dir" not in failed.user_attrs


def test_two_workers_queueing_the_same_attempt_run_it_once(tmp_path, monkeypatch):
    """Queueing is not atomic across workers: a second entry for one attempt is set aside at claim."""
    from studies import runner
    from studies.spec import load_spec

    spec = load_spec(write_spec(tmp_path))
    storage = f"sqlite:///{tmp_path / 'twice.db'}"
    a = runner.load_study(spec, storage, "tiny", create=True)
    b = runner.load_study(spec, storage, "tiny")
    assert runner.reconcile(a, spec, "tiny") == 4
    for t in a.get_trials(deepcopy=False):  # b queued the same attempts at the same moment
        b.enqueue_trial({}, user_attrs=dict(t.user_attrs), skip_if_exists=False)
    ran = []
    monkeypatch.setattr(runner, "evaluate_cell", lambda spec, cell, *a, **k: ran.append(json.dumps(cell)) or {
        "run_dir": str(tmp_path), "value": 1.0})
    assert runner.work(spec, storage, "tiny", tmp_path / "runs") == {"complete": 4, "pruned": 0, "failed": 0}
    assert len(ran) == len(set(ran)) == 4
    states = [t.state.name for t in trials(storage, "micro-tiny")]
    assert states.count("COMPLETE") == 4 and states.count("FAIL") == 4
    assert runner.reconcile(a, spec, "tiny") == 0  # the set-aside entries count as no failed attempt


def test_status_lists_workers_stale_and_retried_cells(tmp_path, monkeypatch, capsys):
    from studies import runner
    from studies.heartbeat import reap_stale
    from studies.spec import load_spec

    path = write_spec(tmp_path)
    spec = load_spec(path)
    storage = f"sqlite:///{tmp_path / 'st.db'}"
    study = runner.load_study(spec, storage, "tiny", create=True)
    runner.reconcile(study, spec, "tiny")
    first = runner._claim_waiting(study)
    assert reap_stale(study, grace=-5) == [first.number]  # a dead worker's attempt, failed with its reason
    assert runner.reconcile(study, spec, "tiny", stale_only=True) == 0  # fresh, failed by another: not ours
    assert runner.reconcile(study, spec, "tiny") == 1  # the coordinator queues it again
    runner._claim_waiting(study)  # a live worker holds the next cell
    assert main(["study", "status", str(path), "--storage", storage]) == 0
    out = capsys.readouterr().out
    assert "workers holding cells:" in out and re.search(r"pid \d+: trial \d+ \(arm=\w+ concept=hue-60 seed=\d\), "
                                                         r"last beat \d+ s ago", out)
    assert "cells retried:" in out and "2 attempts, now" in out and "attempt 1: worker " in out
    assert "stopped beating" in out


def test_a_cell_that_keeps_failing_is_given_up_after_max_retries(tmp_path, monkeypatch):
    from studies import runner
    from studies.spec import load_spec

    spec = load_spec(write_spec(tmp_path))
    storage = f"sqlite:///{tmp_path / 'retries.db'}"
    study = runner.load_study(spec, storage, "tiny", create=True)
    monkeypatch.setattr(runner, "evaluate_cell", lambda spec, cell, *a, **k: (_ for _ in ()).throw(
        FloatingPointError("diverged")) if cell["arm"] == "lora" and cell["seed"] == 0 else {
        "run_dir": str(tmp_path), "value": 1.0})
    for _ in range(4):  # run / resume again and again: the failing cell runs max_retries times, no more
        runner.reconcile(study, spec, "tiny", max_retries=2)
        runner.work(spec, storage, "tiny", tmp_path / "runs", max_retries=2)
    states = [(t.user_attrs["cell"]["arm"], t.user_attrs["cell"]["seed"], t.state.name) for t in study.get_trials()]
    assert states.count(("lora", 0, "FAIL")) == 2 and len(states) == 5
    assert sorted(t.user_attrs["attempt"] for t in study.get_trials() if t.state.name == "FAIL") == [1, 2]


def test_max_retries_is_a_spec_key_the_command_line_overrides(tmp_path, monkeypatch, capsys):
    from studies import runner

    path = write_spec(tmp_path)
    path.write_text(path.read_text().replace('metric = "psnr"', 'metric = "psnr"\nmax_retries = 1'))
    storage = f"sqlite:///{tmp_path / 'spec-retries.db'}"
    monkeypatch.setattr(runner, "prepare", lambda *a, **k: None)
    monkeypatch.setattr(runner, "evaluate_cell", lambda spec, cell, *a, **k: (_ for _ in ()).throw(
        FloatingPointError("diverged")) if cell["arm"] == "lora" and cell["seed"] == 0 else {
        "run_dir": str(tmp_path), "value": 1.0, "psnr": 1.0})
    args = ["study", "run", str(path), "--storage", storage, "--runs", str(tmp_path / "runs"), "--no-progress"]
    assert main(args) == 0 and main(args) == 0  # the spec's max_retries = 1: the second run queues nothing
    assert [t.state.name for t in trials(storage, "micro-tiny")].count("FAIL") == 1
    assert main([*args, "--max-retries", "2"]) == 0  # the command line raises it: one more attempt
    assert [t.state.name for t in trials(storage, "micro-tiny")].count("FAIL") == 2
    bad = tmp_path / "bad.toml"
    bad.write_text(path.read_text().replace("max_retries = 1", "max_retries = 0"))
    capsys.readouterr()
    assert main(["study", "run", str(bad), "--runs", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'max_retries' = 0" in err[0] and "an integer >= 1" in err[0]


def test_a_claim_whose_reply_was_lost_is_taken_over_after_the_grace_period(tmp_path):
    """RUNNING with no heartbeat (the claim committed, its reply lost, the claimer moved on): stale too."""
    import sqlite3

    import optuna

    from studies import heartbeat, runner
    from studies.spec import load_spec

    spec = load_spec(write_spec(tmp_path))
    db = tmp_path / "nobeat.db"
    study = runner.load_study(spec, f"sqlite:///{db}", "tiny", create=True)
    runner.reconcile(study, spec, "tiny")
    waiting = study.get_trials(deepcopy=False)[0]
    assert study._storage.set_trial_state_values(waiting._trial_id, optuna.trial.TrialState.RUNNING)
    assert heartbeat.reap_stale(study, grace=60) == []  # just claimed: not stale yet
    with sqlite3.connect(db) as con:  # two minutes pass
        con.execute("UPDATE trials SET datetime_start = datetime(datetime_start, '-120 seconds') WHERE trial_id = ?",
                    (waiting._trial_id,))
    assert heartbeat.reap_stale(study, grace=60) == [waiting.number]
    reason = study._storage.get_trial(waiting._trial_id).user_attrs["fail_reason"]
    assert "no beat since it was claimed" in reason


def test_a_cell_finished_while_the_storage_is_away_is_recorded_when_it_returns(tmp_path, monkeypatch, capsys):
    """Training done, the storage gone at the moment of recording: the worker waits and records it, once."""
    import optuna

    from studies import runner, storage
    from studies.spec import load_spec

    monkeypatch.setattr(storage, "BACKOFF_START_S", 0.01)
    spec = load_spec(write_spec(tmp_path))
    url = f"sqlite:///{tmp_path / 'late.db'}"
    runner.reconcile(runner.load_study(spec, url, "tiny", create=True), spec, "tiny")
    real, refused = optuna.storages.RDBStorage.set_trial_state_values, []

    def away_when_recording(self, trial_id, state, values=None):
        if state == optuna.trial.TrialState.COMPLETE and len(refused) < 5:
            refused.append(trial_id)
            raise sqlalchemy.exc.OperationalError("UPDATE trials", {}, Exception("the database system is shutting down"))
        return real(self, trial_id, state, values)

    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_state_values", away_when_recording)
    ran = []
    monkeypatch.setattr(runner, "evaluate_cell", lambda spec, cell, *a, **k: ran.append(1) or {
        "run_dir": str(tmp_path), "value": 20.0})
    assert runner.work(spec, url, "tiny", tmp_path / "runs") == {"complete": 4, "pruned": 0, "failed": 0}
    assert len(ran) == 4 and len(refused) == 5 and len(set(refused)) == 1
    assert [t.state.name for t in trials(url, "micro-tiny")] == ["COMPLETE"] * 4
    err = capsys.readouterr().err
    # (only this one call fails here, so the heartbeat's calls may say "back" in between)
    assert "storage lost:" in err and err.strip().splitlines()[-1].startswith("storage back:")


def test_a_worker_starting_while_the_server_restarts_waits_for_it(tmp_path, monkeypatch, capsys):
    """Opening a storage that is shutting down, then refusing, then back: one lost and one back line."""
    import optuna

    from studies import runner

    real, answers = optuna.storages.RDBStorage, iter(["the database system is shutting down", "Connection refused"])

    def restarting(*args, **kwargs):
        msg = next(answers, None)
        if msg is not None:
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception(msg))
        return real(*args, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", restarting)
    storage = runner.open_storage(f"sqlite:///{tmp_path / 'restart.db'}", patience=30)
    assert storage.get_all_studies() == []
    err = capsys.readouterr().err.strip().splitlines()
    assert [line.split(":")[0] for line in err] == ["storage lost", "storage back"]


CLAIM_ALL = """
import json, sys
import optuna
from studies.queue import _claim_waiting
study = optuna.load_study(study_name="q", storage=sys.argv[1])
got = []
while (t := _claim_waiting(study)) is not None:
    got.append(t._trial_id)
print(json.dumps(got))
"""


def test_workers_claiming_at_once_never_claim_one_trial_twice(tmp_path):
    """On SQLite a read-then-write claim let two workers both take a trial (and train one run
    directory twice at once); the claim is one conditional UPDATE, so each trial has one owner."""
    import subprocess
    import sys
    from pathlib import Path

    import optuna

    url = f"sqlite:///{tmp_path / 'q.db'}"
    study = optuna.create_study(study_name="q", storage=url)
    for i in range(60):
        study.enqueue_trial({}, user_attrs={"i": i})
    root = Path(__file__).resolve().parents[2]
    procs = [subprocess.Popen([sys.executable, "-c", CLAIM_ALL, url], cwd=root, stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    claimed = []
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0
        claimed += json.loads(out.strip().splitlines()[-1])
    assert sorted(claimed) == sorted(t._trial_id for t in study.get_trials(deepcopy=False))
