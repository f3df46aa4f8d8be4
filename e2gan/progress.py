"""The display of a long run (`reproduce`): stage, current cell, counts, elapsed time and ETA.

On a terminal it is one line redrawn in place (rich's Live); lines printed meanwhile (our own
warnings, stage headers) scroll above it. Anywhere else (CI, a log file) it is one plain line per
finished cell, so a log reads as a record. Disabled (``--no-progress``), only the command's own
lines print: stage headers, "found complete", the closing summary.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass


def format_duration(seconds: float) -> str:
    """4:05, 1:02:03."""
    s = max(0, int(round(seconds)))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def eta_seconds(finished: list[float], remaining: int, workers: int = 1) -> float | None:
    """Time left: the mean time of the cells finished so far times the cells still to run, shared
    by ``workers`` running cells side by side.

    None before the first cell has finished (nothing to estimate from); 0 when none remain.
    """
    if remaining <= 0:
        return 0.0
    if not finished:
        return None
    return sum(finished) / len(finished) * remaining / max(1, workers)


def cell_label(cell: dict) -> str:
    """{'arm': 'e2gan', 'adapt.rank': 4, 'concept': 'hue-60', 'seed': 1} -> 'e2gan rank=4 hue-60 seed 1'."""
    parts = [] if cell.get("arm", "default") == "default" else [str(cell["arm"])]
    for key, value in cell.items():
        if key not in ("arm", "concept", "seed"):
            value = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value
            parts.append(f"{key.rsplit('.', 1)[-1]}={value}")
    if "concept" in cell:
        parts.append(str(cell["concept"]))
    if "seed" in cell:
        parts.append(f"seed {cell['seed']}")
    return " ".join(parts)


@dataclass
class _Counts:
    total: int = 0
    done: int = 0
    running: int = 0
    failed: int = 0
    remaining: int = 0


class RunDisplay:
    """Use as a context manager; ``tty``/``clock`` are for tests (default: the stream's isatty, monotonic)."""

    def __init__(self, n_stages: int, *, enabled: bool = True, stream=None, tty: bool | None = None,
                 clock=time.monotonic):
        self.n_stages, self.enabled, self.clock = n_stages, enabled, clock
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(tty if tty is not None else getattr(self.stream, "isatty", lambda: False)())
        self.t0 = clock()
        self.stage_text = ""
        self.detail = ""
        self.counts: _Counts | None = None
        self.finished: list[float] = []  # seconds of every cell finished in this run (the ETA's sample)
        self._cell_t0: float | None = None
        self.workers = 1  # processes running cells side by side (the ETA shares the cells left)
        self._steps: tuple | None = None  # (time, done, total, unit) when the current job was first seen
        self._step_eta: float | None = None
        self._printed_fraction = 0
        self._live = None
        self._console = None

    # -- lifetime -------------------------------------------------------------------------------
    def __enter__(self):
        if self.enabled and self.tty:
            from rich.console import Console
            from rich.live import Live

            self._console = Console(file=self.stream, force_terminal=True, highlight=False)
            self._live = Live(console=self._console, get_renderable=self._renderable, refresh_per_second=2,
                              transient=True, redirect_stdout=True, redirect_stderr=True)
            self._live.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    # -- what the caller reports -----------------------------------------------------------------
    def line(self, text: str) -> None:
        """A permanent line (shown whether the display is enabled or not)."""
        if self._live is not None:
            from rich.text import Text

            self._console.print(Text(text), soft_wrap=True)  # scrolls above the live line; the terminal wraps it
        else:
            print(text, file=self.stream, flush=True)

    def stage(self, index: int, title: str, announce: bool = True, short: str | None = None) -> None:
        """Start a stage; ``announce=False`` when its outcome line says enough (a quick check).
        ``short``: the title on the live line and cell lines, when the announced one is long."""
        self.stage_text = f"[{index}/{self.n_stages}] {short or title}"
        self.detail, self.counts, self._steps, self._step_eta = "", None, None, None
        if announce:
            self.line(f"[{index}/{self.n_stages}] {title}")

    def found_complete(self, index: int, title: str, what: str = "") -> None:
        """The one line a stage that has nothing left to do prints."""
        self.stage_text = f"[{index}/{self.n_stages}] {title}"
        self.detail, self.counts = "", None
        self.line(f"{self.stage_text}: found complete{f' ({what})' if what else ''}")

    def task(self, text: str) -> None:
        """What the stage is doing now, when it is not a cell (preparing bases, a rank search)."""
        self.detail, self._steps, self._step_eta = text, None, None

    def steps(self, done: int, total: int, unit: str = "steps") -> None:
        """Progress of one job of a stage (pairs distilled, training steps): ETA from its own rate."""
        now = self.clock()
        if self._steps is None or self._steps[2:] != (total, unit) or done < self._steps[1]:
            self._steps = (now, done, total, unit)  # a new job (the next base model): a new rate
            self._printed_fraction = 4 * done // max(total, 1)
        t_first, s_first = self._steps[:2]
        rate = (done - s_first) / (now - t_first) if now > t_first and done > s_first else None
        self._step_eta = (total - done) / rate if rate else None
        self.detail = f"{done:,}/{total:,} {unit}"
        # A log gets a line at each quarter of a job, not one per step.
        fraction = 4 * done // max(total, 1)
        if self.enabled and not self.tty and fraction > self._printed_fraction:
            self._printed_fraction = fraction
            self.line(f"{self.stage_text}: {self.detail} | {self._times(self._step_eta)}")

    def cells(self, total: int, done: int, running: int, failed: int, remaining: int) -> None:
        """Counts from the study storage (``remaining``: cells still to run in this run, later studies too)."""
        self.counts = _Counts(total, done, running, failed, remaining)

    def cell_started(self, label: str) -> None:
        self.detail = label
        self._cell_t0 = self.clock()

    def cell_finished(self, label: str, outcome: str, timed: bool = True) -> float:
        """Record the cell's time for the ETA; on a log, print its line. Call after ``cells``."""
        seconds = self.clock() - (self._cell_t0 if self._cell_t0 is not None else self.clock())
        self._cell_t0 = None
        return self.cell_done(label, outcome, seconds, timed)

    def cell_done(self, label: str, outcome: str, seconds: float, timed: bool = True) -> float:
        """A cell finished in ``seconds`` (timed elsewhere: by a worker process). ``timed`` False: its
        run was found on disk (another study's), so its seconds say nothing of a cell's cost."""
        if timed:
            self.finished.append(seconds)
        if self.enabled and not self.tty:
            self.line(f"{self.stage_text}: {label} {outcome} in {format_duration(seconds)} | "
                      f"{self._count_text()} | {self._times(self.eta())}")
        self.detail = ""
        return seconds

    # -- rendering --------------------------------------------------------------------------------
    def eta(self) -> float | None:
        if self.counts is not None:
            left = eta_seconds(self.finished, self.counts.remaining, self.workers)
            if left and self._cell_t0 is not None:  # the running cell counts down, up to a mean cell's time
                mean = sum(self.finished) / len(self.finished)
                left -= min(self.clock() - self._cell_t0, mean)
            return left
        return self._step_eta

    def _count_text(self) -> str:
        c = self.counts
        return f"{c.done}/{c.total} done, {c.running} running, {c.failed} failed" if c else ""

    def _times(self, eta: float | None) -> str:
        left = "ETA --" if eta is None else f"ETA {format_duration(eta)}"
        return f"elapsed {format_duration(self.clock() - self.t0)}, {left}"

    def render(self) -> str:
        """The live line: counts and times before the current cell, so a narrow terminal cuts the cell."""
        parts = [self.stage_text]
        if self.counts is not None:
            parts.append(self._count_text())
        parts.append(self._times(self.eta()))
        if self.detail:
            parts.append(self.detail)
        return " | ".join(parts)

    def _renderable(self):
        from rich.text import Text

        return Text(self.render(), no_wrap=True, overflow="ellipsis")
