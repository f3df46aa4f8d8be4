"""LATEST.md and the README's bench block from every run in a results folder: the newest
measurement of each benchmark.

A full `make bench` takes the better part of an hour on 2 cores, so most runs measure a few
benchmarks (`--only`). Each benchmark's row comes from the newest run that measured it
successfully, and says which run that was (its date, load and versions are in the run list), so
a partial run refreshes its own rows and leaves the others as last measured, never silently old.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from benchmarks.report import findings_sections, header, summary_table

RUN_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}-\d{4}-host-[0-9a-f]{8}$")  # the names benchmarks.run gives
# What a run's header line needs (``benchmarks.report.header``); the rest of a run stays on disk.
RUN_FACTS = ("started", "host", "preset", "scale", "device", "cpu_count", "seconds", "threads", "env", "versions",
             "loadavg_start", "loadavg_end")


def run_files(results_dir: str | Path) -> list[Path]:
    """The run results in ``results_dir``, oldest first (a run's name starts with its UTC minute)."""
    return sorted((p for p in Path(results_dir).glob("*.json") if RUN_NAME.match(p.stem)), key=lambda p: p.stem)


def compose(results_dir: str | Path, preset: str, scale: str, order: tuple[str, ...]) -> dict | None:
    """A report whose benchmarks are each the newest successful one among the runs of ``preset`` at
    ``scale``, in ``order``; each carries ``run`` (its run's name). None when no run has any.

    ``runs``: the header facts (``RUN_FACTS``) of every run a row comes from. ``failed_since``: benchmarks whose newest
    attempt failed after the row shown was measured (the error and that run's name).
    """
    newest: dict[str, tuple[str, dict, dict]] = {}
    failed: dict[str, dict] = {}
    for path in run_files(results_dir):
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # a run being written or a damaged file: the others still make the summary
        if report.get("preset") != preset or report.get("scale") != scale:
            continue
        for name, entry in report.get("benchmarks", {}).items():
            if entry.get("status") == "ok":
                newest[name] = (path.stem, report, entry)
                failed.pop(name, None)
            else:
                failed[name] = {"run": path.stem, "error": entry.get("error", "")}
    if not newest:
        return None
    names = [n for n in order if n in newest] + sorted(n for n in newest if n not in order)
    benchmarks, runs, before_after = {}, {}, []
    for name in names:
        stem, report, entry = newest[name]
        benchmarks[name] = {**entry, "run": stem}
        runs.setdefault(stem, {k: report[k] for k in RUN_FACTS if k in report})
        before_after += [dict(row, run=stem) for row in report.get("before_after", []) if row.get("benchmark") == name]
    for stem in runs:
        runs[stem]["benchmarks"] = [n for n in names if benchmarks[n]["run"] == stem]
    first = newest[names[0]][1]
    return {"composed": True, "preset": preset, "scale": scale, "device": first.get("device"),
            "cpu_count": first.get("cpu_count"), "benchmarks": benchmarks, "before_after": before_after,
            "runs": dict(sorted(runs.items())), "failed_since": failed}


def _targets_line(composed: dict) -> str:
    checks = [c for b in composed["benchmarks"].values() for c in b["checks"] if c["target"] is not None]
    return (f"{sum(1 for c in checks if c['met'])} of {len(checks)} targets met. Each row is the newest "
            f"measurement of its benchmark; full numbers: `benchmarks/results/<run>.json` and `.md` of the run "
            f"in its last column; what each benchmark measures: `benchmarks/README.md`.")


def _runs_lines(composed: dict) -> list[str]:
    """One line per run the summary's rows come from (its header: start, load, threads, versions),
    then one per benchmark whose newest attempt failed."""
    lines = [f"- `{stem}` ({', '.join(r['benchmarks'])}): {header(r)}" for stem, r in composed["runs"].items()]
    for name, f in composed.get("failed_since", {}).items():
        shown = (f"its rows are from `{composed['benchmarks'][name]['run']}`" if name in composed["benchmarks"]
                 else "it has no successful run")
        lines.append(f"- **{name}** failed in the newer run `{f['run']}` ({f['error']}); {shown}.")
    return lines


def render_latest(composed: dict) -> str:
    """LATEST.md from ``compose``: rows from several runs, each run described."""
    parts = ["# Benchmarks: latest summary", "",
             f"Preset **{composed['preset']}** (scale {composed['scale']}). Runs the rows come from:", "",
             *_runs_lines(composed), "", _targets_line(composed), "", summary_table(composed), "",
             *findings_sections(composed)]
    return "\n".join(parts)


def render_readme_block(composed: dict) -> str:
    """The README's bench block: LATEST.md's table, from the same functions."""
    stems = list(composed["runs"])
    return "\n".join([f"Latest measurements: preset **{composed['preset']}**, {composed['device']}, "
                      f"{composed.get('cpu_count')} cores, from {len(stems)} run(s), {stems[0][:15]} to {stems[-1][:15]}. "
                      + _targets_line(composed)
                      + " Causes of every miss and the runs' load and versions: `benchmarks/results/LATEST.md`.",
                      "", summary_table(composed)])
