"""The theoretical FMA peak from a cpuinfo text, and the honest peak that no measured rate exceeds."""
from __future__ import annotations

import pytest

from e2gan.deploy.cpu_peak import honest_peak, parse_cpuinfo, theoretical_peak


def _cpuinfo(n: int, vendor: str, family: int, flags: str, mhz: float = 2596.152, name: str = "AMD EPYC",
             threads_per_core: int = 1) -> str:
    blocks = []
    for i in range(n):
        blocks.append("\n".join([
            f"processor\t: {i}", f"vendor_id\t: {vendor}", f"cpu family\t: {family}", "model\t\t: 17",
            f"model name\t: {name}", f"cpu MHz\t\t: {mhz}", "physical id\t: 0",
            f"core id\t\t: {i // threads_per_core}", f"flags\t\t: fpu sse sse2 {flags}"]))
    return "\n\n".join(blocks) + "\n"


ZEN4 = _cpuinfo(2, "AuthenticAMD", 25, "avx fma avx2 avx512f avx512bw avx512_bf16")


def test_parse_cpuinfo_reads_cores_flags_and_clock():
    info = parse_cpuinfo(ZEN4)
    assert info["logical"] == 2 and info["physical_cores"] == 2
    assert {"avx2", "avx512f", "fma"} <= info["flags"]
    assert info["family"] == 25 and info["vendor"] == "AuthenticAMD" and info["mhz"] == [2596.152, 2596.152]
    ht = parse_cpuinfo(_cpuinfo(4, "GenuineIntel", 6, "avx fma avx2", threads_per_core=2))
    assert ht["logical"] == 4 and ht["physical_cores"] == 2   # SMT siblings share a core
    assert parse_cpuinfo("")["physical_cores"] == 0


@pytest.mark.parametrize("text, threads, flop_per_cycle, cores", [
    (ZEN4, 2, 32, 2),   # Zen 4: AVX-512 through two 256-bit FMA pipes -> 2 x 8 lanes x 2
    (_cpuinfo(2, "AuthenticAMD", 26, "avx fma avx2 avx512f"), 2, 64, 2),      # Zen 5: 512-bit pipes
    (_cpuinfo(4, "GenuineIntel", 6, "avx fma avx2 avx512f"), 2, 64, 2),       # threads < cores
    (_cpuinfo(2, "GenuineIntel", 6, "avx fma avx2"), 8, 32, 2),               # AVX2: 8 lanes; cores cap threads
    (_cpuinfo(1, "GenuineIntel", 6, ""), 1, 16, 1),                           # SSE only: 4 lanes
])
def test_theoretical_peak_is_cores_units_lanes_fma_clock(text, threads, flop_per_cycle, cores):
    t = theoretical_peak(parse_cpuinfo(text), threads, sysfs_ghz=None)
    assert t["flop_per_cycle_per_core"] == flop_per_cycle and t["cores"] == cores
    assert t["clock_ghz"] == pytest.approx(2.596152)
    assert t["gflops"] == pytest.approx(cores * flop_per_cycle * 2.596152)
    assert t["parts"]["fma_units"][0] == "assumed" and t["parts"]["vector"][0] == "read"
    assert t["parts"]["clock"][0] == "read" and "cpu MHz" in t["parts"]["clock"][1]


def test_clock_sources_take_the_highest_stated_one():
    t = theoretical_peak(parse_cpuinfo(ZEN4), 2, sysfs_ghz=3.7)
    assert t["clock_ghz"] == 3.7 and "cpufreq" in t["parts"]["clock"][1]
    named = _cpuinfo(1, "GenuineIntel", 6, "avx fma avx2", mhz=1200.0, name="Intel Xeon Gold 6148 @ 2.40GHz")
    assert theoretical_peak(parse_cpuinfo(named), 1, sysfs_ghz=None)["clock_ghz"] == 2.4
    assert theoretical_peak(parse_cpuinfo(ZEN4), 2, clock_ghz=3.0, sysfs_ghz=None)["gflops"] == pytest.approx(192.0)


def test_honest_peak_keeps_the_theoretical_one_when_nothing_exceeds_it():
    t = theoretical_peak(parse_cpuinfo(ZEN4), 2, sysfs_ghz=None)   # 166.2 GFLOP/s at 2.596 GHz
    h = honest_peak(t, {"torch.mm 512²": 150.0, "model": 90.0})
    assert h["fixed"] is False and h["gflops"] == pytest.approx(t["gflops"])
    assert h["best_measured_by"] == "torch.mm 512²"


def test_honest_peak_moves_the_clock_when_a_measured_rate_exceeds_it():
    t = theoretical_peak(parse_cpuinfo(ZEN4), 2, sysfs_ghz=None)
    rates = {"torch.mm 512²": 181.7, "LiteRT model": 200.0, "lone conv": 120.0}
    h = honest_peak(t, rates)
    assert h["fixed"] is True and h["gflops"] == pytest.approx(200.0)
    assert h["clock_ghz"] == pytest.approx(200.0 / 64) and h["plausible"]
    assert all(v / h["gflops"] <= 1.0 for v in rates.values())   # no ratio above 100%
    assert "LiteRT model" in h["note"]
    wild = honest_peak(t, {"miscounted": 500.0})   # 7.8 GHz: the count or the assumption is wrong
    assert wild["plausible"] is False and "wrong" in wild["note"]


def test_honest_peak_without_a_clock_uses_the_measured_rates():
    info = parse_cpuinfo(ZEN4)
    info["mhz"] = []
    t = theoretical_peak(info, 2, sysfs_ghz=None)
    assert t["gflops"] is None
    assert honest_peak(t, {"gemm": 100.0})["gflops"] == 100.0
    assert honest_peak(t, {})["gflops"] is None


def test_machine_peak_sets_the_sweep_beside_the_theoretical_peak():
    from e2gan.deploy.gemm_peak import gemm_sweep, machine_peak

    sweep = gemm_sweep(1, sizes=(32, 64), seconds=0.0)
    assert {(r["size"], r["threads"]) for r in sweep} >= {(32, 1), (64, 1)}
    assert all(r["gflops"] > 0 and r["reps"] >= 3 for r in sweep)
    m = machine_peak(1, sweep=sweep, rates={"model": 1e-3}, cpuinfo=parse_cpuinfo(ZEN4))
    assert m["measured_gemm_gflops"] == max(r["gflops"] for r in sweep)
    assert m["gflops"] >= m["measured_gemm_gflops"] and m["gflops"] >= m["theoretical"]["gflops"] - 1e-9
    assert m["theoretical"]["cores"] == 1


def test_host_latency_fraction_is_of_the_honest_peak(monkeypatch):
    import torch

    import e2gan.deploy.gemm_peak as gp
    from e2gan.deploy.latency import host_latency

    monkeypatch.setattr(gp, "_SWEEPS", {1: [{"library": "torch.mm (MKL/oneDNN)", "size": 64, "threads": 1,
                                             "gflops": 1e-6, "reps": 3}]})   # a sweep slower than anything
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    row = host_latency(conv, torch.rand(1, 3, 32, 32), warmup=1, runs=3, threads=1)
    assert row["peak_fraction"] == row["achieved_gflops"] / row["gemm_peak_gflops"] <= 1.0
    assert row["gemm_peak"]["measured_gemm_gflops"] == 1e-6
    assert row["gemm_peak_gflops"] >= row["gemm_peak"]["theoretical_gflops"] or row["gemm_peak"]["raised"]
