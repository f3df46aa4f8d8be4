"""The run display: one live line on a terminal, one plain line per finished cell in a log, ETA."""
import io

import pytest

from e2gan.progress import RunDisplay, cell_label, eta_seconds, format_duration


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.mark.parametrize("seconds,text", [(0, "0:00"), (65.4, "1:05"), (3723, "1:02:03"), (-3, "0:00")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_eta_is_the_mean_of_finished_cells_times_the_cells_left():
    assert eta_seconds([], 5) is None  # nothing finished: nothing to estimate from
    assert eta_seconds([10.0, 30.0], 3) == pytest.approx(60.0)
    assert eta_seconds([10.0], 0) == 0.0


def test_cell_label_names_arm_axes_concept_and_seed():
    assert cell_label({"arm": "e2gan", "concept": "hue-60", "seed": 1}) == "e2gan hue-60 seed 1"
    assert cell_label({"arm": "default", "adapt.groups": ["down", "tb"], "concept": "sketch", "seed": 0}) \
        == "groups=down,tb sketch seed 0"


def _run_cells(display, clock, durations, total=4):
    display.stage(3, "study main: main comparison", short="study main")
    for i, seconds in enumerate(durations):
        display.cells(total, i, 1, 0, total - i)
        display.cell_started(f"cell{i}")
        clock.t += seconds
        display.cells(total, i + 1, 0, 0, total - i - 1)
        display.cell_finished(f"cell{i}", "complete")


def test_log_gets_one_plain_line_per_finished_cell_with_counts_and_eta():
    clock, out = Clock(), io.StringIO()
    with RunDisplay(4, stream=out, tty=False, clock=clock) as display:
        _run_cells(display, clock, [10, 30])
    lines = out.getvalue().splitlines()
    assert lines[0] == "[3/4] study main: main comparison"
    assert len(lines) == 3  # the header, then one line per finished cell: no redraws
    assert lines[1].startswith("[3/4] study main: cell0 complete in 0:10 | 1/4 done")
    assert lines[1].endswith("elapsed 0:10, ETA 0:30")  # 3 left x 10 s
    assert lines[2].endswith("elapsed 0:40, ETA 0:40")  # 2 left x mean(10, 30)
    assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()  # no terminal codes in a log


def test_terminal_gets_one_live_line_redrawn_in_place():
    clock, out = Clock(), io.StringIO()
    with RunDisplay(4, stream=out, tty=True, clock=clock) as display:
        _run_cells(display, clock, [10, 30])
        display.cell_started("cell2")
        live = display.render()
    text = out.getvalue()
    assert live == "[3/4] study main | 2/4 done, 0 running, 0 failed | elapsed 0:40, ETA 0:40 | cell2"
    clock.t += 5  # the running cell counts down, up to a mean cell's time (20 s)
    assert display.eta() == pytest.approx(35.0)
    clock.t += 60
    assert display.eta() == pytest.approx(20.0)
    assert "complete in" not in text  # finished cells do not leave lines on a terminal
    assert "[3/4] study main: main comparison\n" in text  # the stage header scrolls above the live line
    assert "\x1b[" in text  # drawn with cursor control, not appended


def test_no_progress_prints_only_the_commands_own_lines():
    clock, out = Clock(), io.StringIO()
    with RunDisplay(4, enabled=False, stream=out, tty=False, clock=clock) as display:
        _run_cells(display, clock, [10, 30])
        display.steps(50, 100)
        display.found_complete(2, "base model", "1,200 steps")
    assert out.getvalue().splitlines() == ["[3/4] study main: main comparison",
                                           "[2/4] base model: found complete (1,200 steps)"]


def test_step_progress_eta_from_its_own_rate_and_a_log_line_per_quarter():
    clock, out = Clock(), io.StringIO()
    display = RunDisplay(4, stream=out, tty=False, clock=clock)
    display.stage(2, "base model")
    for step in range(0, 101, 10):
        display.steps(step, 100)
        clock.t += 2.0  # 10 steps every 2 s
    display.steps(100, 100)
    quarter_lines = [l for l in out.getvalue().splitlines() if "steps |" in l]
    assert [l.split(": ", 1)[1].split(" |")[0] for l in quarter_lines] == ["30/100 steps", "50/100 steps",
                                                                          "80/100 steps", "100/100 steps"]
    display.stage(2, "base model")
    display.steps(0, 100)
    clock.t += 4.0
    display.steps(20, 100)
    assert display.eta() == pytest.approx(16.0)  # 80 steps left at 5 steps/s


def test_eta_shares_the_cells_left_among_workers():
    from e2gan.progress import eta_seconds

    assert eta_seconds([10.0, 20.0], 4) == 60.0
    assert eta_seconds([10.0, 20.0], 4, workers=2) == 30.0
    assert eta_seconds([10.0], 0, workers=2) == 0.0 and eta_seconds([], 3, workers=2) is None


def test_a_cell_found_on_disk_is_not_part_of_the_eta():
    """A run another study trained finishes in no time here; averaged in, it would shrink the ETA."""
    clock, out = Clock(), io.StringIO()
    with RunDisplay(4, stream=out, tty=False, clock=clock) as display:
        _run_cells(display, clock, [20])
        display.cells(4, 2, 0, 0, 2)
        display.cell_done("cell1", "found done", 0.0, timed=False)
    lines = out.getvalue().splitlines()
    assert display.finished == [20]
    assert "cell1 found done in 0:00" in lines[-1] and lines[-1].endswith("ETA 0:40")  # 2 left x 20 s
