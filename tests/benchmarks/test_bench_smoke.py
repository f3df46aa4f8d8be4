"""The benchmark harness: its bookkeeping (fast) and one run of every benchmark at a micro size (slow).

No assertion here is about speed: the harness is checked for writing the documented schema and for
computing every ratio and fraction from the numbers it measured.
"""
from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.common import check, interleave, jsonable
from benchmarks.latest import render_latest
from benchmarks.report import render_run, summary_table

ROOT = Path(__file__).resolve().parents[2]
CHECK_KEYS = {"key", "what", "measured", "unit", "target", "op", "met", "shortfall", "miss_by", "paper", "note", "basis", "cause"}


@pytest.mark.parametrize("measured, target, op, met, shortfall", [
    (12.0, 10.0, ">=", True, 10 / 12),
    (5.0, 10.0, ">=", False, 2.0),
    (0.4, 0.5, "<=", True, 0.8),
    (1.5, 0.5, "<=", False, 3.0),
    (None, 10.0, ">=", False, None),      # not reached is a miss
    (3.0, None, ">=", None, None),        # reported only
])
def test_check_verdicts(measured, target, op, met, shortfall):
    c = check("k", "what", measured, target, op, unit="×")
    assert set(c) == CHECK_KEYS
    assert c["met"] is met
    if shortfall is None:
        assert c["shortfall"] is None
    else:
        assert c["shortfall"] == pytest.approx(shortfall)
    assert (c["miss_by"] != "") == (met is False)
    if measured is None and target is not None:
        assert c["miss_by"] == "not reached"


def test_check_rejects_unknown_operator():
    with pytest.raises(ValueError):
        check("k", "what", 1.0, 1.0, ">")


def test_interleave_alternates_sides_abba():
    order = []
    calls = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    times = interleave(calls, rounds=4, warmup=1)
    assert order == ["a", "b"] + ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert {k: len(v) for k, v in times.items()} == {"a": 4, "b": 4}
    assert all(t >= 0 for v in times.values() for t in v)


def test_first_reaching_and_final_quality():
    from benchmarks.adaptation import final_quality, first_reaching

    curve = [{"step": 0, "psnr": 30.0, "train_seconds": 0.0}, {"step": 5, "psnr": 10.0, "train_seconds": 1.0},
             {"step": 10, "psnr": 13.0, "train_seconds": 2.0}, {"step": 15, "psnr": 11.0, "train_seconds": 3.0},
             {"step": 20, "psnr": 12.5, "train_seconds": 4.0}]
    assert final_quality(curve, 2) == pytest.approx(11.75)
    assert first_reaching(curve, 12.0)["step"] == 10          # step 0 never counts
    assert first_reaching(curve, 11.0, sustained=3)["step"] == 5    # 10, 13, 11 average 11.33
    assert first_reaching(curve, 12.0, sustained=3)["step"] == 10   # 13, 11, 12.5 average 12.17
    assert first_reaching(curve, 12.5, sustained=3) is None         # one good checkpoint is not enough
    assert first_reaching(curve, 20.0) is None


def test_jsonable_drops_non_finite_floats():
    assert jsonable({"a": math.inf, "b": (1, float("nan")), "c": Path("x")}) == {"a": None, "b": [1, None], "c": "x"}


def test_report_renders_misses_and_errors():
    report = {"schema": "e2gan-bench/1", "started": "t", "host": "host-x", "preset": "tiny", "scale": "tiny",
              "device": "cpu", "cpu_count": 2, "seconds": 1.0,
              "threads": {"torch": 2, "litert": 2, "OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
              "benchmarks": {
                  "speed": {"title": "Speed", "status": "ok", "seconds": 1.0, "data": {},
                            "checks": [check("s", "latency ratio", 0.8, 0.5, "<=", unit="×", note="n")]},
                  "kernel": {"title": "Kernel", "status": "error", "seconds": 0.0, "error": "Boom: x", "checks": [],
                             "data": {}}}}
    table = summary_table(report)
    assert "0.80×" in table and "≤ 0.5×" in table and "**missed** (1.60× above target)" in table
    assert "**error**" in table and "Boom: x" in table
    latest = render_latest({**report, "composed": True, "runs": {}, "failed_since": {}})
    assert "0 of 1 targets met" in latest and "## Missed targets" in latest
    assert "details not rendered" in render_run(report)  # speed's details need data it does not have


def test_unknown_benchmark_name_is_refused():
    from benchmarks.run import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--only", "speed,warp-drive"])
    assert parse_args(["--only", "kernel,adaptation"]).only == ["adaptation", "kernel"]


def test_benchmark_parts_are_parsed_and_checked():
    from benchmarks.run import parse_args

    a = parse_args(["--only", "overheads.distill"])
    assert a.only == ["overheads"] and a.parts == {"overheads": ["distill"]}
    assert parse_args(["--only", "overheads,overheads.distill"]).parts == {}   # the whole benchmark wins
    assert parse_args([]).parts == {}
    with pytest.raises(SystemExit):
        parse_args(["--only", "overheads.warp"])


def test_unknown_preset_exits_2_with_one_line_naming_the_presets():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--preset", "huge"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "huge" in lines[0] and all(p in lines[0] for p in ("tiny", "small", "paper")), lines


def test_readme_default_only_for_the_default_results_folder(tmp_path):
    from benchmarks.run import DEFAULT_README, parse_args

    assert parse_args([]).readme == str(DEFAULT_README)
    assert parse_args(["--out", str(tmp_path)]).readme == ""   # a scratch run never touches the README
    assert parse_args(["--out", str(tmp_path), "--readme", str(tmp_path / "R.md")]).readme == str(tmp_path / "R.md")


def _mini_report():
    return {"schema": "e2gan-bench/1", "started": "t", "host": "host-x", "preset": "tiny", "scale": "tiny",
            "device": "cpu", "cpu_count": 2, "seconds": 1.0,
            "threads": {"torch": 2, "litert": 2, "OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
            "benchmarks": {"speed": {"title": "Speed", "status": "ok", "seconds": 1.0, "data": {},
                                     "checks": [check("s", "latency ratio", 0.8, 0.5, "<=", unit="×", note="n")]}},
            "before_after": [{"benchmark": "overheads", "key": "k", "what": "ms/pair outside the teacher",
                              "before": 6.0, "after": 2.0, "unit": "ms", "ratio": 3.0, "change": "one barrier",
                              "basis": "same run", "note": "n"}]}


def test_update_readme_rewrites_only_the_marked_block(tmp_path, capsys):
    from benchmarks.latest import compose
    from benchmarks.latest import render_readme_block
    from benchmarks.run import README_END, README_START, update_readme

    readme = tmp_path / "README.md"
    before, after = "# Project\n\nIntro.\n\n", "\n\n## Guarantees\n\ntext\n"
    readme.write_text(f"{before}{README_START}\n| old | table |\n{README_END}{after}")
    (tmp_path / "2026-01-02-0304-host-0123abcd.json").write_text(json.dumps(_mini_report()))
    composed = compose(tmp_path, "tiny", "tiny", ("speed",))
    block = render_readme_block(composed)
    assert summary_table(composed) in block and "2026-01-02-0304" in block   # LATEST.md's renderer
    assert update_readme(readme, block) is True
    text = readme.read_text()
    assert text == f"{before}{README_START}\n{block}\n{README_END}{after}"
    assert "| old | table |" not in text
    assert update_readme(readme, block) is True and readme.read_text() == text   # idempotent
    assert not list(tmp_path.glob(".*.tmp"))
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("content", ["# no markers\n", "<!-- bench:end -->\nx\n<!-- bench:start -->\n",
                                     "<!-- bench:start -->\nno end\n"])
def test_update_readme_without_markers_only_warns(tmp_path, capsys, content):
    from benchmarks.run import update_readme

    readme = tmp_path / "README.md"
    readme.write_text(content)
    assert update_readme(readme, "| new |") is False
    assert readme.read_text() == content
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "warning" in err[0] and "bench:start" in err[0]
    assert update_readme(tmp_path / "missing.md", "x") is False   # a missing file: a warning too


def test_before_after_section_is_rendered():
    from benchmarks.report import before_after_table

    report = _mini_report()
    table = before_after_table(report)
    assert "6.00 ms" in table and "2.00 ms" in table and "3.00×" in table and "one barrier" in table
    composed = {**report, "composed": True, "runs": {}, "failed_since": {}}
    assert "## Before / after" in render_latest(composed) and "## Before / after" in render_run(report)
    assert before_after_table({**report, "before_after": []}) == ""


def test_host_tag_is_a_hash():
    from benchmarks.run import host_tag

    tag = host_tag()
    assert tag.startswith("host-") and len(tag) == 13


# ----------------------------------------------------------------------------- the whole harness, micro
@pytest.fixture(scope="module")
def micro_report(tmp_path_factory) -> tuple[dict, Path]:
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "results"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--preset", "tiny", "--scale", "micro",
                           "--runs", str(tmp / "runs"), "--out", str(out), "--threads", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = out.glob("*.json")
    return json.loads(path.read_text()), out


@pytest.mark.slow
def test_micro_run_writes_the_schema(micro_report):
    report, out = micro_report
    assert report["schema"] == "e2gan-bench/1" and report["scale"] == "micro"
    assert report["threads"]["torch"] == 1 and report["threads"]["OMP_NUM_THREADS"] == "1"
    assert list(report["benchmarks"]) == ["adaptation", "speed", "kernel", "throughput", "lora_step", "precision",
                                          "overheads", "paper_cost", "eval_share"]
    for name, b in report["benchmarks"].items():
        assert b["status"] == "ok", (name, b.get("error"), b.get("traceback"))
        assert b["checks"], name
        for c in b["checks"]:
            assert set(c) == CHECK_KEYS
            if c["target"] is not None and c["measured"] is not None:
                ok = c["measured"] >= c["target"] if c["op"] == ">=" else c["measured"] <= c["target"]
                assert c["met"] is ok, c
    md = next(out.glob("2*.md")).read_text()
    assert "| # | benchmark | measure |" in md
    latest = (out / "LATEST.md").read_text()
    assert "targets met" in latest and "| # | benchmark | measure |" in latest
    rows = {r["key"]: r for r in report["before_after"]}
    assert {"overheads.distill_procedural", "overheads.distill_diffusion"} <= set(rows)
    # The exporter's sliced reflection padding against MIRROR_PAD, in the speed and kernel benchmarks.
    assert any(k.startswith("speed.") and k.endswith(".reflect_pad") for k in rows)
    assert any(k.startswith("kernel.") and k.endswith(".reflect_pad") for k in rows)
    assert "lora_step.merged_weight" in rows   # LoRA through peft's forward (before) vs the merged weight
    for r in rows.values():
        assert r["benchmark"] in ("overheads", "speed", "kernel", "lora_step", "precision", "eval_share") and \
            r["before"] is not None and r["after"] is not None
    assert "## Before / after" in md and "## Before / after" in latest


@pytest.mark.slow
def test_micro_eval_share_comes_from_the_measurements(micro_report):
    b = micro_report[0]["benchmarks"]["eval_share"]
    d, e = b["data"], b["data"]["evaluation_seconds"]
    assert d["share"] == pytest.approx(e["after"] / (d["train_seconds"] + e["after"]))
    assert d["share_before"] == pytest.approx(e["before"] / (d["train_seconds"] + e["before"]))
    assert _measured(b, "eval_share.share") == d["share"] and d["n_test"] == 8
    assert d["max_relative_metric_difference"] < 1e-3 and d["cache_entries"] >= 2  # its targets and sources at least
    # The per-process memos (decoded images, floors) change no number: emptied, the metrics are the same.
    assert d["max_relative_metric_difference_memos"] == 0
    assert "eval_share.memos" in {r["key"] for r in micro_report[0]["before_after"]}


def _measured(b: dict, key: str):
    return next(c for c in b["checks"] if c["key"] == key)["measured"]


@pytest.mark.slow
def test_micro_adaptation_ratios_come_from_the_measurements(micro_report):
    b = micro_report[0]["benchmarks"]["adaptation"]
    d = b["data"]
    p, lo, st = d["pix2pix"], d["lora"], d["step_seconds"]
    assert p["final_psnr"] == pytest.approx(sum(q["psnr"] for q in p["curve"][-2:]) / 2)
    steps = [q["step"] for q in lo["curve"]]
    assert steps[0] == 0 and steps == sorted(steps) and steps[-1] == lo["steps"]
    clock = [q["train_seconds"] for q in lo["curve"]]
    assert clock == sorted(clock) and clock[0] == 0.0
    if lo["reach"]:
        assert lo["reach"]["psnr"] >= p["final_psnr"]
        assert d["ratios"]["time"] == pytest.approx(p["steps"] * st["pix2pix"] / (lo["reach"]["step"] * st["lora"]))
        assert d["ratios"]["flops"] == pytest.approx(p["train_flops"] / (lo["reach"]["step"] * lo["flops_per_step"]))
        assert _measured(b, "adapt.time_ratio") == pytest.approx(d["ratios"]["time"])
    else:
        assert all(q["psnr"] < p["final_psnr"] for q in lo["curve"] if q["step"] > 0)
        assert _measured(b, "adapt.time_ratio") is None
        bound = d["ratios"]["bounds_if_not_reached"]
        assert bound["time_ratio_below"] == pytest.approx(p["steps"] * st["pix2pix"] / (lo["steps"] * st["lora"]))
    # The size rows are the searched allocation's, as trained; the computed size is what trained.
    ls, s = d["lora_searched"], d["sizes"]["lora_searched"]
    assert s["ranks"] == ls["ranks"] and ls["params_trainable"] < lo["params_trainable"]
    assert _measured(b, "adapt.params_ratio_tiny") == pytest.approx(p["params_trainable"] / ls["params_trainable"])
    assert _measured(b, "adapt.bytes_fraction_tiny") == pytest.approx(
        ls["bytes_stored"] / s["e2gan_trained"]["generator_bytes_fp32"])
    for arm in ("lora", "lora_searched"):
        assert d["sizes"][arm]["e2gan_trained"]["trainable_params"] == d[arm]["params_trainable"]
    rs = d["ratios_searched"]
    if ls["reach"]:
        assert rs["time"] == pytest.approx(p["steps"] * st["pix2pix"] / (ls["reach"]["step"] * st["lora_searched"]))
    assert _measured(b, "adapt.searched.time_ratio") == rs["time"]


@pytest.mark.slow
def test_micro_speed_kernel_throughput_overheads_ratios(micro_report):
    bench = micro_report[0]["benchmarks"]
    for r in bench["speed"]["data"]["rows"]:
        assert r["ratio"] == pytest.approx(r["e2gan_ms"] / r["other_ms"])
        assert _measured(bench["speed"], f"speed.{r['pair']}.{r['resolution']}.{r['backend']}") == pytest.approx(r["ratio"])
    assert {r["backend"] for r in bench["speed"]["data"]["rows"]} == {"torch", "litert"}
    for r in bench["kernel"]["data"]["rows"]:
        achieved = 2 * r["litert"]["macs"] / (r["litert"]["median_ms"] / 1000) / 1e9
        assert r["litert"]["peak_fraction"] == pytest.approx(achieved / r["peak_gflops"])
        # the peak is a peak: no CPU rate measured in the run is above it (it is raised, never clipped)
        assert all(r[s]["peak_fraction"] <= 1.0 + 1e-9 for s in ("litert", "litert_mirror_pad", "torch", "conv3x3"))
        assert r["gemm_interleaved"]["best_gflops"] <= r["peak_gflops"] * (1 + 1e-9)
    cp = bench["kernel"]["data"]["cpu_peak"]
    assert cp["gflops"] >= cp["theoretical"]["gflops"] - 1e-9 and cp["gflops"] >= cp["measured_gemm_gflops"]
    assert {"torch.mm (MKL/oneDNN)", "numpy.matmul (its BLAS)"} <= {x["library"] for x in cp["sweep"]}
    assert any(x["library"].startswith("LiteRT") for x in cp["sweep"])
    t = bench["throughput"]["data"]
    e = t["steps"]["e2gan"]
    assert e["images_per_s"] == pytest.approx(t["batch_size"] / e["step_seconds"])
    assert e["peak_fraction"] == pytest.approx(e["flops_per_step"] / e["step_seconds"] / 1e9 / t["peak_gflops"])
    assert all(s["peak_fraction"] <= 1.0 + 1e-9 for s in t["steps"].values())
    assert set(t["omp_wait_policy"]["best_of"]) == {"ACTIVE", "PASSIVE"}
    o = bench["overheads"]["data"]["study_trial"]
    assert o["overhead_seconds"] == pytest.approx(o["wall_seconds"] - o["train_seconds"] - o["evaluation_seconds"])
    assert o["overhead_fraction"] == pytest.approx(o["overhead_seconds"] / o["wall_seconds"])
    assert 0 < o["train_seconds"] < o["wall_seconds"]
    w = bench["overheads"]["data"]["wrapper"]
    assert w["outputs_identical"] is True
    assert w["overhead_median"] == pytest.approx(w["wrapper_s"]["median"] / w["raw_s"]["median"] - 1)


# ----------------------------------------------------------------------------- the run's device reaches eager and GEMM
def test_torch_call_runs_on_the_device_and_leaves_the_callers_module(tmp_path):
    import torch

    from benchmarks.speed import torch_call

    class G(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x, c):
            return self.conv(x)

    g = G()
    torch_call(g, 0, 8, "meta")()   # "meta" stands in for a GPU here: any device but the CPU
    assert next(g.parameters()).device.type == "cpu"   # still exportable and countable


def _device_ctx(device):
    from types import SimpleNamespace

    from benchmarks.common import SCALES

    scale = dataclasses.replace(SCALES["micro"], speed_resolutions=(8,), latency_rounds=(1, 1), latency_seconds=0.0)
    cfg = SimpleNamespace(model=SimpleNamespace(width=8), adapt=SimpleNamespace(pix2pix_ngf=8))
    return SimpleNamespace(scale=scale, cfg=cfg, shared={}, threads=1, device=device, log=lambda m: None)


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_speed_and_kernel_pass_the_device_through(monkeypatch, device):
    import benchmarks.kernel as kernel
    import benchmarks.speed as speed
    import e2gan.metrics.cost as cost

    seen = {"torch": [], "gemm": [], "conv": [], "syncs": 0}
    models = {k: (object(), 0) for k in ("e2gan", "pix2pix", "pix2pix-resize")}

    def fake_torch_call(m, c, res, device="cpu"):
        seen["torch"].append(device)
        return lambda: None

    def fake_gemm(size=1536, device="cpu"):
        seen["gemm"].append(device)
        return (lambda: None), 1.0

    def fake_conv(ch, res, device="cpu"):
        seen["conv"].append(device)
        return (lambda: None), 1

    def fake_sync(dev):
        def sync():
            seen["syncs"] += 1
        return sync if dev != "cpu" else None

    for mod in (speed, kernel):
        monkeypatch.setattr(mod, "torch_call", fake_torch_call)
        monkeypatch.setattr(mod, "_models", lambda ctx, w, n, t: models)
        monkeypatch.setattr(mod, "export_cached", lambda *a, **kw: {"path": "x", "macs": 1})
        monkeypatch.setattr(mod, "litert_call", lambda *a: (lambda: None))
        monkeypatch.setattr(mod, "_macs", lambda *a: 1)
        monkeypatch.setattr(mod, "cuda_sync", fake_sync)
    monkeypatch.setattr(cost, "describe_model", lambda m, res: [])
    monkeypatch.setattr(kernel, "gemm_call", fake_gemm)
    best = {"library": "torch.mm (MKL/oneDNN)", "size": 8, "threads": 1, "gflops": 1.0, "reps": 3}
    monkeypatch.setattr(kernel.peak, "sweep", lambda ctx: {"sweep": [best], "best": best, "call": lambda: None,
                                                           "flop": 1.0})
    monkeypatch.setattr(kernel.peak, "describe", lambda p: "peak")
    monkeypatch.setattr(kernel, "_conv_call", fake_conv)
    monkeypatch.setattr(kernel, "op_profile", lambda *a: {"share": {"conv": 0.5, "norm": 0.1}, "top_ops": []})
    ctx = _device_ctx(device)
    speed_rows = speed.run(ctx)["data"]["rows"]
    kernel_rows = kernel.run(ctx)["data"]["rows"]
    assert set(seen["torch"]) == {device} and set(seen["conv"]) == {device}
    # LiteRT runs on the CPU against the CPU's peak (benchmarks.peak); eager gets the device's own GEMM.
    assert seen["gemm"] == ([device] if device != "cpu" else [])
    assert (seen["syncs"] > 0) == (device != "cpu")
    assert {r["backend"]: r["device"] for r in speed_rows} == {"torch": device, "litert": "cpu"}
    assert all(r["litert"]["device"] == "cpu" and r["torch"]["device"] == device for r in kernel_rows)
    assert all(("device_gemm_peak_gflops" in r) == (device != "cpu") for r in kernel_rows)
