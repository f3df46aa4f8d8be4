"""Names that key deploy records: an export variant's file stem and a latency protocol's tag.

Both are part of result.json's layout (``result["export"][stem]``, ``result["latency"][tag]``),
so they live apart from the code that measures, and every backend names its rows the same way.
"""
from __future__ import annotations

import re

__all__ = ["BACKENDS", "export_stem", "protocol_tag"]

BACKENDS = ("torch", "litert", "adb")


def export_stem(nhwc: bool = False, quantize: str | None = None) -> str:
    """File stem of an export variant: model, model-nhwc, model-int8, model-nhwc-int8."""
    return "model" + ("-nhwc" if nhwc else "") + ("-int8" if quantize else "")


def protocol_tag(protocol: dict) -> str:
    """Short key of a latency protocol: backend, delegate or non-CPU device, threads, core mask.

    {"backend": "adb", "delegate": "gpu"} -> "adb-gpu"; adb on CPU with 4 threads -> "adb-cpu-4t"
    (with core mask f0: "adb-cpu-4t-f0"); torch with 2 threads on the CPU -> "torch-2t"; on CUDA
    -> "torch-cuda-2t". Never equal to a bare backend name.
    """
    backend = str(protocol.get("backend") or "latency")
    parts = [backend]
    threads = protocol.get("threads")
    if backend == "adb":
        delegate = protocol.get("delegate") or ("gpu" if protocol.get("use_gpu") else "cpu")
        parts.append(str(delegate))
        if delegate != "gpu" and isinstance(threads, int) and threads > 0:
            parts.append(f"{threads}t")
    else:
        device = str(protocol.get("device") or "cpu").split(":", 1)[0]
        if device != "cpu":
            parts.append(re.sub(r"[^A-Za-z0-9]+", "", device) or "dev")
        if isinstance(threads, int) and threads > 0:
            parts.append(f"{threads}t")
        elif len(parts) == 1:
            parts.append("host")
    mask = protocol.get("core_mask")
    if mask:
        parts.append(str(mask).strip().lower().removeprefix("0x"))
    return "-".join(parts)

