"""Cost measurement: MACs/FLOPs (parameters: e2gan.nets.params), stored bytes, wall time and peak memory.

MAC convention: MACs = FLOPs / 2 as counted by `torch.utils.flop_counter.FlopCounterMode`, which
counts convolutions, matmuls and attention matmuls but not element-wise ops (norms, activations,
softmax). It counts a ConvTranspose2d at its *input* resolution (each input pixel scatters one
kernel): pix2pix ResNet-9 at 256² is 49.6 GMACs this way. The often-quoted 56.8 GMACs counts
transposed convs at their *output* resolution, like a resize-conv; `analytic_conv_macs` gives
that textbook count so both can be stated.
"""
from __future__ import annotations

import contextlib
import copy
import inspect
import os
import resource
import sys
import time
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from e2gan.nets.params import count_params

__all__ = ["count_macs", "analytic_conv_macs", "describe_model", "training_step_flops",
           "bytes_of_tensors", "Stopwatch", "peak_memory_bytes", "reset_peak_memory"]


def _to_meta(model: nn.Module, inputs: tuple) -> tuple[nn.Module, tuple]:
    """Shape-only copies: the flop counter needs shapes, not values, so counting costs no compute.
    The copy is in eval mode (same counted ops; BatchNorm in train mode rejects 1x1 maps at batch 1)."""
    meta = lambda t: t.to("meta") if isinstance(t, Tensor) else t  # noqa: E731
    return copy.deepcopy(model).to("meta").eval(), tuple(meta(t) for t in inputs)


def count_macs(model: nn.Module, inputs: tuple, by_module_prefix: bool = True,
               on_meta: bool = False) -> dict[str, Any]:
    """MACs of one forward call `model(*inputs)` (no grad). on_meta: count on a meta-device copy
    (instant at any resolution; the model and inputs are not touched).

    Returns {'total': int, 'by_module': {top-level child name: int}} ('by_module' only with
    by_module_prefix; children without counted ops are listed with 0). For E2GANGenerator the
    children are its layer groups plus 'concepts'.
    """
    if on_meta:
        model, inputs = _to_meta(model, inputs)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*inputs)
    result: dict[str, Any] = {"total": counter.get_total_flops() // 2}
    if by_module_prefix:
        # Keys look like 'Global', 'ClassName', 'ClassName.child', 'ClassName.child.leaf'.
        counts = counter.get_flop_counts()
        root = type(model).__name__
        result["by_module"] = {name: sum(counts.get(f"{root}.{name}", {}).values()) // 2
                               for name, _ in model.named_children()}
    return result


def analytic_conv_macs(model: nn.Module, inputs: tuple) -> int:
    """Textbook MACs of every Conv2d, ConvTranspose2d and Linear in one forward call, counted at
    each layer's output resolution: out_elements * (in_channels / groups) * kernel_area.

    Attention matmuls are not modules and are left out; for conv-only nets this equals
    `count_macs` except that transposed convs cost (stride²)x more here.
    """
    total = 0

    def hook(m: nn.Module, _inp: Any, out: Tensor) -> None:
        nonlocal total
        if isinstance(m, nn.Linear):
            total += out.numel() * m.in_features
        else:
            k = m.weight.shape[2] * m.weight.shape[3]
            total += out.numel() * (m.in_channels // m.groups) * k

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return total


def _example_inputs(model: nn.Module, resolution: int | tuple[int, int], with_concepts: bool) -> tuple:
    h, w = (resolution, resolution) if isinstance(resolution, int) else resolution
    p = next(model.parameters())
    make = lambda c: torch.zeros(1, c, h, w, device=p.device, dtype=p.dtype)  # noqa: E731
    if tuple(inspect.signature(model.forward).parameters)[:2] == ("source", "image"):  # conditional D
        c = getattr(model, "in_channels", 6)
        return make(c // 2), make(c - c // 2)
    x = make(getattr(model, "in_channels", 3))
    if with_concepts:
        return x, torch.zeros(1, dtype=torch.long, device=p.device)
    return (x,)


def describe_model(model: nn.Module, resolution: int | tuple[int, int] = 256,
                   n_concepts_arg: bool = True) -> list[dict[str, Any]]:
    """Rows {'group', 'params', 'macs'} per top-level child (E²GAN: its layer groups and
    'concepts'; pix2pix: down/blocks/up; PatchGAN: stem/down/mid/head), then a 'total' row.

    MACs are for one image at `resolution` (int or (H, W)), counted on a meta-device copy.
    n_concepts_arg: pass a concept id to forward (ignored by pix2pix); discriminators get a
    (source, image) pair instead.
    """
    inputs = _example_inputs(model, resolution, n_concepts_arg)
    macs = count_macs(model, inputs, on_meta=True)
    rows = [{"group": name, "params": count_params(child), "macs": macs["by_module"][name]}
            for name, child in model.named_children()]
    rows.append({"group": "total", "params": count_params(model), "macs": macs["total"]})
    return rows


def training_step_flops(fn: Callable, *args, **kwargs) -> int:
    """FLOPs (not MACs) of one call of a training-step closure, e.g. G and D forward + backward.

    The closure really runs (weights update if it steps optimisers), so use a throwaway copy or
    count a step that is part of the run.
    """
    with FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return counter.get_total_flops()


def bytes_of_tensors(state_dict: Mapping[str, Tensor] | Iterable[Tensor],
                     dtype_bytes: int | None = None) -> int:
    """Bytes needed to store the tensors: numel x element size (or x dtype_bytes, e.g. 2 for fp16)."""
    tensors = state_dict.values() if isinstance(state_dict, Mapping) else state_dict
    return sum(t.numel() * (dtype_bytes or t.element_size()) for t in tensors)


class Stopwatch:
    """Wall-clock timer for training time that leaves out paused sections (e.g. evaluation).

        sw = Stopwatch()
        with sw:                  # or sw.start() ... sw.stop(); start/stop may repeat
            train_step()
            with sw.paused():
                evaluate()
        sw.elapsed                # seconds, excluding evaluate(); readable while running
    """

    def __init__(self) -> None:
        self._total = 0.0
        self._since: float | None = None

    @property
    def running(self) -> bool:
        return self._since is not None

    def start(self) -> Stopwatch:
        if self._since is None:
            self._since = time.perf_counter()
        return self

    def stop(self) -> float:
        if self._since is not None:
            self._total += time.perf_counter() - self._since
            self._since = None
        return self._total

    @property
    def elapsed(self) -> float:
        return self._total + (time.perf_counter() - self._since if self._since is not None else 0.0)

    @contextlib.contextmanager
    def paused(self):
        was_running = self.running
        self.stop()
        try:
            yield self
        finally:
            if was_running:
                self.start()

    def __enter__(self) -> Stopwatch:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _is_cuda(device: str | torch.device) -> bool:
    return torch.device(device).type == "cuda"


def _vm_hwm_bytes() -> int | None:
    """Linux peak RSS (VmHWM) in bytes; unlike ru_maxrss it can be reset via clear_refs."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_memory_bytes(device: str | torch.device = "cpu") -> dict[str, Any]:
    """Peak memory since the last reset: {'bytes': int, 'kind': str, 'device': str}.

    CUDA: torch.cuda.max_memory_allocated (tensors only). CPU: the process's peak resident set
    size from /proc/self/status VmHWM where available, else resource.getrusage ru_maxrss
    (KiB on Linux, bytes on macOS); it covers the whole process, not only tensors.
    """
    if _is_cuda(device):
        return {"bytes": int(torch.cuda.max_memory_allocated(device)), "kind": "cuda_max_allocated",
                "device": str(torch.device(device))}
    hwm = _vm_hwm_bytes()
    if hwm is not None:
        return {"bytes": hwm, "kind": "process_peak_rss", "device": "cpu"}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"bytes": int(rss if sys.platform == "darwin" else rss * 1024),
            "kind": "process_peak_rss_since_start", "device": "cpu"}


def reset_peak_memory(device: str | torch.device = "cpu") -> bool:
    """Reset the peak counter; False where it cannot be reset (CPU without Linux clear_refs),
    in which case peak_memory_bytes reports the peak since process start."""
    if _is_cuda(device):
        torch.cuda.reset_peak_memory_stats(device)
        return True
    try:  # '5' resets the peak RSS (VmHWM) of this process, see proc(5)
        with open(f"/proc/{os.getpid()}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
