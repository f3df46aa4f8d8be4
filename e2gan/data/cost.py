"""The teacher's cost of a distilled folder: ``distill_cost.json`` (and one per shard while shards run).

It accumulates the teacher's device-seconds (wall time inside ``teacher.edit``, one device per
process) and images per concept over every run and shard, separately from any training cost;
each run adds an entry to its ``runs`` list.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from e2gan.io import atomic_write_json

COST_FILE = "distill_cost.json"
COST_FLUSH_SECONDS = 60.0


def read_cost(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError):
        return None  # a cost record is bookkeeping: an unreadable one is started afresh
    return data if isinstance(data, dict) else None


def add_costs(a: dict, b: dict) -> dict:
    concepts = {k: dict(v) for k, v in a.get("concepts", {}).items()}
    for name, c in b.get("concepts", {}).items():
        mine = concepts.setdefault(name, {"images": 0, "device_seconds": 0.0})
        mine["images"] += c.get("images", 0)
        mine["device_seconds"] = round(mine["device_seconds"] + c.get("device_seconds", 0.0), 3)
    for c in concepts.values():
        c["seconds_per_image"] = round(c["device_seconds"] / c["images"], 4) if c["images"] else None
    images = sum(c["images"] for c in concepts.values())
    seconds = round(sum(c["device_seconds"] for c in concepts.values()), 3)
    return {"unit": "teacher device-seconds: wall time inside teacher.edit, one device per process; "
                    "separate from training cost",
            "teacher": a.get("teacher") or b.get("teacher"), "concepts": concepts,
            "total": {"images": images, "device_seconds": seconds,
                      "seconds_per_image": round(seconds / images, 4) if images else None},
            "runs": [*a.get("runs", []), *b.get("runs", [])]}


class CostLog:
    """The cost file of this run's output (main or shard): earlier runs plus this one, flushed now and then."""

    def __init__(self, path: Path, t_hash: str, device: str, summary: dict):
        self.path, self.t_hash, self.device, self.summary = path, t_hash, device, summary
        old = read_cost(path)
        self.base = old if old and old.get("teacher") == t_hash else {"teacher": t_hash}
        self.started = time.time()
        self.last = time.perf_counter()

    def maybe_flush(self) -> None:
        if time.perf_counter() - self.last >= COST_FLUSH_SECONDS:
            self.flush()

    def flush(self, final: bool = False) -> None:
        self.last = time.perf_counter()
        if not self.summary["written"]:
            return
        run = {"shard": self.summary["shard"], "device": self.device, "written": self.summary["written"],
               "device_seconds": round(self.summary["teacher_seconds"], 3),
               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
               "finished": final}
        current = {"concepts": {k: {"images": v["images"], "device_seconds": v["teacher_seconds"]}
                                for k, v in self.summary["per_concept"].items()},
                   "runs": [run], "teacher": self.t_hash}
        atomic_write_json(self.path, add_costs(self.base, current))
