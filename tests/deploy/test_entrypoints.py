"""export_run / latency_run: what the CLI calls; results land in the run's result.json."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from e2gan.deploy import export_run, export_stem, latency_run
from e2gan.deploy.adb import Timeouts
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
    stored = read_result(run)["latency"]["adb"]
    assert stored["device"]["model"] == "Pixel 7" and stored["latency_ms"] == pytest.approx(249.684)
    assert Path(stored["raw_output"]).parent == run / "latency"
    assert json.loads(Path(row["row_file"]).read_text())["macs"] == 10_000_000


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
