"""`reproduce`: data, base model, every study's cells, reports — behind one display.

Each stage either does its work or, when there is none left, prints the one line saying it was
found complete. Cells run one at a time through ``runner.work(max_trials=1)``, or a grid's on several
worker processes (``grid_workers``); the display's
counts come from the study storage (``runner.status``), its ETA from the cells finished in this
run. The reports land where the caller says (by default under the runs folder), never over the
committed reference report, which is compared with them at the end.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

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
        frame = trials_frame(study, runner.current_runs(spec, preset))
        write_study_report(spec, frame, reports / spec.name, preset=preset, extra_tables=_extra_tables(spec, runs, preset))
        entries.append((spec.name, spec.title, f"{spec.name}/index.html", summary_line(spec, frame, preset=preset)))
    return write_index(preset, entries, reports, base_report_link="base/index.html" if base_result else None)


def _extra_tables(spec, runs: str, preset: str) -> list:
    """Tables of work run beside a study's cells (the greedy rank search), when it has finished."""
    from e2gan.reporting.paper_tables.greedy import greedy_search_table
    from studies.rank_search import greedy_dir

    found = greedy_dir(spec, runs, preset) / "search.json"
    return [greedy_search_table(json.loads(found.read_text()))] if spec.greedy and found.exists() else []


def after_grid(spec, study, preset: str, runs: str, progress: bool, say=None) -> None:
    """What a spec asks for beyond its cells: the greedy rank search, host latency per arm."""
    say = say or (lambda text: print(text, file=sys.stderr))
    if spec.greedy:
        from studies.rank_search import spec_rank_search

        say("  " + spec_rank_search(spec, preset, runs, progress=progress).summary())
    if spec.latency:
        from studies.latency_cells import measure_study_latency

        measure_study_latency(study, spec, spec.latency, progress=progress)


def after_grid_pending(spec, study, preset: str, runs: str) -> bool:
    """True while the greedy search has not written its result or an arm lacks a latency record."""
    if spec.greedy:
        from studies.rank_search import greedy_dir

        if not (greedy_dir(spec, runs, preset) / "search.json").exists():
            return True
    if spec.latency:
        from studies.latency_cells import runs_to_time

        for run in runs_to_time(study, spec).values():
            result = json.loads((run / "result.json").read_text()) if (run / "result.json").exists() else {}
            if any(b not in (result.get("latency") or {}) for b in spec.latency):
                return True
    return False


def remaining_cells(st: dict, grid: bool) -> int:
    """Cells this run still has to run, from ``runner.status``: the queue of a grid, the trial
    budget left of a search (failed trials are asked again, so they do not use it up)."""
    s = st["states"]
    if grid:  # a cell still running after a killed run is taken over once its heartbeat is stale
        return s.get("waiting", 0) + s.get("running", 0)
    return max(0, st["expected"] - s.get("complete", 0) - s.get("pruned", 0) - s.get("running", 0) - s.get("waiting", 0))


def _next_label(study, spec) -> str:
    """The cell ``work(max_trials=1)`` claims next: the oldest waiting trial of a grid."""
    from optuna.trial import TrialState

    if spec.sampler == "grid":
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if waiting:
            return cell_label(min(waiting, key=lambda t: t.number).user_attrs.get("cell", {}))
        return "cell"
    return f"{spec.sampler} trial {len(study.get_trials(deepcopy=False)) + 1}"


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
    for spec in specs:  # queue every study first: the ETA counts the cells of the later ones too
        url = runner.default_storage(spec, runs, preset)
        study = runner.load_study(spec, url, preset, create=True)
        runner.reconcile(study, spec, preset, **_retries(spec))
        opened.append((spec, url, study, remaining_cells(runner.status(study, spec, preset), spec.sampler == "grid")))
    for i, (spec, url, study, _) in enumerate(opened):
        later = sum(r for *_, r in opened[i + 1:])
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
            run_grid_in_workers(spec, url, study, preset, runs, display, workers, later,
                                max_retries=_retries(spec).get("max_retries"))
        else:
            _run_cells_here(spec, url, study, preset, runs, display, grid, later)
        display.counts = None
        if spec.greedy or spec.latency:
            display.task("greedy rank search and latency" if spec.greedy and spec.latency
                         else "greedy rank search" if spec.greedy else "latency per arm")
            after_grid(spec, study, preset, runs, progress=False, say=display.line)
        display.line(f"  {runner.status_line(runner.status(study, spec, preset))}")


def _run_cells_here(spec, url: str, study, preset: str, runs: str, display: RunDisplay, grid: bool, later: int) -> None:
    """The study's cells one at a time in this process. ``later``: cells of the studies after it."""
    from studies import runner

    failed = 0
    while True:
        st = runner.status(study, spec, preset)
        left = remaining_cells(st, grid)
        display.cells(st["expected"], st["done"], 1 if left else 0, failed, left + later)
        if not left:
            break
        label = _next_label(study, spec)
        display.cell_started(label)
        # The study loaded above is reused (work reseeds its sampler): one storage for the run.
        counts = runner.work(spec, url, preset, runs, max_trials=1, study=study, **_retries(spec))
        if not any(counts.values()):
            break
        failed += counts["failed"]
        outcome = next(k for k, v in counts.items() if v)
        st = runner.status(study, spec, preset)
        display.cells(st["expected"], st["done"], 0, failed, remaining_cells(st, grid) + later)
        display.cell_finished(label, outcome)


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
