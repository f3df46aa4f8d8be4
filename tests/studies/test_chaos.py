"""Chaos, end to end: four workers on a micro grid SIGKILLed at random (one never replaced) and, on
PostgreSQL, the server restarted while cells train. Nobody runs `resume`: the survivors finish."""
import json
import os
import subprocess
import sys

import pytest

from benchmarks.chaos import _copy_prerequisites, read_trials, run_fleet, write_spec
from tests.studies.postgres import PostgresServer, find_bin

# Eight cells for four processes: a second wave keeps cells training after the first kills and the
# restart, whatever the machine's speed (a kill lands only on a cell seen training for 1 s).
N_SEEDS, STEPS = 4, 80
# Beats every second; a worker silent for 8 s is dead (a fast PostgreSQL restart takes 1-3 s).
ENV = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", E2GAN_HEARTBEAT_S="1", E2GAN_GRACE_S="8")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same grid run once, uninterrupted, by one process: the values every chaos run must match."""
    folder = tmp_path_factory.mktemp("chaos-ref")
    spec = write_spec(folder, "chaos", N_SEEDS, STEPS)
    runs = folder / "runs"
    done = subprocess.run([sys.executable, "-m", "e2gan.cli", "study", "run", str(spec), "--runs", str(runs),
                           "--no-progress"], env=ENV, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_trials(f"sqlite:///{(runs / 'studies' / 'chaos-tiny.db').resolve()}", "chaos-tiny")
    values = {r["cell"]: r["value"] for r in rows if r["state"] == "COMPLETE"}
    assert len(values) == 2 * N_SEEDS
    return runs, values


def _fleet(tmp_path, reference, url, restart=None):
    ref_runs, values = reference
    runs = tmp_path / "runs"
    _copy_prerequisites(ref_runs, runs)  # data and base model: the chaos is in the cells
    spec = write_spec(tmp_path, "chaos", N_SEEDS, STEPS)
    # max_retries above max_kills: all three kills may land on one cell, which must still finish
    # (at 3 it is given up after its third failure, as a cell that keeps failing should be).
    res = run_fleet(spec, url, runs, tmp_path / "logs", workers=4, kill_every=1.5, max_kills=3, restart=restart,
                    seed=1, env=ENV, timeout=600, max_retries=4)
    logs = "\n".join(f"--- {kind} (exit {rc})\n{text[-1500:]}" for kind, rc, text in res["outputs"])
    logs += "\n--- timeline (s)\n" + "\n".join(map(str, res["timeline"]))
    landed = [k for k in res["kills"] if k["interrupted"]]
    assert len(landed) >= 2, f"too few kills landed on running cells: {res['kills']}\n{logs}"
    # Survivors exit 0 by themselves; the killed ones died by SIGKILL; nobody printed a traceback.
    assert all(rc in (0, -9) for _, rc, _ in res["outputs"]), logs
    assert [rc for _, rc, _ in res["outputs"]].count(-9) == len(res["kills"]), logs
    assert not any("Traceback" in text for _, _, text in res["outputs"]), logs
    # Every cell COMPLETE exactly once, with the uninterrupted run's value; nothing left RUNNING.
    states = {r["state"] for r in res["rows"]}
    assert states <= {"COMPLETE", "FAIL"}, (states, logs)
    assert sorted(res["complete"]) == sorted(values), logs
    assert {r["cell"]: r["value"] for r in res["rows"] if r["state"] == "COMPLETE"} == values
    assert res["twice_at_once"] == [] and res["duplicated"] == []
    # Each interrupted attempt is FAIL, with the dead worker and its last beat in the reason (a kill
    # that came just after its worker recorded the cell leaves that trial COMPLETE).
    by_number = {r["number"]: r for r in res["rows"]}
    assert all(by_number[k["trial"]]["state"] == "COMPLETE" for k in res["kills"] if not k["interrupted"])
    for kill in landed:
        row = by_number[kill["trial"]]
        assert row["state"] == "FAIL", (kill, row)
        assert f"pid {kill['pid']} stopped beating: last beat" in row["fail_reason"], row
    return res


@pytest.mark.slow
def test_chaos_on_sqlite(tmp_path, reference):
    url = f"sqlite:///{tmp_path / 'chaos.db'}"
    _fleet(tmp_path, reference, url)


@pytest.mark.slow
def test_chaos_on_postgresql_with_a_server_restart(tmp_path, reference):
    if not (find_bin("initdb") and find_bin("pg_ctl")):
        pytest.skip("no PostgreSQL server binary (initdb/pg_ctl); .ci/run installs Debian's postgresql")
    server = PostgresServer().start()
    try:
        res = _fleet(tmp_path, reference, server.url, restart=lambda: server.restart(down_s=2.0))
    finally:
        server.stop()
    assert res["restart"] is not None and res["restart"]["running"] >= 1
    # Down for 2 s while workers beat every second: the outage was seen, and every process that lost
    # the storage got it back (and went on: the exit codes above).
    said = [(rc, text) for _, rc, text in res["outputs"] if "storage lost:" in text]
    assert said and all("postgresql+psycopg2://e2gan@127.0.0.1" in t for _, t in said)
    assert all(t.rfind("storage back:") > t.rindex("storage lost:") for rc, t in said if rc == 0)  # killed: maybe not
