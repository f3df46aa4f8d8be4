"""The machine's practical fp32 peak: GFLOP/s of a large square matmul through torch.

Latency rows report achieved FLOP/s as a fraction of this number, so results from different
machines compare as "how much of what this CPU can do" rather than as raw milliseconds. It is a
*measured* GEMM rate (MKL/OpenBLAS via torch), not a datasheet peak: convolutions in a small
generator rarely reach it, and the gap is the point of the ratio.
"""
from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from typing import Iterator

import torch

__all__ = ["measure_gemm_peak", "gemm_peak_detail", "torch_threads"]

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
