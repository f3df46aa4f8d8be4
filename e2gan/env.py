"""The environment a result was measured in: versions, device, threads, commit."""
from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "torchvision", "lightning", "numpy", "clean-fid", "lpips", "peft", "diffusers",
            "transformers", "optuna")


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# The vector and matrix extensions that pick oneDNN's kernels (a hypervisor may hide the model name).
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


def cpu_info(path: Path = Path("/proc/cpuinfo")) -> dict:
    """The CPU's model name and those of ``ISA_FLAGS`` it has (from ``path``; empty where unreadable)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return {"model": None, "isa": []}
    field = lambda key: next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith(key)), "")  # noqa: E731
    flags = set(field("flags").split())
    return {"model": field("model name") or None, "isa": [f for f in ISA_FLAGS if f in flags]}


def cpu_text(cpu) -> str:
    """One line for a ``cpu_info()`` record (or its absence, in a record written before it existed)."""
    if not isinstance(cpu, dict):
        return "CPU extensions not recorded"
    isa = ", ".join(cpu.get("isa") or []) or "no extensions read"
    return f"{cpu.get('model', '?')}: {isa}; native bf16 {'yes' if cpu.get('bf16') else 'no'}"


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16 or AMX), not by emulation."""
    import torch

    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def environment(device: str = "cpu", seed: int | None = None) -> dict:
    import torch

    from e2gan import __version__

    dev = str(device)
    name = torch.cuda.get_device_name(0) if dev.startswith("cuda") and torch.cuda.is_available() else platform.processor() or platform.machine()
    return {
        "e2gan": __version__,
        "commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": dev,
        "device_name": name,
        "torch_threads": torch.get_num_threads(),
        # Which kernels ran: float32 round-off, and so a GAN's trajectory, differs between CPUs whose
        # oneDNN paths differ (AVX2 / AVX-512 / AMX), at the same seed and code.
        "cpu": {**cpu_info(), "torch_capability": torch.backends.cpu.get_cpu_capability(),
                "bf16": cpu_has_native_bf16()},
        "seed": seed,
        "versions": {p: _version(p) for p in PACKAGES},
    }
