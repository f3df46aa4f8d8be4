"""Host latency of a generator: PyTorch eager or the LiteRT interpreter, same protocol for both.

Protocol: ``warmup`` untimed calls, then ``runs`` timed calls, each timed alone with
``time.perf_counter``; median, p10/p90, mean, min and std are reported in milliseconds. Threads
are set explicitly (torch intra-op threads; the interpreter's ``num_threads``) and recorded.
MACs come from `e2gan.metrics.cost.count_macs` for torch modules (pass ``macs`` for a .tflite);
achieved GFLOP/s = 2 * MACs / median, and its fraction of the CPU's fp32 peak
(`gemm_peak.machine_peak`: the theoretical FMA peak, raised if a GEMM or this model measures above
it) says how well the model uses the machine.

Every row has the keys the CLI and the reports read, whatever the backend: ``latency_ms``
(here the median), ``median_ms``, ``threads``, ``peak_fraction``, and a ``protocol`` sub-object
(backend, threads, warmup, runs, device, ...) with its short ``protocol_tag`` (e.g. ``torch-2t``).
"""
from __future__ import annotations

import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from e2gan.deploy.protocol import protocol_tag
from e2gan.errors import InputError

__all__ = ["host_latency", "summarise_times", "BACKENDS"]

BACKENDS = ("torch", "litert")


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def summarise_times(seconds: Sequence[float]) -> dict[str, float]:
    """Median, p10, p90, mean, min, max and std (ms) of per-call wall times given in seconds."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    if ms.size == 0:
        raise ValueError("no timings")
    return {"median_ms": float(np.median(ms)), "p10_ms": float(np.percentile(ms, 10)),
            "p90_ms": float(np.percentile(ms, 90)), "mean_ms": float(ms.mean()), "min_ms": float(ms.min()),
            "max_ms": float(ms.max()), "std_ms": float(ms.std(ddof=1)) if ms.size > 1 else 0.0}


def _time_calls(call: Callable[[], Any], warmup: int, runs: int) -> list[float]:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return times


def _input_device(inputs: tuple) -> str:
    """Where the timed torch call ran: the device of the first tensor input (cpu otherwise)."""
    first = next((x for x in inputs if isinstance(x, torch.Tensor)), None)
    return str(first.device) if first is not None else "cpu"


def _as_tuple(inputs: Any) -> tuple:
    return tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)


def _torch_latency(fn, inputs: tuple, warmup: int, runs: int, threads: int | None) -> tuple[list[float], int, dict]:
    from e2gan.deploy.gemm_peak import torch_threads

    if isinstance(fn, nn.Module):
        fn = fn.eval()
    with torch_threads(threads) as n, torch.inference_mode():
        times = _time_calls(lambda: fn(*inputs), warmup, runs)
    return times, n, {"torch": torch.__version__}


def _litert_interpreter(model: Any, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.is_file():
            raise InputError("no .tflite model", str(path), "an exported model (run the export first)")
        try:
            return Interpreter(model_path=str(path), num_threads=threads), str(path)
        except (ValueError, RuntimeError) as exc:
            raise InputError("unreadable .tflite model", str(path),
                             f"a LiteRT flatbuffer ({str(exc).splitlines()[0][:160]})") from None
    if isinstance(model, (bytes, bytearray)):
        return Interpreter(model_content=bytes(model), num_threads=threads), None
    raise InputError(f"model of type {type(model).__name__}", "host_latency(backend='litert')",
                     "a .tflite path or the model's bytes")


def _litert_latency(model, inputs: tuple, warmup: int, runs: int, threads: int) -> tuple[list[float], int, dict]:
    interp, path = _litert_interpreter(model, threads)
    interp.allocate_tensors()
    details = interp.get_input_details()
    if len(details) != len(inputs):
        raise InputError(f"{len(inputs)} input(s)", path or "host_latency", f"{len(details)} input(s) the model takes")
    for d, x in zip(details, inputs):
        arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        if tuple(arr.shape) != tuple(d["shape"]):
            raise InputError(f"input shape {tuple(arr.shape)}", path or "host_latency",
                             f"{tuple(int(s) for s in d['shape'])} as exported (export at this resolution/layout)")
        interp.set_tensor(d["index"], arr.astype(d["dtype"], copy=False))
    # Inputs stay set between invokes: the timed call is the interpreter's invoke() alone.
    times = _time_calls(interp.invoke, warmup, runs)
    return times, threads, {"ai-edge-litert": _version("ai-edge-litert")}


def host_latency(fn_or_model: Any, inputs: Any, warmup: int = 5, runs: int = 30, threads: int | None = None,
                 backend: str = "torch", macs: int | None = None, gemm_peak: float | bool | None = True,
                 peak_seconds: float = 0.5) -> dict:
    """Latency of one call on the host.

    fn_or_model: torch backend: an nn.Module or any callable taking ``*inputs``; litert backend:
    a .tflite path (or its bytes). inputs: a tensor or a tuple of tensors/arrays (one per model
    input, batch included). threads: None = torch's current intra-op thread count, used for both
    backends so they compare. macs: MACs of one call; counted with cost.count_macs when None and
    fn_or_model is an nn.Module. gemm_peak: True = measure (cached per thread count), a float =
    use this GFLOP/s, False/None = skip the peak fraction.
    """
    if backend not in BACKENDS:
        raise InputError(f"backend {backend!r}", "host_latency", f"one of {', '.join(BACKENDS)}")
    if int(warmup) < 0 or int(runs) < 1:
        raise InputError(f"warmup={warmup}, runs={runs}", "host_latency", "warmup >= 0 and runs >= 1")
    threads = int(threads) if threads is not None else torch.get_num_threads()
    if threads < 1:
        raise InputError(f"threads={threads}", "host_latency", "a thread count >= 1")
    inputs = _as_tuple(inputs)

    macs_source = "given" if macs is not None else None
    if macs is None and isinstance(fn_or_model, nn.Module):
        from e2gan.metrics.cost import count_macs

        macs = count_macs(fn_or_model, inputs, by_module_prefix=False, on_meta=True)["total"]
        macs_source = "torch.utils.flop_counter (convs, matmuls; transposed convs at input resolution)"

    if backend == "torch":
        times, n_threads, versions = _torch_latency(fn_or_model, inputs, int(warmup), int(runs), threads)
    else:
        times, n_threads, versions = _litert_latency(fn_or_model, inputs, int(warmup), int(runs), threads)

    row: dict[str, Any] = {"backend": backend, **summarise_times(times), "runs": int(runs), "warmup": int(warmup),
                           "threads": n_threads, "input_shapes": [list(getattr(x, "shape", ())) for x in inputs],
                           "macs": int(macs) if macs is not None else None, "macs_source": macs_source,
                           "versions": versions,
                           "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    # the keys every latency row carries at the top level (host, LiteRT and phone alike)
    row["latency_ms"], row["latency_stat"] = row["median_ms"], "median of timed calls"
    row["protocol"] = {"backend": backend, "threads": n_threads, "warmup": int(warmup), "runs": int(runs),
                       "device": _input_device(inputs) if backend == "torch" else "cpu",
                       "delegate": "cpu" if backend == "litert" else None,
                       "statistic": "median", "timer": "time.perf_counter per call"}
    row["protocol_tag"] = protocol_tag(row["protocol"])
    median_s = row["median_ms"] / 1000.0
    row["achieved_gflops"] = 2.0 * macs / median_s / 1e9 if macs is not None and median_s > 0 else None
    peak = None
    if gemm_peak is True:   # the honest peak: theoretical FMA peak, raised by any measured rate above it
        from e2gan.deploy.gemm_peak import cached_sweep, machine_peak

        rates = {"this model": row["achieved_gflops"]} if row["achieved_gflops"] else {}
        m = machine_peak(n_threads, sweep=cached_sweep(n_threads, seconds=peak_seconds / 8), rates=rates)
        peak = m["gflops"]
        row["gemm_peak"] = {"gflops": peak, "threads": n_threads, "measured_gemm_gflops": m["measured_gemm_gflops"],
                            "measured_gemm_by": m["measured_gemm_by"], "theoretical_gflops": m["theoretical"]["gflops"],
                            "raised": m["honest"]["fixed"], "what": m["honest"]["note"]}
    elif isinstance(gemm_peak, (int, float)) and not isinstance(gemm_peak, bool):
        peak, row["gemm_peak"] = float(gemm_peak), {"gflops": float(gemm_peak), "threads": n_threads, "what": "given"}
    row["gemm_peak_gflops"] = peak
    row["peak_fraction"] = row["achieved_gflops"] / peak if peak and row["achieved_gflops"] is not None else None
    return row
