"""LATEST.md composed from every run in a results folder: each benchmark's newest successful row."""
from __future__ import annotations

import json

from benchmarks.common import check
from benchmarks.latest import compose, render_latest, render_readme_block, run_files

ORDER = ("adaptation", "speed", "kernel")


def _run(started: str, benchmarks: dict, preset: str = "tiny", scale: str = "tiny", before_after=()) -> dict:
    return {"schema": "e2gan-bench/1", "started": started, "host": "host-0123abcd", "preset": preset,
            "scale": scale, "device": "cpu", "cpu_count": 2, "seconds": 10.0, "loadavg_start": [0.5, 0.5, 0.5],
            "loadavg_end": [1.0, 1.0, 1.0], "versions": {"torch": "2.x"},
            "threads": {"torch": 2, "litert": 2, "OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
            "benchmarks": benchmarks, "before_after": list(before_after)}


def _ok(key: str, measured: float, target: float = 1.0) -> dict:
    return {"title": key, "status": "ok", "seconds": 1.0, "data": {},
            "checks": [check(key, f"{key} ratio", measured, target, "<=", unit="×")]}


def _write(folder, name: str, report: dict) -> None:
    (folder / f"{name}.json").write_text(json.dumps(report))


def test_each_benchmark_comes_from_its_newest_successful_run(tmp_path):
    _write(tmp_path, "2026-01-01-0000-host-0123abcd", _run("2026-01-01T00:00:00Z", {
        "adaptation": _ok("adaptation", 1.5), "speed": _ok("speed", 3.0), "kernel": _ok("kernel", 0.9)},
        before_after=[{"benchmark": "speed", "key": "speed.x", "what": "old speed change", "before": 2.0,
                       "after": 1.0, "unit": "ms", "ratio": 2.0}]))
    _write(tmp_path, "2026-01-02-0000-host-0123abcd", _run("2026-01-02T00:00:00Z", {   # --only speed,kernel
        "speed": _ok("speed", 0.7), "kernel": {"title": "k", "status": "error", "error": "Boom: x",
                                               "seconds": 0.0, "checks": [], "data": {}}}))
    _write(tmp_path, "2026-01-03-0000-host-0123abcd", _run("2026-01-03T00:00:00Z", {   # another preset
        "adaptation": _ok("adaptation", 99.0)}, preset="small"))
    (tmp_path / "2026-01-04-0000-host-0123abcd.json").write_text("{truncated")    # being written
    (tmp_path / "fid-sample-size-2026-01-05.json").write_text("{}")               # not a run
    c = compose(tmp_path, "tiny", "tiny", ORDER)
    assert list(c["benchmarks"]) == ["adaptation", "speed", "kernel"]
    assert {n: b["run"] for n, b in c["benchmarks"].items()} == {
        "adaptation": "2026-01-01-0000-host-0123abcd", "speed": "2026-01-02-0000-host-0123abcd",
        "kernel": "2026-01-01-0000-host-0123abcd"}            # kernel's newest attempt failed: its older row stays
    assert c["benchmarks"]["speed"]["checks"][0]["measured"] == 0.7
    assert c["failed_since"] == {"kernel": {"run": "2026-01-02-0000-host-0123abcd", "error": "Boom: x"}}
    assert c["before_after"] == []   # speed's old before/after row belongs to the run no longer shown
    latest = render_latest(c)
    assert "2 of 3 targets met" in latest
    assert "| 2 | speed | speed ratio | 0.70× |" in latest and latest.count("2026-01-02-0000") >= 2
    assert "**kernel** failed in the newer run `2026-01-02-0000-host-0123abcd` (Boom: x)" in latest
    assert "small" not in latest and "99.00" not in latest
    block = render_readme_block(c)
    assert "from 2 run(s), 2026-01-01-0000 to 2026-01-02-0000" in block and "| run |" in block.splitlines()[2]


def test_a_folder_without_runs_of_the_preset_composes_nothing(tmp_path):
    assert compose(tmp_path, "tiny", "tiny", ORDER) is None
    _write(tmp_path, "2026-01-01-0000-host-0123abcd", _run("t", {"speed": _ok("speed", 1.0)}, scale="micro"))
    assert compose(tmp_path, "tiny", "tiny", ORDER) is None
    assert [p.name for p in run_files(tmp_path)] == ["2026-01-01-0000-host-0123abcd.json"]


def test_a_run_header_names_the_cpu_extensions_or_says_they_were_not_recorded():
    """Two machines can share a hostname, so a host tag alone does not say which CPU a row ran on."""
    from benchmarks.report import header

    old = _run("2026-01-01T00:00:00Z", {})
    assert "CPU extensions not recorded" in header(old)
    new = dict(old, env={"cpu": {"model": "Xeon", "isa": ["avx512f", "amx_bf16"], "bf16": True}})
    assert "Xeon: avx512f, amx_bf16; native bf16 yes" in header(new)
