"""Chaos: a fleet of study workers on one storage, killed at random and cut off from it once.

    python -m benchmarks.chaos --seconds 120 [--workers 8] [--kill-every 10]

The fleet is one coordinator (`e2gan study run`, never killed) and ``workers - 1`` processes of
`e2gan study worker`. Every ~``kill_every`` seconds a worker holding a RUNNING cell is SIGKILLed
(the first one killed is never replaced, the rest are), and once the storage is restarted while
cells train. Nobody resumes anything by hand: the survivors must finish the grid. Measured: cells
completed per minute against the same grid without faults, cells lost (grid cells not COMPLETE
when the fleet has exited), cells recorded COMPLETE twice, and cells seen RUNNING twice at once.
The same harness drives the slow chaos tests (tests/studies/test_chaos.py).
"""
from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

TITLE = "Chaos: workers killed every ~10 s and one storage restart, no manual resume"

SPEC = """
name = "{name}"
title = "chaos micro grid"
metric = "psnr"
concepts = ["hue-60"]
seeds = {seeds}

[config]
data = {{ resolution = 32, crops_per_photo = 2, base_concepts = ["hue-120", "pixelate"], new_concepts = ["hue-60"] }}
model = {{ width = 8, attn_heads = 2, n_tokens = 2 }}
disc = {{ ndf = 8, n_layers = 2 }}
train = {{ steps = 4, batch_size = 4, ckpt_every = 8 }}
adapt = {{ steps = {steps}, pix2pix_ngf = 8, pix2pix_blocks = 2 }}
eval = {{ n_test = 8, n_val = 4 }}

[arms.lora]
adapt = {{ method = "lora" }}

[arms.scratch]
adapt = {{ method = "scratch" }}
"""


def write_spec(folder: Path, name: str, n_seeds: int, steps: int) -> Path:
    path = Path(folder) / f"{name}.toml"
    path.write_text(SPEC.format(name=name, seeds=list(range(n_seeds)), steps=steps))
    return path


def read_trials(url: str, study_name: str) -> list[dict] | None:
    """Every trial's state, cell and worker, read straight from the tables; None while unreachable."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    q = sqlalchemy.text(
        "SELECT t.trial_id, t.number, t.state, "
        "(SELECT value_json FROM trial_user_attributes a WHERE a.trial_id = t.trial_id AND a.key = 'cell'), "
        "(SELECT value_json FROM trial_system_attributes s WHERE s.trial_id = t.trial_id AND s.key = 'e2gan:worker'), "
        "(SELECT value_json FROM trial_user_attributes a WHERE a.trial_id = t.trial_id AND a.key = 'fail_reason'), "
        "(SELECT value FROM trial_values v WHERE v.trial_id = t.trial_id AND v.objective = 0) "
        "FROM trials t JOIN studies s ON s.study_id = t.study_id WHERE s.study_name = :name ORDER BY t.trial_id")
    try:
        with engine.connect() as con:
            rows = con.execute(q, {"name": study_name}).fetchall()
    except sqlalchemy.exc.SQLAlchemyError:
        return None
    finally:
        engine.dispose()
    return [{"trial_id": r[0], "number": r[1], "state": str(r[2]).split(".")[-1],
             "cell": json.dumps(json.loads(r[3]), sort_keys=True) if r[3] else "",
             "worker": json.loads(r[4]) if r[4] else {}, "fail_reason": json.loads(r[5]) if r[5] else None,
             "value": r[6]} for r in rows]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "e2gan.cli", *args]


def run_fleet(spec: Path, url: str, runs: Path, logs: Path, *, workers: int = 4, kill_every: float | None = None,
              kill_for: float = math.inf, max_kills: int | None = None, restart=None, seed: int = 0,
              env: dict | None = None, timeout: float = 600, max_retries: int = 3,
              patience: float = 600, min_running_s: float = 1.0) -> dict:
    """Run the fleet until every process exits; kill and restart as asked. Returns what happened.

    A kill lands only on a worker whose cell has been RUNNING for ``min_running_s`` (it is training,
    not starting up), so kills are tied to the cells' progress rather than to the machine's speed."""
    from studies.spec import load_spec

    name = f"{load_spec(spec).name}-tiny"
    rng = random.Random(seed)
    env = dict(os.environ if env is None else env)
    logs.mkdir(parents=True, exist_ok=True)
    common = ["--storage", url, "--runs", str(runs), "--no-progress", "--max-retries", str(max_retries),
              "--storage-patience", str(patience)]
    procs: list[tuple[str, subprocess.Popen]] = []

    def start(kind: str) -> None:
        log = (logs / f"{len(procs):02d}-{kind}.log").open("wb")
        cmd = _cli("study", "run" if kind == "coordinator" else "worker", str(spec), *common)
        procs.append((kind, subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)))

    t0 = time.monotonic()
    start("coordinator")
    while not read_trials(url, name):  # the coordinator queues the grid first
        if procs[0][1].poll() is not None or time.monotonic() - t0 > timeout:
            break
        time.sleep(0.2)
    for _ in range(workers - 1):
        start("worker")
    kills, restarted, twice_at_once = [], None, set()
    timeline: dict[int, dict] = {}  # trial number -> when it was first seen RUNNING and when it ended
    next_kill = time.monotonic() + (kill_every * rng.uniform(0.5, 1.5) if kill_every else math.inf)
    while any(p.poll() is None for _, p in procs) and time.monotonic() - t0 < timeout:
        rows = read_trials(url, name) or []
        running = [r for r in rows if r["state"] == "RUNNING"]
        seen = [r["cell"] for r in running]
        twice_at_once |= {c for c in seen if seen.count(c) > 1}
        now = time.monotonic()
        for r in rows:
            seen_at = timeline.setdefault(r["number"], {"cell": r["cell"]})
            if r["state"] == "RUNNING":
                seen_at.setdefault("running_s", round(now - t0, 1))
            elif r["state"] in ("COMPLETE", "FAIL") and "running_s" in seen_at:
                seen_at.setdefault(r["state"].lower() + "_s", round(now - t0, 1))
        if now >= next_kill and now - t0 < kill_for and (max_kills is None or len(kills) < max_kills):
            held = {r["worker"].get("pid"): r for r in running
                    if now - t0 - timeline[r["number"]].get("running_s", math.inf) >= min_running_s}
            targets = [(i, p) for i, (kind, p) in enumerate(procs) if kind == "worker" and p.poll() is None
                       and p.pid in held]
            if targets:
                i, p = rng.choice(targets)
                p.send_signal(signal.SIGKILL)
                p.wait()
                # The snapshot is up to one poll old: the worker may have recorded its cell COMPLETE
                # just before it died. Read again now that it is dead: RUNNING means it interrupted.
                after = {r["number"]: r["state"] for r in read_trials(url, name) or []}
                kills.append({"pid": p.pid, "trial": held[p.pid]["number"], "cell": held[p.pid]["cell"],
                              "at_s": round(now - t0, 1),
                              "interrupted": after.get(held[p.pid]["number"], "RUNNING") == "RUNNING"})
                if len(kills) > 1:  # the first one killed is never replaced
                    start("worker")
                next_kill = now + kill_every * rng.uniform(0.5, 1.5)
        if restart is not None and restarted is None and kills and running:
            t_r = time.monotonic()
            restart()
            restarted = {"at_s": round(t_r - t0, 1), "down_s": round(time.monotonic() - t_r, 1),
                         "running": len(running)}
        time.sleep(0.25)
    for _, p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    wall = time.monotonic() - t0
    rows = read_trials(url, name) or []
    outputs = [(kind, p.returncode, (logs / f"{i:02d}-{kind}.log").read_text(errors="replace"))
               for i, (kind, p) in enumerate(procs)]
    complete = [r["cell"] for r in rows if r["state"] == "COMPLETE"]
    return {"wall_s": wall, "rows": rows, "kills": kills, "restart": restarted, "outputs": outputs,
            "timeline": [dict(trial=n, **t) for n, t in sorted(timeline.items()) if "running_s" in t],
            "twice_at_once": sorted(twice_at_once), "complete": complete,
            "duplicated": sorted({c for c in complete if complete.count(c) > 1})}


def _copy_prerequisites(src: Path, dst: Path) -> None:
    """The data and base model of a finished run folder, so a second fleet starts training at once."""
    import shutil

    dst.mkdir(parents=True, exist_ok=True)
    for p in src.iterdir():
        if p.name == "data" or p.name.startswith("base-"):
            shutil.copytree(p, dst / p.name, dirs_exist_ok=True)


def chaos_bench(seconds: float, work: Path, workers: int = 8, kill_every: float = 10.0, seed: int = 0,
                log=print) -> dict:
    """The faultless grid, then the same grid under kills and one PostgreSQL restart."""
    from tests.studies.postgres import PostgresServer, find_bin

    if not (find_bin("initdb") and find_bin("pg_ctl")):
        raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl): install Debian's postgresql")
    # The grid must outlast the kills: 8 workers on 2 cores finished 31 cells/min without faults
    # (2026-12-04), so one cell per 2 s asked (two arms of seconds/4 seeds) keeps the fleet busy,
    # and kills landing on training cells, for the whole duration.
    n_seeds = max(workers, round(seconds / 4))
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", E2GAN_HEARTBEAT_S="2", E2GAN_GRACE_S="10")
    out = {"seconds_asked": seconds, "workers": workers, "cells": 2 * n_seeds, "kill_every_s": kill_every,
           "heartbeat_s": 2, "grace_s": 10}
    server = PostgresServer().start()
    try:
        for arm in ("clean", "chaos"):
            folder = work / f"chaos-{arm}"
            folder.mkdir(parents=True, exist_ok=True)
            spec = write_spec(folder, f"chaos{arm}", n_seeds, steps=40)
            if arm == "chaos":
                _copy_prerequisites(work / "chaos-clean" / "runs", folder / "runs")
            else:  # prerequisites built before the clock starts, as `run` does before its workers
                from studies.runner import prepare
                from studies.spec import load_spec

                prepare(load_spec(spec), "tiny", folder / "runs", progress=False)
            log(f"[bench] chaos: {arm} fleet of {workers} on {2 * n_seeds} cells")
            res = run_fleet(spec, server.url, folder / "runs", folder / "logs", workers=workers,
                            kill_every=kill_every if arm == "chaos" else None, kill_for=seconds,
                            restart=server.restart if arm == "chaos" else None, seed=seed, env=env,
                            timeout=max(1800, 6 * seconds), max_retries=50)
            grid = 2 * n_seeds
            out[arm] = {"wall_s": round(res["wall_s"], 1), "cells_per_min": round(60 * len(set(res["complete"]))
                                                                                  / res["wall_s"], 2),
                        "lost": grid - len(set(res["complete"])), "duplicated": len(res["duplicated"]),
                        "twice_at_once": len(res["twice_at_once"]), "kills": len(res["kills"]),
                        "restart": res["restart"], "failed_attempts": sum(r["state"] == "FAIL" for r in res["rows"]),
                        "tracebacks": sum("Traceback" in text for _, _, text in res["outputs"]),
                        "exit_codes": [rc for _, rc, _ in res["outputs"]]}
            log(f"[bench] chaos: {arm}: {out[arm]}")
    finally:
        server.stop()
    return out


def run(ctx) -> dict:
    from benchmarks.common import check

    seconds = float(os.environ.get("E2GAN_BENCH_CHAOS_S", "600"))  # --chaos-seconds of benchmarks.run
    d = chaos_bench(seconds, ctx.work, log=ctx.log)
    c = d["chaos"]
    ratio = c["cells_per_min"] / d["clean"]["cells_per_min"] if d["clean"]["cells_per_min"] else None
    checks = [
        check("chaos.lost", "grid cells not COMPLETE after kills and a restart", c["lost"], 0, "<=", unit=" cells"),
        check("chaos.duplicated", "cells COMPLETE twice or RUNNING twice at once", c["duplicated"] + c["twice_at_once"],
              0, "<=", unit=" cells"),
        check("chaos.tracebacks", "worker outputs with a traceback", c["tracebacks"], 0, "<=", unit=" outputs"),
        check("chaos.throughput", "cells/min under chaos ÷ without faults", ratio, None, unit="×",
              note=f"{c['kills']} kills, {c['failed_attempts']} failed attempts, kills for "
                   f"{min(seconds, c['wall_s']):.0f} s of the {seconds:.0f} s asked (the grid ends them)"),
    ]
    return {"checks": checks, "data": d}


def main(argv: list[str] | None = None) -> int:
    import argparse
    import tempfile

    p = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=TITLE)
    p.add_argument("--seconds", type=float, default=600, help="how long workers are killed (default 600)")
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--kill-every", type=float, default=10.0)
    p.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(args.work or tempfile.mkdtemp(prefix="e2gan-chaos-"))
    print(json.dumps(chaos_bench(args.seconds, work, args.workers, args.kill_every), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
