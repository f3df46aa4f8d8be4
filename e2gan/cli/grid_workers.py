"""`reproduce`'s grid cells on several worker processes of this machine, behind the one display.

Each worker is an `e2gan study worker` process with ``threads`` CPU threads; workers claim cells
through the study storage (never one cell twice), and their output goes to a log file under
``<runs>/logs/`` so that the display stays one line. The display's counts, the cells finished and
their times come from the storage, polled; the ETA divides the cells left by the workers.

Why: on 2 CPU cores a 100-step cell's small convolutions use a second thread poorly (1 thread:
41 s of training, 2 threads: 27 s), so two one-thread workers finish more cells per minute than
one two-thread process (measured in ``benchmarks.cell_rate``). A cell's numbers depend on its
thread count (a reduction's rounding), not on which worker ran it or next to what.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from e2gan.progress import RunDisplay, cell_label

OUTCOMES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}


def auto_workers(cfg, cores: int | None = None) -> int:
    """Worker processes for ``reproduce --workers auto``: two one-thread workers on a CPU with at
    least 2 cores (the measured gain), one process otherwise (an accelerator, or a single core)."""
    cores = cores or os.cpu_count() or 1
    return 2 if cfg.train.accelerator == "cpu" and cores >= 2 else 1


def run_grid_in_workers(spec, url: str, study, preset: str, runs: str | Path, display: RunDisplay, n: int,
                        later: int, *, threads: int | None = None, max_retries: int | None = None,
                        poll_s: float = 1.0) -> list[int]:
    """Run the study's waiting grid cells on ``n`` worker processes until they all exit; returns
    their exit codes. ``later``: cells of the studies after this one (for the ETA)."""
    from optuna.trial import TrialState

    from studies import runner

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
                _update(display, spec, study, preset, failed, later)
                display.cell_done(cell_label(t.user_attrs.get("cell", {})), OUTCOMES[t.state.name], _seconds(t))
            running = [cell_label(t.user_attrs.get("cell", {})) for t in trials if t.state == TrialState.RUNNING]
            display.detail = ", ".join(running)
            _update(display, spec, study, preset, failed, later)
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


def _update(display: RunDisplay, spec, study, preset: str, failed: int, later: int) -> None:
    from studies import runner
    from e2gan.cli.reproduce import remaining_cells

    st = runner.status(study, spec, preset)
    display.cells(st["expected"], st["done"], st["states"].get("running", 0), failed,
                  remaining_cells(st, True) + later)


def _seconds(trial) -> float:
    if trial.datetime_start and trial.datetime_complete:
        return (trial.datetime_complete - trial.datetime_start).total_seconds()
    return 0.0
