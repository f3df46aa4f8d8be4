"""result.json: one per run, the only thing reports read.

Schema (version 1):
  schema, run, kind, status       identity of the run ("base", ...), "complete"
  metrics                         {"mean_over_concepts": {...}, "per_concept": {concept: {...}}}
  protocol                        how the metrics were measured (backbone, reference set, N, ...)
  cost                            training seconds, steps, images seen, FLOPs, params, bytes, memory
  config                          the full resolved configuration
  env                             versions, device, threads, seed, commit
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

from e2gan.errors import InputError
from e2gan.io import atomic_write_json

SCHEMA_VERSION = 1
REQUIRED = ("schema", "run", "kind", "status", "metrics", "protocol", "cost", "config", "env")


def make_result(*, run: str, kind: str, metrics: dict, protocol: dict, cost: dict, config: dict,
                env: dict, **extra) -> dict:
    return {"schema": SCHEMA_VERSION, "run": run, "kind": kind, "status": "complete",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "metrics": metrics,
            "protocol": protocol, "cost": cost, "config": config, "env": env, **extra}


KEPT_ON_REWRITE = ("export", "latency")  # written by other commands; re-evaluating must not drop them


def _finite(obj):
    """Strict JSON: a non-finite float (PSNR of identical sets, FID of too few images) becomes null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_result(run_dir: str | Path, result: dict) -> Path:
    missing = [k for k in REQUIRED if k not in result]
    if missing:
        raise ValueError(f"result is missing {missing}")
    path = Path(run_dir) / "result.json"
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            old = {}
        result = {**{k: old[k] for k in KEPT_ON_REWRITE if k in old}, **result}
    return atomic_write_json(path, _finite(result))


def located(run_dir: str, runs: str | Path | None) -> str:
    """A recorded run folder as this process can open it. A study records each run as the path it
    was written to, relative to the working directory of the process that ran it when the runs
    folder was given relative (``runs/adapt-...``); read from another directory, that path names
    nothing, so the run is looked up by its name in ``runs`` (run names are unique in a runs folder)."""
    if runs is None or Path(run_dir).is_dir():
        return run_dir
    moved = Path(runs) / Path(run_dir).name
    return str(moved) if moved.is_dir() else run_dir


def read_result(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "result.json" if Path(run_dir).is_dir() else Path(run_dir)
    try:
        result = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError("no result.json", str(path), "a finished run (evaluate it first)") from None
    except json.JSONDecodeError as exc:
        raise InputError("malformed result.json", str(path), f"valid JSON ({exc})") from None
    missing = [k for k in REQUIRED if k not in result]
    if missing:
        raise InputError(f"result.json lacks {missing}", str(path), f"schema {SCHEMA_VERSION} fields {list(REQUIRED)}")
    return result


def update_result(run_dir: str | Path, key: str | tuple[str, ...] | list[str], value) -> dict:
    """Set ``result[key]`` (a key path such as ("latency", "adb") sets a nested entry, creating
    the levels above it) in a run's existing result.json and write it back atomically.

    Read-modify-write runs under an exclusive lock on ``result.json.lock`` so concurrent
    updates (e.g. export and latency of the same run) do not drop each other's entries.
    Returns the updated result.
    """
    import fcntl

    path = Path(run_dir) / "result.json" if Path(run_dir).is_dir() else Path(run_dir)
    keys = (key,) if isinstance(key, str) else tuple(key)
    if not keys:
        raise ValueError("update_result needs a key")
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = read_result(path)
        node = result
        for k in keys[:-1]:
            if not isinstance(node.get(k), dict):
                node[k] = {}
            node = node[k]
        node[keys[-1]] = value
        atomic_write_json(path, result)
    return result


def backbone_label(backbone) -> str:
    """A protocol's FID/KID backbone in a few words: its name and what ran it ("effnet-lite0 via
    LiteRT"). A result without ``runtime`` was measured before there was a choice: by torch."""
    if not isinstance(backbone, dict):
        return str(backbone) if backbone else ""
    runtime = str(backbone.get("runtime") or "torch").split()[0]
    return f"{backbone.get('name', '?')} via {runtime}"
