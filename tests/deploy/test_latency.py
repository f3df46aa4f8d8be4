"""Host latency protocol (torch fast; LiteRT on the exported tiny model is slow) and the GEMM peak."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from e2gan.deploy.gemm_peak import gemm_peak_detail, measure_gemm_peak, torch_threads
from e2gan.deploy.latency import host_latency, summarise_times
from e2gan.errors import InputError
from e2gan.metrics.cost import count_macs


def _tiny_conv() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1)).eval()


def test_summarise_times_percentiles():
    s = summarise_times([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert s["median_ms"] == pytest.approx(50.5)
    assert s["p10_ms"] == pytest.approx(10.9) and s["p90_ms"] == pytest.approx(90.1)
    assert s["mean_ms"] == pytest.approx(50.5) and s["min_ms"] == pytest.approx(1.0) and s["max_ms"] == pytest.approx(100.0)
    assert summarise_times([0.002])["std_ms"] == 0.0
    with pytest.raises(ValueError):
        summarise_times([])


def test_torch_latency_row_and_flop_rate():
    model, x = _tiny_conv(), torch.rand(1, 3, 32, 32)
    before = torch.get_num_threads()
    row = host_latency(model, x, warmup=1, runs=7, threads=1, backend="torch", gemm_peak=50.0)
    assert torch.get_num_threads() == before  # thread count restored
    assert row["backend"] == "torch" and row["runs"] == 7 and row["warmup"] == 1 and row["threads"] == 1
    assert 0 < row["min_ms"] <= row["p10_ms"] <= row["median_ms"] <= row["p90_ms"] <= row["max_ms"]
    macs = count_macs(model, (x,))["total"]
    assert row["macs"] == macs == 2 * 32 * 32 * 8 * 3 * 9
    assert row["achieved_gflops"] == pytest.approx(2 * macs / (row["median_ms"] / 1000) / 1e9)
    assert row["gemm_peak_gflops"] == 50.0
    assert row["peak_fraction"] == pytest.approx(row["achieved_gflops"] / 50.0)
    assert row["input_shapes"] == [[1, 3, 32, 32]]
    json.dumps(row)  # recordable as is


def test_torch_latency_of_a_two_input_generator_and_plain_callable():
    from e2gan.nets.factory import build_generator

    g = build_generator("e2gan", n_concepts=2, width=8, attn_heads=2, n_tokens=2)
    inputs = (torch.rand(1, 3, 32, 32) * 2 - 1, torch.tensor([1]))
    row = host_latency(g, inputs, warmup=1, runs=3, gemm_peak=False)
    assert row["macs"] == count_macs(g, inputs)["total"] and row["peak_fraction"] is None
    calls = []
    row = host_latency(lambda a: calls.append(a), torch.zeros(1), warmup=2, runs=3, gemm_peak=False)
    assert len(calls) == 5 and row["macs"] is None and row["achieved_gflops"] is None


@pytest.mark.parametrize("kwargs, match", [({"backend": "onnx"}, "backend"), ({"runs": 0}, "runs"),
                                           ({"warmup": -1}, "warmup"), ({"threads": 0}, "threads")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(InputError, match=match):
        host_latency(_tiny_conv(), torch.rand(1, 3, 8, 8), gemm_peak=False, **kwargs)


def test_litert_backend_rejects_missing_model(tmp_path):
    with pytest.raises(InputError, match="no .tflite model"):
        host_latency(tmp_path / "none.tflite", torch.rand(1, 3, 8, 8), backend="litert", gemm_peak=False)
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer")
    with pytest.raises(InputError, match="unreadable .tflite"):
        host_latency(bad, torch.rand(1, 3, 8, 8), backend="litert", gemm_peak=False)


def test_gemm_peak_is_measured_and_cached():
    d = gemm_peak_detail(threads=1, seconds=0.01, size=128, cache=False)
    assert d["gflops"] > 0 and d["reps"] >= 3 and d["threads"] == 1 and d["size"] == 128
    first = gemm_peak_detail(threads=1, seconds=0.01, size=96)
    assert gemm_peak_detail(threads=1, seconds=0.01, size=96) == first  # cached per (threads, size)
    assert measure_gemm_peak(1, seconds=0.01, size=96) == first["gflops"]


def test_torch_threads_context_restores():
    before = torch.get_num_threads()
    with torch_threads(1) as n:
        assert n == torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(InputError):
        with torch_threads(0):
            pass


@pytest.mark.slow
def test_litert_latency_of_the_exported_tiny_generator(tiny_export):
    from e2gan.deploy.tflite_run import tflite_io

    path = tiny_export["path"]
    shape = tflite_io(path)["inputs"][0]["shape"]
    row = host_latency(path, torch.rand(*shape), warmup=2, runs=5, threads=1, backend="litert",
                       macs=tiny_export["macs"], gemm_peak=100.0)
    assert row["backend"] == "litert" and row["threads"] == 1 and row["runs"] == 5
    assert row["macs"] == tiny_export["macs"] and row["achieved_gflops"] > 0
    assert row["versions"]["ai-edge-litert"]
    with pytest.raises(InputError, match="input shape"):
        host_latency(path, torch.rand(1, 3, 64, 64), backend="litert", gemm_peak=False)


def test_host_row_carries_the_common_keys_and_protocol():
    row = host_latency(_tiny_conv(), torch.rand(1, 3, 16, 16), warmup=2, runs=3, threads=1, gemm_peak=False)
    assert row["latency_ms"] == row["median_ms"] and row["latency_stat"] == "median of timed calls"
    assert row["protocol"] == {"backend": "torch", "threads": 1, "warmup": 2, "runs": 3, "device": "cpu",
                               "delegate": None, "statistic": "median", "timer": "time.perf_counter per call"}
    assert row["protocol_tag"] == "torch-1t"
    assert (row["threads"], row["warmup"], row["runs"]) == (1, 2, 3)  # top-level keys kept as before
