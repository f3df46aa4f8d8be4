"""A pure-GEMM LiteRT model: what LiteRT's own kernels (XNNPACK's fp32 GEMM) reach on this CPU.

A bias-free ``nn.Linear(n, n)`` applied to an (n, n) input converts to one FULLY_CONNECTED op:
2 n³ FLOPs and nothing else. The converted model is cached per size in ``cache_dir``.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["litert_gemm_call"]


def litert_gemm_call(size: int, threads: int, cache_dir: str | Path):
    """(call, flop): one invoke of the size x size FULLY_CONNECTED model with ``threads`` threads."""
    import numpy as np
    import torch
    from e2gan.deploy.tflite_run import quiet_interpreter
    from e2gan.io import atomic_write_bytes

    path = Path(cache_dir) / f"gemm-fc-{int(size)}.tflite"
    if not path.is_file():
        import litert_torch

        torch.manual_seed(0)
        lin = torch.nn.Linear(size, size, bias=False).eval()
        with torch.no_grad():
            model = litert_torch.convert(lin, (torch.randn(size, size),))
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, bytes(model.model_content()))
    interp = quiet_interpreter(path, int(threads))  # tensors allocated
    d = interp.get_input_details()[0]
    interp.set_tensor(d["index"], np.random.default_rng(0).standard_normal(tuple(d["shape"])).astype(d["dtype"]))
    return interp.invoke, 2.0 * size ** 3
