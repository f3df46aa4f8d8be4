"""The machine's fp32 peak: GEMM rates measured here, the theoretical FMA peak, and the honest one.

Latency rows report achieved FLOP/s as a fraction of the peak, so results from different machines
compare as "how much of what this CPU can do" rather than as raw milliseconds. One GEMM size
through one library is not a peak (a wide convolution can beat a 1536² ``torch.mm``), so
``gemm_sweep`` times several sizes, thread counts and libraries (torch's BLAS, numpy's BLAS and,
in the benchmarks, LiteRT's XNNPACK on a pure fully-connected model) and keeps the best;
``machine_peak`` sets it beside the theoretical FMA peak (``cpu_peak``) and returns the honest
peak: the theoretical one, raised when anything measured exceeds it.
"""
from __future__ import annotations

import contextlib
import statistics
import time
from contextlib import contextmanager
from typing import Iterator

import torch

__all__ = ["measure_gemm_peak", "gemm_peak_detail", "torch_threads", "gemm_sweep", "machine_peak", "SWEEP_SIZES"]

SWEEP_SIZES = (256, 512, 1024, 1536)

_CACHE: dict[tuple[int, int], dict] = {}


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run a block with torch's intra-op thread count set to ``threads`` (None: unchanged)."""
    before = torch.get_num_threads()
    if threads is not None:
        if int(threads) < 1:
            from e2gan.errors import InputError

            raise InputError(f"threads={threads}", "latency", "a thread count >= 1")
        torch.set_num_threads(int(threads))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def gemm_peak_detail(threads: int | None = None, seconds: float = 0.5, size: int = 1536,
                     min_reps: int = 3, cache: bool = True) -> dict:
    """Median GFLOP/s of ``size``x``size`` fp32 matmuls repeated for about ``seconds``.

    Returns {'gflops', 'threads', 'size', 'reps', 'rep_gflops', 'seconds'}. Cached per
    (threads, size) for the process: the number is a property of the machine, and re-measuring
    it in every latency call would cost more than the latency itself.
    """
    with torch_threads(threads) as n:
        key = (n, int(size))
        if cache and key in _CACHE:
            return dict(_CACHE[key])
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(size, size, generator=gen)
        b = torch.randn(size, size, generator=gen)
        out = torch.empty(size, size)
        torch.mm(a, b, out=out)  # warm-up: first call pays for thread start-up and packing buffers
        flop = 2.0 * size ** 3
        times: list[float] = []
        t_start = time.perf_counter()
        while len(times) < min_reps or time.perf_counter() - t_start < seconds:
            t0 = time.perf_counter()
            torch.mm(a, b, out=out)
            times.append(time.perf_counter() - t0)
            if len(times) >= 200:
                break
        rates = [flop / t / 1e9 for t in times]
        detail = {"gflops": statistics.median(rates), "threads": n, "size": int(size), "reps": len(times),
                  "rep_gflops": [round(r, 2) for r in rates], "seconds": time.perf_counter() - t_start,
                  "what": f"median GFLOP/s of a {size}x{size} fp32 torch.mm"}
    if cache:
        _CACHE[key] = dict(detail)
    return detail


def measure_gemm_peak(threads: int | None = None, seconds: float = 0.5, size: int = 1536) -> float:
    """GFLOP/s of a large fp32 matmul with ``threads`` torch threads (median of the repetitions)."""
    return gemm_peak_detail(threads, seconds=seconds, size=size)["gflops"]


def _best_rate(call, flop: float, seconds: float, min_reps: int = 3, max_reps: int = 100) -> tuple[float, int]:
    """Best GFLOP/s of repeated calls for about ``seconds`` after one warm-up call (a peak is the best)."""
    call()
    best, reps, t_start = 0.0, 0, time.perf_counter()
    while reps < min_reps or (time.perf_counter() - t_start < seconds and reps < max_reps):
        t0 = time.perf_counter()
        call()
        best = max(best, flop / (time.perf_counter() - t0) / 1e9)
        reps += 1
    return best, reps


def _numpy_threads(threads: int):
    """numpy's BLAS limited to ``threads`` (threadpoolctl), or None when it cannot be limited."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=threads, user_api="blas")


def gemm_sweep(threads: int, sizes: tuple[int, ...] = SWEEP_SIZES, seconds: float = 0.2,
               libraries: tuple[str, ...] = ("torch", "numpy"), extra: dict | None = None) -> list[dict]:
    """Best GFLOP/s of square fp32 GEMMs per (library, size, thread count), thread counts 1..``threads``
    (fewer threads never have more to give, but on a busy machine they sometimes measure higher).

    extra: {name: (call, flop)} of other GEMM kernels to time the same way (LiteRT's, in the
    benchmarks). Returns [{library, size, threads, gflops, reps}].
    """
    import numpy as np

    out = []
    counts = sorted({1, int(threads)})
    gen = torch.Generator().manual_seed(0)
    for size in sizes:
        a, b = torch.randn(size, size, generator=gen), torch.randn(size, size, generator=gen)
        res = torch.empty(size, size)
        an, bn = a.numpy(), b.numpy()
        flop = 2.0 * size ** 3
        for n in counts:
            if "torch" in libraries:
                with torch_threads(n):
                    g, reps = _best_rate(lambda: torch.mm(a, b, out=res), flop, seconds)
                out.append({"library": "torch.mm (MKL/oneDNN)", "size": size, "threads": n, "gflops": g, "reps": reps})
            if "numpy" in libraries:
                limit = _numpy_threads(n)
                if limit is None and n != threads:
                    continue
                with limit if limit is not None else contextlib.nullcontext():
                    g, reps = _best_rate(lambda: np.matmul(an, bn), flop, seconds)
                out.append({"library": "numpy.matmul (its BLAS)", "size": size, "threads": n, "gflops": g,
                            "reps": reps})
    for name, (call, flop) in (extra or {}).items():
        g, reps = _best_rate(call, flop, seconds)
        out.append({"library": name, "size": None, "threads": int(threads), "gflops": g, "reps": reps})
    return out


_SWEEPS: dict[int, list[dict]] = {}


def cached_sweep(threads: int, seconds: float = 0.05) -> list[dict]:
    """gemm_sweep (torch and numpy) once per thread count per process: a property of the machine."""
    if int(threads) not in _SWEEPS:
        _SWEEPS[int(threads)] = gemm_sweep(int(threads), seconds=seconds)
    return [dict(r) for r in _SWEEPS[int(threads)]]


def machine_peak(threads: int, sweep: list[dict] | None = None, rates: dict[str, float] | None = None,
                 cpuinfo: dict | None = None, seconds: float = 0.2) -> dict:
    """The measured GEMM peak (best of ``sweep``, measured now when None), the theoretical FMA peak,
    and the honest peak (``cpu_peak.honest_peak`` over the sweep and any other measured ``rates``).

    Returns {gflops (the honest peak), measured_gemm_gflops, measured_gemm_by, theoretical (the
    read parts and assumptions), honest (how the peak was chosen), sweep}.
    """
    from e2gan.deploy.cpu_peak import honest_peak, read_cpuinfo, theoretical_peak

    sweep = gemm_sweep(threads, seconds=seconds) if sweep is None else sweep
    best = max(sweep, key=lambda r: r["gflops"]) if sweep else None
    label = lambda r: f"{r['library']} {r['size']}² x{r['threads']}" if r["size"] else r["library"]  # noqa: E731
    theo = theoretical_peak(cpuinfo if cpuinfo is not None else read_cpuinfo(), threads)
    measured = {label(r): r["gflops"] for r in sweep}
    measured.update(rates or {})
    honest = honest_peak(theo, measured)
    return {"gflops": honest["gflops"], "measured_gemm_gflops": best["gflops"] if best else None,
            "measured_gemm_by": label(best) if best else None, "theoretical": theo, "honest": honest,
            "sweep": sweep, "threads": int(threads)}
