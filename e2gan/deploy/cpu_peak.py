"""The CPU's theoretical fp32 FMA peak, and the honest peak a measured rate is set against.

theoretical GFLOP/s = cores x FMA units per core x fp32 lanes per unit x 2 (an FMA is two FLOPs)
x clock (GHz). What ``/proc/cpuinfo`` and sysfs say is *read* (vector width from the avx512f /
avx2 / sse flags, the fma flag, physical cores, the clock); what they cannot say is *assumed* and
named as such (the number and width of the FMA units, from the CPU vendor and family).

The clock a virtual machine shows is usually its nominal (TSC) rate, not the boost clock its cores
run at, so a peak computed from it can sit below what a GEMM reaches. A measured rate above the
peak proves the peak wrong: ``honest_peak`` then raises the clock to the lowest one that explains
every measured rate and says so — the peak moves, the measured ratios are never clipped.
"""
from __future__ import annotations

import re
from pathlib import Path

__all__ = ["parse_cpuinfo", "read_cpuinfo", "theoretical_peak", "honest_peak", "fma_datapath"]

MAX_PLAUSIBLE_GHZ = 6.0   # above every shipping x86 boost clock
SYSFS_MAX_FREQ = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")


def parse_cpuinfo(text: str) -> dict:
    """vendor, family, model, model_name, flags, logical CPUs, physical cores and the MHz values
    of a ``/proc/cpuinfo`` text (x86 layout: one block per logical CPU)."""
    blocks = [b for b in re.split(r"\n\s*\n", text.strip()) if b.strip()]
    cpus = []
    for block in blocks:
        fields = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        if "processor" in fields:
            cpus.append(fields)
    if not cpus:
        return {"logical": 0, "physical_cores": 0, "flags": set(), "mhz": [], "vendor": None,
                "family": None, "model": None, "model_name": None}
    first = cpus[0]
    cores = {(c.get("physical id", "0"), c.get("core id", c["processor"])) for c in cpus}

    def num(v):
        try:
            return int(v)
        except (TypeError, ValueError):
            return None

    mhz = []
    for c in cpus:
        try:
            mhz.append(float(c["cpu MHz"]))
        except (KeyError, ValueError):
            pass
    return {"vendor": first.get("vendor_id"), "family": num(first.get("cpu family")), "model": num(first.get("model")),
            "model_name": first.get("model name"), "flags": set(first.get("flags", "").split()),
            "logical": len(cpus), "physical_cores": len(cores), "mhz": mhz}


def read_cpuinfo(path: str | Path = "/proc/cpuinfo") -> dict:
    """parse_cpuinfo of this machine (empty fields where the file cannot be read)."""
    try:
        return parse_cpuinfo(Path(path).read_text(errors="replace"))
    except OSError:
        return parse_cpuinfo("")


def _sysfs_max_ghz(path: Path = SYSFS_MAX_FREQ) -> float | None:
    try:
        return int(path.read_text().strip()) / 1e6   # kHz
    except (OSError, ValueError):
        return None


def vector_bits(flags: set[str]) -> tuple[int, str]:
    """(widest fp32 vector in bits, the flag that says so)."""
    for flag, bits in (("avx512f", 512), ("avx2", 256), ("avx", 256), ("sse2", 128), ("sse", 128)):
        if flag in flags:
            return bits, flag
    return 32, "no SIMD flag (scalar)"


def fma_datapath(info: dict) -> tuple[int, int, str]:
    """(FMA units per core, bits each unit processes per cycle, why): an assumption per vendor/family,
    chosen so the peak is an upper bound for the parts of that family."""
    bits, _ = vector_bits(info["flags"])
    vendor, family = info.get("vendor"), info.get("family")
    if vendor == "AuthenticAMD" and family in (23, 25):   # Zen 1-4: two 256-bit FMA pipes
        return 2, min(bits, 256), ("AMD family 17h/19h (Zen 1-4): two FMA pipes of at most 256 bits; "
                                   "a 512-bit FMA is issued as two 256-bit halves")
    if vendor == "AuthenticAMD" and family == 26:          # Zen 5 (desktop/server): full 512-bit pipes
        return 2, bits, "AMD family 1Ah (Zen 5): two FMA pipes of the full vector width"
    return 2, bits, "two FMA units of the full vector width per core (the widest common x86 core)"


def _clock(info: dict, sysfs_ghz: float | None) -> tuple[float | None, str]:
    """The highest clock the machine states, and where it was read."""
    found = []
    if sysfs_ghz:
        found.append((sysfs_ghz, "sysfs cpufreq cpuinfo_max_freq"))
    if info.get("mhz"):
        found.append((max(info["mhz"]) / 1000, "/proc/cpuinfo 'cpu MHz' (in a VM: the nominal rate)"))
    m = re.search(r"@\s*([0-9.]+)\s*GHz", info.get("model_name") or "")
    if m:
        found.append((float(m.group(1)), "the model name's rated clock"))
    if not found:
        return None, "not readable"
    return max(found)


def theoretical_peak(info: dict, threads: int, clock_ghz: float | None = None,
                     sysfs_ghz: float | None | bool = True) -> dict:
    """The fp32 FMA peak of ``threads`` threads (one per physical core at most) of the CPU ``info``
    describes. ``clock_ghz`` overrides the clock; ``sysfs_ghz`` True reads cpufreq, None skips it."""
    if sysfs_ghz is True:
        sysfs_ghz = _sysfs_max_ghz()
    bits, flag = vector_bits(info["flags"])
    units, unit_bits, why = fma_datapath(info)
    fma = "fma" in info["flags"] or "avx512f" in info["flags"]
    cores_avail = info.get("physical_cores") or info.get("logical") or 1
    cores = max(1, min(int(threads), cores_avail))
    flop_per_cycle = units * (unit_bits // 32) * 2   # FMA: a multiply and an add per lane; without
    # FMA, x86 cores pair a multiply pipe with an add pipe, the same two FLOPs per lane per cycle
    if clock_ghz is None:
        clock_ghz, clock_src = _clock(info, sysfs_ghz or None)
        clock_part = ("read", clock_src)
    else:
        clock_src, clock_part = "given", ("given", "given")
    parts = {
        "vector": ("read", f"{flag} in /proc/cpuinfo flags: {bits}-bit, {bits // 32} fp32 lanes"),
        "fma": ("read", "fma flag present" if fma else "no fma flag: a multiply and an add pipe assumed"),
        "fma_units": ("assumed", f"{units} x {unit_bits}-bit per core: {why}"),
        "cores": ("read", f"{cores} of {cores_avail} physical cores (one thread per core; {threads} threads)"),
        "clock": (clock_part[0], f"{clock_ghz:.3f} GHz from {clock_src}" if clock_ghz else "not readable"),
    }
    gflops = cores * flop_per_cycle * clock_ghz if clock_ghz else None
    return {"gflops": gflops, "flop_per_cycle_per_core": flop_per_cycle, "cores": cores, "clock_ghz": clock_ghz,
            "vector_bits": bits, "fma_units": units, "fma_unit_bits": unit_bits, "parts": parts,
            "cpu": {k: info.get(k) for k in ("vendor", "family", "model", "model_name")}}


def honest_peak(theoretical: dict, measured: dict[str, float]) -> dict:
    """The peak every ratio is set against: the theoretical peak, unless a measured rate exceeds it.

    measured: {what: GFLOP/s} of everything timed (GEMMs and models alike). If the best of them is
    above the theoretical peak, the peak's clock is wrong (the cores run faster than the clock read):
    the clock becomes the lowest that explains that rate and ``fixed`` says so. Returns
    {gflops, theoretical_gflops_read, best_measured_gflops, best_measured_by, fixed, clock_ghz, note}.
    """
    rates = {k: float(v) for k, v in measured.items() if v is not None and v > 0}
    best_by = max(rates, key=rates.get) if rates else None
    best = rates.get(best_by) if best_by else None
    read = theoretical.get("gflops")
    per_ghz = theoretical["cores"] * theoretical["flop_per_cycle_per_core"]
    out = {"theoretical_gflops_read": read, "best_measured_gflops": best, "best_measured_by": best_by,
           "clock_ghz_read": theoretical.get("clock_ghz"), "flop_per_cycle": per_ghz}
    if read is not None and (best is None or best <= read):
        return {**out, "gflops": read, "fixed": False, "clock_ghz": theoretical["clock_ghz"],
                "note": "theoretical FMA peak at the clock read; every measured rate is below it"}
    if best is None:
        return {**out, "gflops": None, "fixed": False, "clock_ghz": None,
                "note": "no clock readable and nothing measured: no peak"}
    clock = best / per_ghz
    implausible = (f"; no x86 core runs at {clock:.1f} GHz, so the FLOP count of '{best_by}' or the assumed "
                   "FMA units are wrong" if clock > MAX_PLAUSIBLE_GHZ else "")
    why = (f"{best:.1f} GFLOP/s measured ({best_by}) exceeds the {read:.1f} GFLOP/s of the clock read "
           f"({theoretical['clock_ghz']:.2f} GHz): the cores run faster than that clock, so the peak uses the "
           f"lowest clock that explains it, {clock:.2f} GHz" if read is not None else
           f"no clock readable: the lowest clock that explains {best:.1f} GFLOP/s ({best_by}), {clock:.2f} GHz")
    return {**out, "gflops": best, "fixed": True, "clock_ghz": clock, "note": why + implausible,
            "plausible": clock <= MAX_PLAUSIBLE_GHZ}
