"""`reproduce`: data, base model, every study's cells, reports — behind one display.

Each stage either does its work or, when there is none left, prints the one line saying it was
found complete. Cells run one at a time through ``runner.work(max_trials=1)``, or a grid's on several
worker processes (``grid_workers``); the display's
counts come from the study storage (``runner.status``), its ETA from the cells trained in this
run times the runs left (``run_plan``: a run two studies share counted once, a greedy search's
counted too). The reports land where the caller says (by default under the runs folder), never over the
committed reference report, which is compared with them at the end.
"""
from __future__ import annotations

import functools
import json
import operator
import sys
import time
from pathlib import Path
from typing import Callable

from e2gan.cli.run_plan import Pending, pending_runs, remaining_cells
from e2gan.progress import RunDisplay, cell_label


def write_reports(specs, preset: str, runs: str, reports_root: str | Path, base_result: dict | None,
                  base_run: Path | None) -> Path:
    """Every study's page and the preset's index, from the study storage and result.json files only."""
    from e2gan.reporting.base_report import write_base_report
    from e2gan.reporting.study_report import summary_line, write_index, write_study_report
    from studies import runner
    from studies.summary import trials_frame

    reports = Path(reports_root) / preset
    if base_result is not None:
        write_base_report(base_result, base_run, reports / "base")
    entries = []
    for spec in specs:
        study = runner.load_study(spec, runner.default_storage(spec, runs, preset), preset, create=True)
        frame = trials_frame(study, runner.current_runs(spec, preset), runs)
        write_study_report(spec, frame, reports / spec.name, preset=preset, extra_tables=_extra_tables(spec, runs, preset))
        entries.append((spec.name, spec.title, f"{spec.name}/index.html", summary_line(spec, frame, preset=preset)))
    return write_index(preset, entries, reports, base_report_link="base/index.html" if base_result else None)


def _extra_tables(spec, runs: str, preset: str) -> list:
    """Tables of work run beside a study's cells (the greedy rank search), when it has finished."""
    from e2gan.reporting.paper_tables.greedy import greedy_search_table
    from studies.rank_search import greedy_dir

    found = greedy_dir(spec, runs, preset) / "search.json"
    return [greedy_search_table(json.loads(found.read_text()))] if spec.greedy and found.exists() else []


def after_grid(spec, study, preset: str, runs: str, progress: bool, say=None,
               on_run: Callable[[str, float, bool], None] | None = None) -> None:
    """What a spec asks for beyond its cells: the greedy rank search, host latency per arm.
    ``on_run(label, seconds, found)``: after each of the search's runs (a display's cell line)."""
    say = say or (lambda text: print(text, file=sys.stderr))
    if spec.greedy:
        from studies.rank_search import spec_rank_search

        say("  " + spec_rank_search(spec, preset, runs, progress=progress, on_run=on_run).summary())
    if spec.latency:
        from studies.latency_cells import measure_study_latency

        measure_study_latency(study, spec, spec.latency, progress=progress, runs=runs)


def after_grid_pending(spec, study, preset: str, runs: str) -> bool:
    """True while the greedy search has not written its result or an arm lacks a latency record."""
    if spec.greedy:
        from studies.rank_search import greedy_dir

        if not (greedy_dir(spec, runs, preset) / "search.json").exists():
            return True
    if spec.latency:
        from studies.latency_cells import runs_to_time

        for run in runs_to_time(study, spec, runs).values():
            result = json.loads((run / "result.json").read_text()) if (run / "result.json").exists() else {}
            if any(b not in (result.get("latency") or {}) for b in spec.latency):
                return True
    return False


def _next_cell(study, spec) -> tuple[str, int | None]:
    """The label and trial number of the cell ``work(max_trials=1)`` claims next: the oldest waiting
    trial of a grid (a search's trial is asked, not waiting: no number)."""
    from optuna.trial import TrialState

    if spec.sampler == "grid":
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if waiting:
            first = min(waiting, key=lambda t: t.number)
            return cell_label(first.user_attrs.get("cell", {})), first.number
        return "cell", None
    return f"{spec.sampler} trial {len(study.get_trials(deepcopy=False)) + 1}", None


def _retries(spec) -> dict:
    """The spec's retry budget where specs carry one (else the runner's default)."""
    n = getattr(spec, "max_retries", None)
    return {"max_retries": n} if n is not None else {}


def _reporter(display: RunDisplay):
    """The callable the data and training stages report (done, total, unit) to."""
    return lambda done, total, unit: display.steps(done, total, unit)


def run_studies(specs, preset: str, runs: str, display: RunDisplay, first_stage: int, workers: int = 1) -> None:
    """Every study's cells; a grid's on ``workers`` processes side by side when more than 1."""
    from e2gan.cli.grid_workers import run_grid_in_workers
    from studies import runner

    opened = []
    for spec in specs:  # queue every study first: the ETA counts the runs of the later ones too
        url = runner.default_storage(spec, runs, preset)
        study = runner.load_study(spec, url, preset, create=True)
        runner.reconcile(study, spec, preset, **_retries(spec))
        opened.append((spec, url, study, pending_runs(spec, study, preset, runs)))
    for i, (spec, url, study, _) in enumerate(opened):
        later = functools.reduce(operator.or_, (p for *_, p in opened[i + 1:]), Pending())

        def left(spec=spec, study=study, later=later) -> int:  # runs to train, shared ones once
            return (pending_runs(spec, study, preset, runs) | later).count(runs)

        index, title = first_stage + i, f"study {spec.name}"
        st = runner.status(study, spec, preset)
        grid = spec.sampler == "grid"
        if remaining_cells(st, grid) == 0 and not after_grid_pending(spec, study, preset, runs):
            rest = "" if st["done"] >= st["expected"] else f"; the rest pruned or given up: e2gan study status {spec.name}"
            display.found_complete(index, title, f"{st['done']}/{st['expected']} cells{rest}")
            continue
        display.stage(index, f"{title}: {spec.title}", short=title)
        display.task("data and base models")
        runner.prepare(spec, preset, runs, progress=_reporter(display) if display.enabled else False)
        if grid and workers > 1:
            run_grid_in_workers(spec, url, study, preset, runs, display, workers, left,
                                max_retries=_retries(spec).get("max_retries"))
        else:
            _run_cells_here(spec, url, study, preset, runs, display, grid, left)
        display.counts = None
        if spec.greedy or spec.latency:
            display.task("greedy rank search and latency" if spec.greedy and spec.latency
                         else "greedy rank search" if spec.greedy else "latency per arm")
            after_grid(spec, study, preset, runs, progress=False, say=display.line,
                       on_run=_greedy_cells(display, spec, preset, runs, left) if spec.greedy else None)
            display.counts = None
        display.line(f"  {runner.status_line(runner.status(study, spec, preset))}")


def _greedy_cells(display: RunDisplay, spec, preset: str, runs: str, runs_left: Callable[[], int]):
    """``on_run`` for the greedy search: each of its runs on the display as a grid's cell is (counts,
    a line in a log, the ETA's sample unless it was found done)."""
    from e2gan.cli.run_plan import pending_greedy_runs

    names, unnamed = pending_greedy_runs(spec, preset, runs)
    expected, done = len(names) + unnamed, 0

    def on_run(label: str, seconds: float, found: bool) -> None:
        nonlocal done
        done += 1
        display.cells(max(expected, done), done, 0, 0, runs_left())
        display.cell_done(f"greedy {label}", "found done" if found else "complete", seconds, timed=not found)
        display.task("greedy rank search")
    return on_run


def _run_cells_here(spec, url: str, study, preset: str, runs: str, display: RunDisplay, grid: bool,
                    runs_left: Callable[[], int]) -> None:
    """The study's cells one at a time in this process. ``runs_left``: the runs this study and the
    later ones still have to train (``e2gan.cli.run_plan``), for the ETA."""
    from studies import runner
    from studies.queue import found_done

    failed = 0
    while True:
        st = runner.status(study, spec, preset)
        left = remaining_cells(st, grid)
        display.cells(st["expected"], st["done"], 1 if left else 0, failed, runs_left() if left else 0)
        if not left:
            break
        label, number = _next_cell(study, spec)
        display.cell_started(label)
        # The study loaded above is reused (work reseeds its sampler): one storage for the run.
        counts = runner.work(spec, url, preset, runs, max_trials=1, study=study, **_retries(spec))
        if not any(counts.values()):
            break
        failed += counts["failed"]
        outcome = next(k for k, v in counts.items() if v)
        st = runner.status(study, spec, preset)
        display.cells(st["expected"], st["done"], 0, failed, runs_left())
        # Another study's run, found on disk: nothing trained, so no sample for the ETA.
        found = any(found_done(t) for t in study.get_trials(deepcopy=False) if t.number == number)
        display.cell_finished(label, "found done" if found else outcome, timed=not found)


def reproduce(cfg, specs, runs: str, reports_root: str | Path, display: RunDisplay,
              workers: int = 1) -> tuple[Path, dict] | None:
    """Every stage; returns (index.html, the base's result), None in DDP worker processes.
    ``workers``: processes running a grid's cells side by side (``grid_workers``)."""
    from e2gan.pipeline.base import base_dir, base_is_complete, ensure_base
    from e2gan.pipeline.data import ensure_data
    from e2gan.pipeline.evaluate import ensure_result

    report = _reporter(display) if display.enabled else False
    display.stage(1, "data", announce=False)
    t = time.perf_counter()
    data, s = ensure_data(cfg, runs, progress=report)
    if s["written"] == 0:
        display.found_complete(1, "data", f"{s['skipped_existing']:,} pairs on disk")
    else:
        display.line(f"[1/{display.n_stages}] data: distilled {s['written']:,} pairs "
                     f"({s['skipped_existing']:,} on disk) in {time.perf_counter() - t:.0f} s -> {data}")

    run_dir = base_dir(cfg, runs)
    complete = base_is_complete(run_dir, cfg) and (run_dir / "result.json").exists()
    if not complete:
        display.stage(2, "base model")
    run_dir, summary = ensure_base(cfg, data, runs, progress=report)
    if summary is None:
        return None
    evaluating = not (run_dir / "result.json").exists()
    if evaluating:
        display.task("evaluating on the test split")
    result = ensure_result(run_dir)
    if evaluating:
        display.task("")
    m = result["metrics"]["mean_over_concepts"]
    done = f"{summary['gan_step']:,} steps, test PSNR {m['psnr']:.2f} dB"
    if complete:
        display.found_complete(2, "base model", done)
    else:
        display.line(f"[2/{display.n_stages}] base model: {done} -> {run_dir}")

    run_studies(specs, cfg.preset, runs, display, first_stage=3, workers=workers)
    display.stage(display.n_stages, "writing the reports")
    index = write_reports(specs, cfg.preset, runs, reports_root, result, run_dir)
    return index, result


def closing_lines(report_dir: Path, specs, reference_root: Path | None, preset: str) -> list[str]:
    """The report's claims (or main table) in a few lines, then this run beside the reference."""
    from e2gan.reporting.reference import (claim_verdicts, claims_comparison_lines, compare, comparison_lines,
                                           key_numbers, summary_lines)

    names = [s.name for s in specs]
    lines = summary_lines(report_dir, names)
    reference = reference_root / preset if reference_root is not None else None
    if reference is None or not reference.is_dir():
        lines.append(f"no reference report for preset {preset} to compare with")
    elif reference.resolve() == Path(report_dir).resolve():
        lines.append(f"this run wrote the reference report itself ({reference}): nothing to compare with")
    else:
        lines += comparison_lines(compare(key_numbers(report_dir), key_numbers(reference)), reference)
        lines += claims_comparison_lines(claim_verdicts(report_dir, names), claim_verdicts(reference, names))
    lines.append(f"report: {Path(report_dir) / 'index.html'}")
    return lines
