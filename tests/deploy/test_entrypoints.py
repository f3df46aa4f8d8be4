"""export_run / latency_run: what the CLI calls; results land in the run's result.json."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from e2gan.deploy.protocol import export_stem
from e2gan.deploy.run_export import export_run
from e2gan.deploy.run_latency import latency_run
from e2gan.deploy.adb_session import Timeouts
from e2gan.errors import InputError
from e2gan.results import read_result, update_result
from tests.deploy.conftest import golden, make_run, write_fake_elf
from tests.deploy.fake_adb_device import FakeAdbDevice


@pytest.fixture
def run(tmp_path) -> Path:
    return make_run(tmp_path / "run")


def test_torch_latency_recorded_in_result(run):
    row = latency_run(run, "torch", threads=1, warmup=1, runs=3, gemm_peak=False)
    assert row["backend"] == "torch" and row["runs"] == 3 and row["threads"] == 1
    assert row["resolution"] == [32, 32] and row["concept"] == "hue-120" and row["macs"] > 0
    assert row["recorded"] is True
    stored = read_result(run)["latency"]["torch"]
    assert stored["median_ms"] == row["median_ms"] and stored["macs"] == row["macs"]
    assert json.loads(Path(row["row_file"]).read_text())["median_ms"] == row["median_ms"]
    assert Path(row["row_file"]).parent == run / "latency"


def test_adb_latency_via_fake_phone_recorded_in_result(run, adb_key, monkeypatch):
    tflite = run / "export" / "model.tflite"
    tflite.parent.mkdir()
    tflite.write_bytes(os.urandom(50_000))
    tflite.with_suffix(".json").write_text(json.dumps({"macs": 10_000_000, "quantize": None, "layout": "NCHW",
                                                       "resolution": [32, 32], "concept": "hue-120"}))
    binary = write_fake_elf(run.parent / "benchmark_model")
    with FakeAdbDevice(golden("tf2_4_summary_peak_memory.txt")) as dev:
        row = latency_run(run, "adb", serial=dev.serial, binary=binary, threads=2, warmup=2, runs=10,
                          core_mask="f0", adb_key=adb_key, timeout_s=5)
        assert dev.files["/data/local/tmp/e2gan/model.tflite"].data == tflite.read_bytes()
    assert row["latency_ms"] == pytest.approx(249.684)
    assert row["achieved_gflops"] == pytest.approx(2 * 10_000_000 / 0.249684 / 1e9)
    assert row["protocol"]["timeouts"]["run_s"] == 5 and row["export"]["layout"] == "NCHW"
    assert read_result(run)["latency"]["adb-cpu-2t-f0"] == read_result(run)["latency"]["adb"]
    stored = read_result(run)["latency"]["adb"]
    assert stored["device"]["model"] == "Pixel 7" and stored["latency_ms"] == pytest.approx(249.684)
    assert Path(stored["raw_output"]).parent == run / "latency"
    assert json.loads(Path(row["row_file"]).read_text())["macs"] == 10_000_000


# the keys `e2gan latency` (cli.cmd_latency) and the reports read from any row
COMMON_KEYS = {"backend", "latency_ms", "median_ms", "threads", "warmup", "runs", "peak_fraction", "protocol",
               "protocol_tag", "row_file"}
PROTOCOL_KEYS = {"backend", "threads", "warmup", "runs", "device", "delegate", "statistic"}


def _fake_export(run: Path) -> Path:
    tflite = run / "export" / "model.tflite"
    tflite.parent.mkdir(exist_ok=True)
    tflite.write_bytes(os.urandom(50_000))
    tflite.with_suffix(".json").write_text(json.dumps({"macs": 10_000_000, "layout": "NCHW"}))
    return tflite


def test_every_backend_row_has_the_same_top_level_keys_and_protocol(run, adb_key):
    torch_row = latency_run(run, "torch", threads=1, warmup=1, runs=2, gemm_peak=False)
    _fake_export(run)
    binary = write_fake_elf(run.parent / "benchmark_model")
    with FakeAdbDevice(golden("tf2_4_summary_peak_memory.txt")) as dev:
        serial = dev.serial
        adb_row = latency_run(run, "adb", serial=serial, binary=binary, threads=3, warmup=1, runs=4,
                              adb_key=adb_key, timeout_s=5)
    for row in (torch_row, adb_row):
        assert COMMON_KEYS <= set(row), COMMON_KEYS - set(row)
        assert PROTOCOL_KEYS <= set(row["protocol"]), PROTOCOL_KEYS - set(row["protocol"])
        assert row["threads"] == row["protocol"]["threads"] and row["runs"] == row["protocol"]["runs"]
        assert row["protocol"]["backend"] == row["backend"]
    assert (torch_row["threads"], torch_row["warmup"], torch_row["runs"]) == (1, 1, 2)
    assert torch_row["latency_ms"] == torch_row["median_ms"] and torch_row["protocol"]["device"] == "cpu"
    assert (adb_row["threads"], adb_row["warmup"], adb_row["runs"]) == (3, 1, 4)
    assert adb_row["protocol"]["device"] == f"Google Pixel 7 ({serial})" and adb_row["protocol"]["delegate"] == "cpu"
    assert adb_row["peak_fraction"] is None
    # kept for older readers
    assert adb_row["protocol"]["num_runs"] == 4 and adb_row["protocol"]["use_gpu"] is False
    assert json.loads(Path(adb_row["row_file"]).read_text())["threads"] == 3


def test_cli_summary_names_the_phone_thread_count(run, adb_key, capsys):
    from e2gan.cli import main

    tflite = _fake_export(run)
    binary = write_fake_elf(run.parent / "benchmark_model")
    with FakeAdbDevice(golden("tf2_4_summary_peak_memory.txt")) as dev:
        assert main(["latency", str(tflite), "--backend", "adb", "--serial", dev.serial, "--binary", str(binary),
                     "--threads", "2", "--adb-key", str(adb_key), "--timeout", "5"]) == 0
    out = capsys.readouterr().out
    assert "(2 threads)" in out and "None threads" not in out


def test_gpu_and_cpu_phone_rows_are_both_kept(run, adb_key):
    from e2gan.reporting.paper_tables.latency import _latency_ms

    _fake_export(run)
    binary = write_fake_elf(run.parent / "benchmark_model")

    def output(argv):  # a slower CPU run, a faster GPU one
        return golden("tf2_4_summary_peak_memory.txt" if "--use_gpu=false" in argv else "litert_gpu_delegate_peak.txt")

    with FakeAdbDevice(output) as dev:
        cpu = latency_run(run, "adb", serial=dev.serial, binary=binary, threads=4, adb_key=adb_key, timeout_s=5)
        gpu = latency_run(run, "adb", serial=dev.serial, binary=binary, use_gpu=True, adb_key=adb_key, timeout_s=5)
        masked = latency_run(run, "adb", serial=dev.serial, binary=binary, threads=2, core_mask="0xF0",
                             adb_key=adb_key, timeout_s=5)
    assert (cpu["protocol_tag"], gpu["protocol_tag"], masked["protocol_tag"]) == ("adb-cpu-4t", "adb-gpu", "adb-cpu-2t-f0")
    torch_row = latency_run(run, "torch", threads=1, warmup=0, runs=2, gemm_peak=False)
    assert torch_row["protocol_tag"] == "torch-1t"
    lat = read_result(run)["latency"]
    assert set(lat) == {"adb", "adb-cpu-4t", "adb-gpu", "adb-cpu-2t-f0", "torch", "torch-1t"}
    assert lat["adb-cpu-4t"]["latency_ms"] == pytest.approx(cpu["latency_ms"])
    assert lat["adb-gpu"]["latency_ms"] == pytest.approx(4.9786) and cpu["latency_ms"] == pytest.approx(249.684)
    assert lat["adb-gpu"]["protocol"]["delegate"] == "gpu"
    # the backend key stays the latest row of that backend, as single-row readers expect
    assert lat["adb"]["protocol_tag"] == "adb-cpu-2t-f0" and lat["torch"]["median_ms"] == torch_row["median_ms"]
    assert all(_latency_ms(rec) is not None for rec in lat.values())  # what the latency table reads


def test_protocol_tags():
    from e2gan.deploy.protocol import protocol_tag

    assert protocol_tag({"backend": "adb", "use_gpu": True, "threads": 4}) == "adb-gpu"
    assert protocol_tag({"backend": "adb", "delegate": "cpu", "threads": -1}) == "adb-cpu"
    assert protocol_tag({"backend": "litert", "device": "cpu", "threads": 2}) == "litert-2t"
    assert protocol_tag({"backend": "torch", "device": "cuda:0", "threads": 2}) == "torch-cuda-2t"
    assert protocol_tag({"backend": "torch"}) == "torch-host"


def test_bare_tflite_without_a_run_is_measured_but_not_recorded(tmp_path, adb_key):
    tflite = tmp_path / "m.tflite"
    tflite.write_bytes(b"x" * 1000)
    binary = write_fake_elf(tmp_path / "benchmark_model")
    with FakeAdbDevice(golden("tf1_14_no_stats.txt")) as dev:
        row = latency_run(tflite, "adb", serial=dev.serial, binary=binary, adb_key=adb_key, timeout_s=5)
    assert row["recorded"] is False and row["macs"] is None and row["latency_ms"] == pytest.approx(137.722)
    assert Path(row["raw_output"]).parent == tmp_path / "latency"


@pytest.mark.parametrize("backend, kwargs, match", [
    ("onnx", {}, "backend 'onnx'"),
    ("litert", {}, "no exported model"),
    ("adb", {}, "no device given"),
    ("adb", {"serial": "127.0.0.1:5555"}, "no exported model"),
])
def test_latency_bad_input(run, backend, kwargs, match):
    with pytest.raises(InputError, match=match):
        latency_run(run, backend, **kwargs)


def test_latency_targets(tmp_path, run):
    with pytest.raises(InputError, match="not a run directory"):
        latency_run(tmp_path, "torch")
    with pytest.raises(InputError, match="no such .tflite"):
        latency_run(tmp_path / "x.tflite", "litert")
    tflite = tmp_path / "x.tflite"
    tflite.write_bytes(b"x")
    with pytest.raises(InputError, match="torch latency needs the run"):
        latency_run(tflite, "torch")
    with pytest.raises(InputError, match="a run directory or a .tflite"):
        latency_run(tmp_path / "notes.txt", "torch")


@pytest.mark.parametrize("concept, match", [("sepia", "one of hue-120, pixelate"), (7, "an id in 0..1")])
def test_export_run_unknown_concept(run, concept, match):
    with pytest.raises(InputError, match=match):
        export_run(run, concept=concept)


def test_export_run_without_a_trained_generator(tmp_path):
    with pytest.raises(InputError, match="no trained generator"):
        export_run(tmp_path)


def test_export_stems():
    assert [export_stem(n, q) for n in (False, True) for q in (None, "dynamic-int8")] == [
        "model", "model-int8", "model-nhwc", "model-nhwc-int8"]


def test_update_result_nested_and_preserving(run):
    update_result(run, ("latency", "torch"), {"median_ms": 1.0})
    update_result(run, ("latency", "adb"), {"latency_ms": 2.0})
    update_result(run, "note", "x")
    r = read_result(run)
    assert r["latency"] == {"torch": {"median_ms": 1.0}, "adb": {"latency_ms": 2.0}} and r["note"] == "x"
    assert r["schema"] == 1  # the rest of the result is kept
    with pytest.raises(InputError, match="no result.json"):
        update_result(run.parent, "x", 1)


@pytest.mark.slow
def test_litert_latency_of_the_exported_run(tiny_run, tiny_export):
    row = latency_run(tiny_run, "litert", threads=1, warmup=1, runs=3, gemm_peak=False)
    assert row["backend"] == "litert" and row["macs"] == tiny_export["macs"]
    assert row["model"]["sha256"] == tiny_export["sha256"] and row["export"]["layout"] == "NCHW"
    assert read_result(tiny_run)["latency"]["litert"]["median_ms"] == row["median_ms"]
    assert read_result(tiny_run)["export"]["model"]["sha256"] == tiny_export["sha256"]  # not clobbered


def test_timeouts_are_a_frozen_record():
    t = Timeouts()
    with pytest.raises(AttributeError):
        t.run_s = 1  # type: ignore[misc]
