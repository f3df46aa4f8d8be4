"""The CPU peak the kernel and throughput benchmarks set achieved FLOP/s against (measured once per run).

`sweep(ctx)` times square fp32 GEMMs through torch and numpy (`Scale.peak_sizes`, 1 and the run's
thread count) and through LiteRT (a pure FULLY_CONNECTED model, `Scale.peak_litert_sizes`), and
keeps the best at the run's thread count as a callable to interleave with the models. `final(ctx,
rates)` then applies `e2gan.deploy.gemm_peak.machine_peak`: the theoretical FMA peak, raised if
anything measured in the run (GEMMs, lone convs, models) exceeds it — so no fraction of it is above 100%.
"""
from __future__ import annotations

from benchmarks.common import Context


def _litert_extra(ctx: Context) -> dict:
    from e2gan.deploy.litert_gemm import litert_gemm_call

    return {f"LiteRT FULLY_CONNECTED {n}² (XNNPACK) x{ctx.threads}": litert_gemm_call(n, ctx.threads, ctx.work / "export")
            for n in ctx.scale.peak_litert_sizes}


def _call_of(row: dict, ctx: Context, extra: dict):
    """A callable (and its FLOPs) that repeats the sweep's best GEMM at the run's thread count."""
    import numpy as np
    import torch

    if row["size"] is None:
        return extra[row["library"]]
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(row["size"], row["size"], generator=gen), torch.randn(row["size"], row["size"], generator=gen)
    flop = 2.0 * row["size"] ** 3
    if row["library"].startswith("numpy"):
        an, bn = a.numpy(), b.numpy()
        return (lambda: np.matmul(an, bn)), flop
    out = torch.empty_like(a)
    return (lambda: torch.mm(a, b, out=out)), flop


def sweep(ctx: Context) -> dict:
    """{'sweep': rows, 'best': the best row at ctx.threads, 'call', 'flop'} (cached in ctx.shared)."""
    if "cpu_peak" not in ctx.shared:
        from e2gan.deploy.gemm_peak import gemm_sweep

        ctx.log("CPU peak: GEMM sweep (torch, numpy, LiteRT)")
        extra = _litert_extra(ctx)
        rows = gemm_sweep(ctx.threads, sizes=ctx.scale.peak_sizes, seconds=0.2, extra=extra)
        at_threads = [r for r in rows if r["threads"] == ctx.threads] or rows
        best = max(at_threads, key=lambda r: r["gflops"])
        call, flop = _call_of(best, ctx, extra)
        ctx.shared["cpu_peak"] = {"sweep": rows, "best": best, "call": call, "flop": flop}
    return ctx.shared["cpu_peak"]


def label(row: dict) -> str:
    return f"{row['library']} {row['size']}² x{row['threads']}" if row["size"] else row["library"]


def final(ctx: Context, rates: dict[str, float]) -> dict:
    """machine_peak over the sweep plus every other rate measured in the run ({what: GFLOP/s})."""
    from e2gan.deploy.gemm_peak import machine_peak

    return machine_peak(ctx.threads, sweep=sweep(ctx)["sweep"], rates=rates)


def describe(peak: dict) -> str:
    """One line: the peak, what the theoretical part read and assumed, and the best GEMM."""
    t, h = peak["theoretical"], peak["honest"]
    read = f"{t['gflops']:.0f}" if t["gflops"] else "—"
    return (f"peak {peak['gflops']:.0f} GFLOP/s ({'raised: ' + h['note'] if h['fixed'] else 'theoretical'}; "
            f"theoretical {t['cores']} cores × {t['flop_per_cycle_per_core']} FLOP/cycle × "
            f"{t['clock_ghz'] or 0:.2f} GHz = {read}); best GEMM {peak['measured_gemm_gflops']:.0f} GFLOP/s "
            f"({peak['measured_gemm_by']})")
