"""Studies: every grid cell exactly once, SIGKILL + resume, many workers on SQLite and PostgreSQL."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from e2gan.cli import main
from tests.conftest import MICRO
from tests.studies.postgres import PostgresServer, find_bin, wait_for

SPEC = """
name = "{name}"
title = "micro grid"
metric = "psnr"
concepts = ["hue-60"]
seeds = {seeds}

[config]
data = {{ resolution = 32, crops_per_photo = 2, base_concepts = ["hue-120", "pixelate"], new_concepts = ["hue-60"] }}
model = {{ width = 8, attn_heads = 2, n_tokens = 2 }}
disc = {{ ndf = 8, n_layers = 2 }}
train = {{ steps = 4, batch_size = 4, ckpt_every = 2 }}
adapt = {{ steps = {steps}, pix2pix_ngf = 8, pix2pix_blocks = 2 }}
eval = {{ n_test = 8, n_val = 4 }}

[arms.lora]
adapt = {{ method = "lora" }}

[arms.scratch]
adapt = {{ method = "scratch" }}
"""


def write_spec(tmp_path, name="micro", seeds=(0, 1), steps=2) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(SPEC.format(name=name, seeds=list(seeds), steps=steps))
    return path


def trials(storage: str, name: str):
    import optuna

    study = optuna.load_study(study_name=name, storage=storage)
    return study.get_trials(deepcopy=False)


def cells_by_state(storage, name):
    out: dict[str, list] = {}
    for t in trials(storage, name):
        out.setdefault(t.state.name, []).append(json.dumps(t.user_attrs.get("cell"), sort_keys=True))
    return out


def _env(**extra):
    return dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", **extra)


def test_grid_runs_every_cell_exactly_once(tmp_path, capsys):
    spec = write_spec(tmp_path)
    runs = tmp_path / "runs"
    assert main(["study", "run", str(spec), "--runs", str(runs), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "micro-tiny: 4/4 done" in out and "| lora |" in out
    storage = f"sqlite:///{(runs / 'studies' / 'micro-tiny.db').resolve()}"
    states = cells_by_state(storage, "micro-tiny")
    assert set(states) == {"COMPLETE"} and len(states["COMPLETE"]) == len(set(states["COMPLETE"])) == 4
    # Running again finds nothing to do: no new trial.
    assert main(["study", "run", str(spec), "--runs", str(runs), "--no-progress"]) == 0
    assert len(trials(storage, "micro-tiny")) == 4
    assert main(["study", "export", str(spec), "--runs", str(runs)]) == 0
    csv = (runs / "studies" / "micro-tiny.csv").read_text()
    assert csv.count("\n") == 5 and "user_attrs_run_dir" in csv


def test_an_arm_changed_in_the_spec_runs_again_and_its_old_runs_leave_the_report(tmp_path, capsys):
    # A cell is named by arm, concept and seed; its run by the hash of its whole configuration. A
    # spec edited after a run (here: LoRA's rate) must not keep the earlier runs as that arm's results.
    from studies import runner
    from studies.spec import load_spec
    from studies.summary import trials_frame

    spec_path = write_spec(tmp_path)
    runs = tmp_path / "runs"
    assert main(["study", "run", str(spec_path), "--runs", str(runs), "--no-progress"]) == 0
    storage = f"sqlite:///{(runs / 'studies' / 'micro-tiny.db').resolve()}"
    before = {t.user_attrs["run_dir"] for t in trials(storage, "micro-tiny")}
    spec_path.write_text(spec_path.read_text().replace('adapt = { method = "lora" }',
                                                       'adapt = { method = "lora", lr = 5e-3 }'))
    assert main(["study", "run", str(spec_path), "--runs", str(runs), "--no-progress"]) == 0
    assert "micro-tiny: 4/4 done" in capsys.readouterr().out
    done = trials(storage, "micro-tiny")
    assert len(done) == 6 and {t.state.name for t in done} == {"COMPLETE"}   # the 2 LoRA cells again, scratch not
    spec = load_spec(spec_path)
    frame = trials_frame(runner.load_study(spec, storage, "tiny"), runner.current_runs(spec, "tiny"))
    assert len(frame) == 4 and sorted(frame["arm"]) == ["lora", "lora", "scratch", "scratch"]
    lora_runs = set(frame[frame["arm"] == "lora"]["run_dir"])
    assert not lora_runs & before and set(frame[frame["arm"] == "scratch"]["run_dir"]) <= before
    assert len(trials_frame(runner.load_study(spec, storage, "tiny"))) == 6   # without the spec: every trial


@pytest.mark.parametrize("text,pattern", [
    ('name = "x"\nmetirc = "fid"\n', "unknown key(s) ['metirc']"),
    ('name = "x"\nmetric = "accuracy"\n', "'metric' = 'accuracy'"),
    ('name = "x"\nconcepts = ["no-such-concept"]\n', "unknown concept 'no-such-concept'"),
    ('name = "x"\n[axes]\n"adapt.ranks.neck" = [1, 2]\n', "axis 'adapt.ranks.neck'"),
    ('name = "x"\n[arms.a]\nadapt = { groups = ["neck"] }\n', "unknown layer group(s) ['neck']"),
    ('name = "x"\n[config]\nadapt = { rank = 0 }\n', "'adapt.rank' = 0"),
    ('name = "x"\n[config]\ntrain = { stepz = 3 }\n', "unknown key 'train.stepz'"),
    ('name = "X Y"\n', "'name' = 'X Y'"),
    ('name = "x"\n[greedy]\nmetric = "accuracy"\n', "'greedy.metric' = 'accuracy'"),
    ('name = "x"\n[greedy]\nrounds = 2\n', "unknown key(s) ['rounds'] in [greedy]"),
    ('name = "x"\nlatency = ["phone"]\n', "'latency' = ['phone']"),
])
def test_malformed_spec_is_one_line_exit_2(text, pattern, tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["study", "run", str(path), "--runs", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and pattern in err[0] and str(path) in err[0]


def test_unreachable_storage_is_one_line(tmp_path, capsys):
    spec = write_spec(tmp_path)
    url = "postgresql+psycopg2://user:secret@127.0.0.1:1/none"
    assert main(["study", "status", str(spec), "--storage", url]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot open study storage") and "secret" not in err and "***" in err


def _states_read_only(db: Path, name: str) -> dict[str, list[str]]:
    """Trial states and cells straight from the SQLite file, opened read-only.

    Polling through optuna would open the storage read-write: on a file the study process is
    still creating, that races it to create the tables.
    """
    import sqlite3

    if not db.exists():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
    try:
        rows = con.execute(
            "SELECT t.state, a.value_json FROM trials t JOIN studies s ON s.study_id = t.study_id "
            "LEFT JOIN trial_user_attributes a ON a.trial_id = t.trial_id AND a.key = 'cell' "
            "WHERE s.study_name = ?", (name,)).fetchall()
    except sqlite3.Error:  # tables not there yet, or the file locked for a moment
        return {}
    finally:
        con.close()
    out: dict[str, list[str]] = {}
    for state, cell in rows:
        out.setdefault(state, []).append(json.dumps(json.loads(cell), sort_keys=True) if cell else "")
    return out


def _values(storage: str, name: str) -> dict[str, float]:
    return {json.dumps(t.user_attrs["cell"], sort_keys=True): t.value
            for t in trials(storage, name) if t.state.name == "COMPLETE"}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0])
def test_sigkill_mid_trial_then_resume_loses_and_duplicates_nothing(seed, tmp_path):
    """Killed at a seeded point mid-trial, then resumed: every cell once, nothing partial, and every
    cell's value equal to an uninterrupted study's (the killed cell resumes from its checkpoint)."""
    import random
    import time

    from tests.reliability.common import assert_nothing_partial

    rng = random.Random(seed)
    spec = write_spec(tmp_path, seeds=(0, 1, 2), steps=40)
    runs = tmp_path / "runs"
    db = runs / "studies" / "micro-tiny.db"
    storage = f"sqlite:///{db.resolve()}"
    env = _env(E2GAN_HEARTBEAT_S="1", E2GAN_GRACE_S="3")
    cmd = [sys.executable, "-m", "e2gan.cli", "study", "run", str(spec), "--runs", str(runs), "--no-progress"]
    log = tmp_path / "study.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    after, delay = rng.randint(1, 3), rng.uniform(0.0, 1.0)  # cells complete before the kill; then a delay
    state = {"since": None}

    def mid_trial():
        if proc.poll() is not None:
            return True  # finished or crashed: the assertion below says which
        s = _states_read_only(db, "micro-tiny")
        if state["since"] is None and len(s.get("COMPLETE", [])) >= after and len(s.get("RUNNING", [])) == 1:
            state["since"] = time.monotonic()
        return state["since"] is not None and time.monotonic() - state["since"] >= delay \
            and len(s.get("RUNNING", [])) == 1

    reached = wait_for(mid_trial, timeout=600, interval=0.1)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert reached and proc.returncode == -signal.SIGKILL, \
        f"the study was not killed mid-trial (exit {proc.returncode}): {log.read_text()[-2000:]}"
    killed = cells_by_state(storage, "micro-tiny")["RUNNING"][0]

    time.sleep(4)  # past the grace period, so the dead worker's trial counts as stale
    done = subprocess.run([sys.executable, "-m", "e2gan.cli", "study", "resume", str(spec), "--runs", str(runs),
                           "--no-progress"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    states = cells_by_state(storage, "micro-tiny")
    assert len(states["COMPLETE"]) == len(set(states["COMPLETE"])) == 6
    assert states["FAIL"] == [killed]
    assert "RUNNING" not in states and "WAITING" not in states
    assert_nothing_partial(runs)

    # The same study, never killed, in the same environment: the same value for every cell.
    ref_runs = tmp_path / "ref" / "runs"
    ref = subprocess.run([sys.executable, "-m", "e2gan.cli", "study", "run", str(spec), "--runs", str(ref_runs),
                          "--no-progress"], env=env, capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-2000:]
    ref_storage = f"sqlite:///{(ref_runs / 'studies' / 'micro-tiny.db').resolve()}"
    assert _values(storage, "micro-tiny") == _values(ref_storage, "micro-tiny")


def test_storage_opened_by_two_processes_at_once_retries_the_table_race(tmp_path, monkeypatch):
    """The loser of a race to create a fresh storage's tables retries instead of crashing."""
    import optuna
    import sqlalchemy.exc

    from studies import runner

    real, calls = optuna.storages.RDBStorage, []

    def racing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise sqlalchemy.exc.OperationalError("CREATE TABLE studies", {}, Exception("table studies already exists"))
        return real(*args, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", racing)
    storage = runner.open_storage(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert len(calls) == 2 and storage.get_all_studies() == []


def _four_workers(tmp_path, storage: str, name: str):
    spec = write_spec(tmp_path, name=name, seeds=(0, 1, 2))
    runs = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "e2gan.cli", "study", "run", str(spec), "--runs", str(runs),
                           "--storage", storage, "--workers", "4", "--no-progress"],
                          env=_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    states = cells_by_state(storage, f"{name}-tiny")
    reasons = [t.user_attrs.get("fail_reason") for t in trials(storage, f"{name}-tiny") if t.state.name == "FAIL"]
    assert set(states) == {"COMPLETE"}, f"failed cells' reasons: {reasons}; worker output: {proc.stderr[-3000:]}"
    assert len(states["COMPLETE"]) == len(set(states["COMPLETE"])) == 6


@pytest.mark.slow
def test_four_workers_on_sqlite(tmp_path):
    (tmp_path / "runs" / "studies").mkdir(parents=True)
    _four_workers(tmp_path, f"sqlite:///{tmp_path / 'runs' / 'studies' / 'shared.db'}", "sq")


@pytest.mark.slow
def test_four_workers_on_postgresql(tmp_path):
    url = os.environ.get("E2GAN_TEST_POSTGRES_URL")
    server = None
    if not url:
        if not (find_bin("initdb") and find_bin("pg_ctl")):
            pytest.skip("no PostgreSQL server binary (initdb/pg_ctl); .ci/run installs Debian's postgresql")
        server = PostgresServer().start()
        url = server.url
    try:
        _four_workers(tmp_path, url, "pg")
    finally:
        if server:
            server.stop()


def test_a_trial_raising_any_exception_fails_with_its_reason_and_the_worker_goes_on(tmp_path, monkeypatch):
    """An OSError (or KeyError, ...) in a cell fails that trial with its reason; the worker runs the rest."""
    from studies import runner
    from studies.spec import load_spec

    spec = load_spec(write_spec(tmp_path))
    storage = f"sqlite:///{tmp_path / 'fail.db'}"
    study = runner.load_study(spec, storage, "tiny", create=True)
    assert runner.reconcile(study, spec, "tiny") == 4
    seen = []

    def fake_cell(spec, cell, preset, runs, trial=None, progress=False):
        seen.append(json.dumps(cell, sort_keys=True))
        if len(seen) == 1:
            raise OSError(28, "No space left on device")
        return {"run_dir": str(tmp_path / f"cell-{len(seen)}"), "value": 20.0 + len(seen)}

    monkeypatch.setattr(runner, "evaluate_cell", fake_cell)
    counts = runner.work(spec, storage, "tiny", tmp_path / "runs")
    assert counts == {"complete": 3, "pruned": 0, "failed": 1}
    assert len(seen) == len(set(seen)) == 4  # every cell tried once, none after the failure skipped
    by_cell = {json.dumps(t.user_attrs["cell"], sort_keys=True): t for t in trials(storage, study.study_name)}
    failed = by_cell[seen[0]]
    assert failed.state.name == "FAIL"
    assert failed.user_attrs["fail_reason"] == "OSError: [Errno 28] No space left on device"
    assert "fake_cell" in failed.user_attrs["traceback"]
    assert {by_cell[c].state.name for c in seen[1:]} == {"COMPLETE"}


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_interrupts_still_stop_the_worker(tmp_path, monkeypatch, exc):
    from studies import runner
    from studies.spec import load_spec

    spec = load_spec(write_spec(tmp_path))
    storage = f"sqlite:///{tmp_path / 'stop.db'}"
    study = runner.load_study(spec, storage, "tiny", create=True)
    runner.reconcile(study, spec, "tiny")

    def interrupted(*args, **kwargs):
        raise exc()

    monkeypatch.setattr(runner, "evaluate_cell", interrupted)
    with pytest.raises(exc):
        runner.work(spec, storage, "tiny", tmp_path / "runs")
    assert "FAIL" not in {t.state.name for t in trials(storage, study.study_name)}


def test_a_pruned_cell_is_recorded_pruned_and_not_queued_again(tmp_path, monkeypatch):
    """The pruning callback's TrialPruned ends that trial PRUNED; reconcile does not queue the cell again."""
    import optuna

    from studies import runner
    from studies.spec import load_spec

    spec = load_spec(write_spec(tmp_path))
    storage = f"sqlite:///{tmp_path / 'prune.db'}"
    study = runner.load_study(spec, storage, "tiny", create=True)
    runner.reconcile(study, spec, "tiny")
    calls = []

    def cell(spec, params, preset, runs, trial=None, progress=False):
        calls.append(1)
        if len(calls) == 2:
            raise optuna.TrialPruned("pruned at step 2 on val_psnr")
        return {"run_dir": str(tmp_path / f"cell-{len(calls)}"), "value": 20.0}

    monkeypatch.setattr(runner, "evaluate_cell", cell)
    assert runner.work(spec, storage, "tiny", tmp_path / "runs") == {"complete": 3, "pruned": 1, "failed": 0}
    assert runner.reconcile(study, spec, "tiny") == 0


def test_pruning_callback_reports_and_raises_when_the_trial_should_prune():
    import optuna
    from types import SimpleNamespace

    from lightning_modules.callbacks import OptunaPruning

    reported = []
    trial = SimpleNamespace(report=lambda v, s: reported.append((v, s)), should_prune=lambda: len(reported) >= 2)
    cb = OptunaPruning(trial, "val_psnr")
    trainer = SimpleNamespace(sanity_checking=False, callback_metrics={"val_psnr": 14.5}, current_epoch=0)
    module = SimpleNamespace(gan_step=2)
    cb.on_validation_end(trainer, module)  # first report: go on
    module.gan_step = 4
    with pytest.raises(optuna.TrialPruned):
        cb.on_validation_end(trainer, module)
    assert reported == [(14.5, 2), (14.5, 4)]


def test_a_search_asks_new_parameters_when_each_trial_reloads_the_study(tmp_path, monkeypatch):
    """reproduce runs work(max_trials=1) in a loop, each loading the study anew: the sampler must not
    restart its random stream each time (it once asked for the same ranks on every trial)."""
    from studies import runner
    from studies.spec import load_spec

    path = tmp_path / "search.toml"
    path.write_text('name = "search"\nmetric = "psnr"\nconcepts = ["hue-60"]\nsampler = "nsga2"\nn_trials = 4\n'
                    '[search]\n"adapt.ranks.down" = [1, 2, 4, 8]\n"adapt.ranks.up" = [1, 2, 4, 8]\n')
    spec = load_spec(path)
    storage = f"sqlite:///{tmp_path / 'search.db'}"
    runner.load_study(spec, storage, "tiny", create=True)
    monkeypatch.setattr(runner, "evaluate_cell", lambda spec, cell, *a, **k: {
        "run_dir": str(tmp_path), "value": float(cell["adapt.ranks.down"]), "params_trainable": cell["adapt.ranks.up"]})
    monkeypatch.setattr("e2gan.pipeline.evaluate.val_quality", lambda run_dir, concepts, metric, data_root=None: 0.0)
    for _ in range(4):
        assert runner.work(spec, storage, "tiny", tmp_path / "runs", max_trials=1)["complete"] == 1
    asked = [tuple(sorted(t.params.items())) for t in trials(storage, "search-tiny")]
    assert len(asked) == 4 and len(set(asked)) > 1
