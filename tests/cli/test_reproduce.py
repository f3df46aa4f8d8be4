"""reproduce's bookkeeping: the cells left for the ETA, and the closing lines beside the reference."""
from pathlib import Path

import pytest

from e2gan.cli.reproduce import closing_lines
from e2gan.cli.run_plan import remaining_cells

REPORTS = Path(__file__).resolve().parents[2] / "reports"


@pytest.mark.parametrize("states,grid,expected,left", [
    ({"waiting": 3, "running": 1, "complete": 5, "fail": 2}, True, 9, 4),  # a stale running cell is taken over
    ({"complete": 5, "fail": 2, "running": 1}, False, 8, 2),  # a search asks again after a failure
    ({"complete": 8, "pruned": 1}, False, 8, 0),
])
def test_remaining_cells(states, grid, expected, left):
    assert remaining_cells({"states": states, "expected": expected}, grid) == left


def test_closing_lines_compare_with_the_reference_unless_it_is_the_same_folder(tmp_path):
    same = closing_lines(REPORTS / "tiny", [], REPORTS, "tiny")
    assert any("wrote the reference report itself" in line for line in same)
    assert same[-1] == f"report: {REPORTS / 'tiny' / 'index.html'}"
    missing = closing_lines(tmp_path / "tiny", [], tmp_path / "none", "tiny")
    assert "no reference report for preset tiny to compare with" in missing
    import shutil

    shutil.copytree(REPORTS / "tiny" / "base", tmp_path / "tiny" / "base")
    beside = closing_lines(tmp_path / "tiny", [], REPORTS, "tiny")
    assert any(line.startswith("your run beside the reference report") for line in beside)
