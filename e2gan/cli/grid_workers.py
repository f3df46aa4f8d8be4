"""`reproduce`'s grid cells on several worker processes of this machine, behind the one display.

Each worker is an `e2gan study worker` process with ``threads`` CPU threads; workers claim cells
through the study storage (never one cell twice), and their output goes to a log file under
``<runs>/logs/`` so that the display stays one line. The display's counts, the cells finished and
their times come from the storage, polled; the ETA divides the cells left by the workers.

Measured on 2 CPU cores (``benchmarks.cell_rate``), two one-thread workers finished the main
comparison's cells 0.91x as fast as one two-thread process: one thread trains a cell in 41 s
against 27 s for two, and two cells side by side contend for the same memory bandwidth. So the
default stays one process; more workers are for machines with more cores than a cell can use.
A cell's numbers depend on its thread count (a reduction's rounding), not on which worker ran it.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Callable

from e2gan.progress import RunDisplay, cell_label

OUTCOMES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}


def run_grid_in_workers(spec, url: str, study, preset: str, runs: str | Path, display: RunDisplay, n: int,
                        runs_left: Callable[[], int], *, threads: int | None = None,
                        max_retries: int | None = None, poll_s: float = 1.0) -> list[int]:
    """Run the study's waiting grid cells on ``n`` worker processes until they all exit; returns
    their exit codes. ``runs_left``: the runs this study and the later ones still have to train
    (``e2gan.cli.run_plan``), for the ETA."""
    from optuna.trial import TrialState

    from studies import runner
    from studies.queue import found_done

    threads = threads or max(1, (os.cpu_count() or 1) // n)
    logs = Path(runs) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    cmd = runner.worker_command(spec, url, preset, runs, **({"max_retries": max_retries} if max_retries else {}))
    files = [logs / f"{spec.name}-{preset}-worker-{k}.log" for k in range(n)]
    seen = {t.number for t in study.get_trials(deepcopy=False) if t.state.name in OUTCOMES}
    outs = [open(f, "ab") for f in files]
    procs = [subprocess.Popen(cmd, env=runner.worker_env(threads), stdout=o, stderr=subprocess.STDOUT) for o in outs]
    display.workers, failed = n, 0
    try:
        while True:
            alive = any(p.poll() is None for p in procs)
            trials = study.get_trials(deepcopy=False)
            new = [t for t in trials if t.state.name in OUTCOMES and t.number not in seen]
            for t in sorted(new, key=lambda t: (t.datetime_complete.timestamp() if t.datetime_complete else 0.0,
                                                t.number)):
                seen.add(t.number)
                failed += t.state == TrialState.FAIL
                _update(display, spec, study, preset, failed, runs_left)
                found = found_done(t)  # another study's run: no ETA sample
                display.cell_done(cell_label(t.user_attrs.get("cell", {})), "found done" if found else
                                  OUTCOMES[t.state.name], _seconds(t), timed=not found)
            running = [cell_label(t.user_attrs.get("cell", {})) for t in trials if t.state == TrialState.RUNNING]
            display.detail = ", ".join(running)
            _update(display, spec, study, preset, failed, runs_left)
            if not alive:
                break
            time.sleep(poll_s)
    except BaseException:  # an interrupt stops the workers too; their cells resume on the next run
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            p.wait()
        raise
    finally:
        for o in outs:
            o.close()
        display.workers = 1
    codes = [p.returncode for p in procs]
    for code, f in zip(codes, files):
        if code:
            display.line(f"  a worker exited with code {code}: see {f}")
    return codes


def _update(display: RunDisplay, spec, study, preset: str, failed: int, runs_left: Callable[[], int]) -> None:
    from studies import runner

    st = runner.status(study, spec, preset)
    running = st["states"].get("running", 0)
    display.cells(st["expected"], st["done"], running, failed, runs_left())


def _seconds(trial) -> float:
    if trial.datetime_start and trial.datetime_complete:
        return (trial.datetime_complete - trial.datetime_start).total_seconds()
    return 0.0
