"""EfficientNet-Lite0's pooled features run by LiteRT (XNNPACK) instead of torch, on the CPU.

The same network and weights, converted once per machine by litert-torch and kept in
``$XDG_CACHE_HOME/e2gan/litert`` (``~/.cache`` when unset; the temp folder when that cannot be
written), keyed by the weights' hash, the batch and the converter's version. Why: on 2 CPU cores
XNNPACK's depthwise convolutions run the backbone 2.1x faster than torch (4.9 vs 10.2 ms per 224²
image, batches of 8; 2026-12-07), and the backbone was the largest part of a cell's evaluation. Its features equal torch's to float32 round-off
(max |diff| 5e-6 on values up to 5.7) and, unlike torch's, do not depend on the thread count or on
an image's place in its batch (tested).

``E2GAN_FEATURE_RUNTIME=torch`` keeps torch; every result records the runtime it was measured with.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable

import numpy as np
import torch

RUNTIME_ENV = "E2GAN_FEATURE_RUNTIME"
RUNTIMES = ("auto", "litert", "torch")


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "e2gan" / "litert"


def spare_dir() -> Path:
    """Where the converted model goes when the cache folder cannot be written (read-only, full)."""
    return Path(tempfile.gettempdir()) / "e2gan-litert"


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "absent"


def requested_runtime() -> str:
    from e2gan.errors import InputError

    value = os.environ.get(RUNTIME_ENV, "auto").strip().lower() or "auto"
    if value not in RUNTIMES:
        raise InputError(f"{RUNTIME_ENV}={value!r}", "environment", f"one of {list(RUNTIMES)}")
    return value


def runtime_label() -> str:
    return f"LiteRT {_version('ai-edge-litert')} (XNNPACK, float32; converted by litert-torch {_version('litert-torch')})"


def _tflite_file(network: Callable[[], torch.nn.Module], sha: str, batch: int, resolution: int) -> Path:
    """The converted ``network()`` (NCHW [0,255] images -> features), converting it (and writing the
    file atomically) when this machine has none yet for these weights (``sha``)."""
    from e2gan.io import atomic_write_bytes

    name = f"effnet-lite0-pooled-{sha[:16]}-b{batch}-{resolution}px-litert-torch-{_version('litert-torch')}.tflite"
    path = cache_dir() / name
    spare = spare_dir() / name
    for found in (path, spare):
        if found.is_file():
            return found
    from e2gan.deploy.litert_convert import convert_module
    from e2gan.quiet import native_chatter_silenced

    with native_chatter_silenced():  # TensorFlow's and absl's lines at import and conversion
        from litert_torch import to_channel_last_io

        model = to_channel_last_io(network(), args=[0]).eval()
        content = convert_module(model, (torch.zeros(batch, resolution, resolution, 3),), progress=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_bytes(path, content)
    except OSError:  # a read-only or full cache folder: the temp folder (its error, if any, is raised)
        spare.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_bytes(spare, content)


class LiteRTPooled:
    """Callable: float32 [N,3,R,R] in [0,255] -> float32 features [N,1280], by LiteRT, ``batch`` at a time."""

    def __init__(self, path: Path, batch: int, threads: int):
        from e2gan.deploy.tflite_run import quiet_interpreter

        self.path, self.batch, self.threads = path, batch, threads
        self.interp = quiet_interpreter(path, threads)  # tensors allocated
        self._in = self.interp.get_input_details()[0]["index"]
        self._out = self.interp.get_output_details()[0]["index"]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        nhwc = x.detach().float().cpu().permute(0, 2, 3, 1).numpy()
        return torch.cat([self._batch(nhwc[i:i + self.batch]) for i in range(0, len(nhwc), self.batch)])

    def _batch(self, nhwc: np.ndarray) -> torch.Tensor:
        n = len(nhwc)
        if n < self.batch:  # a fixed-shape model: pad the last batch; images never mix (tested)
            nhwc = np.concatenate([nhwc, np.zeros((self.batch - n, *nhwc.shape[1:]), np.float32)])
        self.interp.set_tensor(self._in, np.ascontiguousarray(nhwc, np.float32))
        self.interp.invoke()
        return torch.from_numpy(np.array(self.interp.get_tensor(self._out)[:n]))


@lru_cache(maxsize=4)
def load_litert_pooled(network: Callable[[], torch.nn.Module], sha: str, batch: int, resolution: int,
                       threads: int) -> LiteRTPooled:
    path = _tflite_file(network, sha, batch, resolution)
    try:
        return LiteRTPooled(path, batch, threads)
    except Exception:  # noqa: BLE001 - a damaged cached file (a full disk, a copy cut short): convert again
        path.unlink(missing_ok=True)
        return LiteRTPooled(_tflite_file(network, sha, batch, resolution), batch, threads)


_FAILED: dict[tuple, str] = {}  # why LiteRT could not run, per (network, weights, batch, size): tried once


def litert_pooled_or_none(network: Callable[[], torch.nn.Module], sha: str, batch: int, resolution: int,
                          device: str) -> LiteRTPooled | None:
    """The LiteRT extractor of ``network`` (a function building the torch module to convert, the same
    object on every call so the loaded interpreter is reused) where it is asked for (or "auto") and
    can run; None means torch.

    "auto" falls back to torch on another device or when LiteRT cannot load or convert the network
    (with a warning naming why); an explicit ``litert`` that cannot run is an error.
    """
    want = requested_runtime()
    if want == "torch" or (want == "auto" and str(device) != "cpu"):
        return None
    key = (network, sha, batch, resolution)
    if key not in _FAILED:
        try:
            return load_litert_pooled(network, sha, batch, resolution, max(1, torch.get_num_threads()))
        except Exception as exc:  # noqa: BLE001 - any failure to import, convert or load means torch
            _FAILED[key] = str(exc)
            if want == "auto":
                warnings.warn(f"EfficientNet-Lite0 features run by torch: LiteRT could not run them ({exc})",
                              stacklevel=2)
    if want == "litert":
        from e2gan.errors import InputError

        raise InputError(f"{RUNTIME_ENV}=litert", "EfficientNet-Lite0 features",
                         f"a LiteRT that loads the converted backbone; it said: {_FAILED[key]}") from None
    return None
