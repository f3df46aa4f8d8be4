"""The whole-reproduce benchmark reads stages and cells from reproduce's plain display lines."""
from __future__ import annotations

import json

from benchmarks.main_wall import NAME, details, parse_log, previous_wall

LOG = [
    (9.0, "[1/4] data: 2,938/11,748 pairs | elapsed 0:09, ETA 0:15"),
    (26.0, "[1/4] data: distilled 11,748 pairs (0 on disk) in 26 s -> runs/data/tiny-x"),
    (26.5, "[2/4] base model"),
    (120.0, "[2/4] base model: 600/1,200 steps | elapsed 1:34, ETA 3:23"),
    (300.0, "[2/4] base model: 1,200 steps, test PSNR 19.91 dB -> runs/base-tiny-x"),
    (300.5, "[3/4] study main: Main comparison: cost and quality of learning a new concept"),
    (345.0, "[3/4] study main: pix2pix hue-60 seed 0 complete in 0:44 | 1/4 done, 0 running, 0 failed | elapsed 5:45, ETA 2:12"),
    (391.0, "[3/4] study main: pix2pix hue-60 seed 1 complete in 0:46 | 2/4 done, 0 running, 0 failed | elapsed 6:31, ETA 1:30"),
    (418.0, "[3/4] study main: e2gan hue-60 seed 0 complete in 0:27 | 3/4 done, 0 running, 0 failed | elapsed 6:58, ETA 0:40"),
    (420.0, "[3/4] study main: e2gan hue-60 seed 1 failed in 0:02 | 4/4 done, 0 running, 1 failed | elapsed 7:00, ETA 0:00"),
    (421.0, "  main-tiny: 4/4 done, 0 running, 0 waiting, 1 failed, 0 pruned, best fid 157.804"),
    (421.5, "[4/4] writing the reports"),
]


def test_stages_last_from_their_first_line_to_the_next_stage_and_cells_are_read_per_arm():
    p = parse_log(LOG, end=440.0)
    assert [(s["stage"], s["title"]) for s in p["stages"]] == [(1, "data"), (2, "base model"), (3, "study main"),
                                                               (4, "writing the reports")]
    assert [round(s["seconds"], 1) for s in p["stages"]] == [26.5, 274.0, 121.0, 18.5]  # data from 0, not 9 s
    assert [c["arm"] for c in p["cells"]] == ["pix2pix", "pix2pix", "e2gan", "e2gan"]
    assert p["cell_seconds_median"] == {"pix2pix": 45.0, "e2gan": 27.0}  # the failed cell's 2 s is not a cell time
    assert p["failed"] == 1


def test_the_previous_figure_is_the_newest_earlier_ok_run_at_the_preset(tmp_path):
    def write(name, started, preset="tiny", status="ok", wall=2800.0):
        (tmp_path / f"{name}.json").write_text(json.dumps({"started": started, "preset": preset, "benchmarks": {
            NAME: {"status": status, "data": {"wall_seconds": wall}}}}))
    write("2026-01-01-0000-host-0123abcd", "2026-01-01T00:00:00Z", wall=3000.0)
    write("2026-01-02-0000-host-0123abcd", "2026-01-02T00:00:00Z", wall=2900.0)
    write("2026-01-03-0000-host-0123abcd", "2026-01-03T00:00:00Z", status="error")
    write("2026-01-04-0000-host-0123abcd", "2026-01-04T00:00:00Z", preset="small")
    write("2026-01-09-0000-host-0123abcd", "2026-01-09T00:00:00Z")   # later than the run asking
    (tmp_path / "2026-01-05-0000-host-0123abcd.json").write_text("{truncated")
    assert previous_wall(tmp_path, "tiny", "2026-01-05T00:00:00Z") == ("2026-01-02-0000-host-0123abcd", 2900.0)
    assert previous_wall(tmp_path, "tiny", "2026-01-01T00:00:00Z") is None


def test_the_run_page_lists_stages_and_arms():
    p = parse_log(LOG, end=440.0)
    text = "\n".join(details({**p, "command": "e2gan.cli reproduce --specs main", "wall_seconds": 440.0,
                              "cells_per_minute": 1.5, "previous": {"run": "2026-01-02-0000", "wall_seconds": 2900.0}}))
    assert "7.3 minutes in all (previous run 2026-01-02-0000: 48.3)" in text
    assert "| base model | 4.6 |" in text and "| pix2pix | 45 |" in text and "failed cells: 1" in text
