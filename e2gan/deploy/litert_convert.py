"""litert-torch conversion and what a failed conversion is turned into: one line naming the layer.

Anything the converter rejects is caught; the failing leaf layer is found by converting the
candidates one by one (the likeliest first, from the op and source location in the message).
Also dynamic-int8 quantization of a converted model (ai-edge-quantizer).
"""
from __future__ import annotations

import contextlib
import inspect
import io
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor, nn

from e2gan.errors import InputError

__all__ = ["convert_module", "quantize_dynamic_int8"]


@contextmanager
def _litert_progress(show: bool) -> Iterator[None]:
    import litert_torch

    before = litert_torch.config.show_progress
    litert_torch.config.show_progress = bool(show)
    try:
        yield
    finally:
        litert_torch.config.show_progress = before


def _first_line(text: str, limit: int = 220) -> str:
    line = next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


_OP_PATTERNS = (re.compile(r"failed to legalize operation '([\w.]+)'"),
                re.compile(r"Lowering not found:\s*([\w.]+)"),
                re.compile(r"no lowering for\s*([\w.]+)", re.IGNORECASE),
                re.compile(r"'([\w]+\.[\w.]+)' op\b"),
                re.compile(r"\b(aten\.[\w.]+)"))
_LOC = re.compile(r"([\w./\\-]+\.py):(\d+)")


def _failing_op(message: str) -> str | None:
    for pat in _OP_PATTERNS:
        m = pat.search(message)
        if m:
            return m.group(1)
    return None


def _class_matches_location(cls: type, message: str) -> bool:
    """Whether the MLIR source location in the error points into ``cls``'s own methods."""
    for file, line in _LOC.findall(message):
        for attr in ("forward", "_conv_forward"):
            fn = getattr(cls, attr, None)
            if fn is None:
                continue
            try:
                src = inspect.getsourcefile(fn) or ""
                lines, start = inspect.getsourcelines(fn)
            except (OSError, TypeError):
                continue
            if Path(src).as_posix().endswith(Path(file).as_posix().lstrip("./")) and start <= int(line) < start + len(lines):
                return True
    return False


def _leaf_calls(module: nn.Module, sample: tuple) -> list[tuple[str, nn.Module, tuple]]:
    """(name, leaf, input args) of every leaf module call in one forward pass, in call order."""
    calls: list[tuple[str, nn.Module, tuple]] = []
    handles = []
    for name, m in module.named_modules():
        if len(list(m.children())) == 0:
            handles.append(m.register_forward_pre_hook(
                lambda mod, args, _n=name: calls.append((_n, mod, tuple(a.detach().clone() if isinstance(a, Tensor) else a for a in args)))))
    try:
        with torch.no_grad():
            module(*sample)
    finally:
        for h in handles:
            h.remove()
    return calls


def _find_culprit(module: nn.Module, sample: tuple, message: str, max_tries: int = 16) -> tuple[str, nn.Module] | None:
    """The first leaf layer that fails to convert on its own, trying the likeliest first."""
    import litert_torch

    op = (_failing_op(message) or "").lower()
    seen, candidates = set(), []
    for name, leaf, args in _leaf_calls(module, sample):
        if not all(isinstance(a, Tensor) for a in args):
            continue
        sig = (type(leaf).__name__, leaf.extra_repr(), tuple(tuple(a.shape) for a in args))
        if sig in seen:
            continue
        seen.add(sig)
        is_conv = isinstance(leaf, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                                    nn.ConvTranspose3d))
        rank = (0 if _class_matches_location(type(leaf), message) else 1,
                0 if ("convolution" in op) == is_conv else 1)
        candidates.append((rank, len(candidates), name, leaf, args))
    candidates.sort(key=lambda c: (c[0], c[1]))
    for _, _, name, leaf, args in candidates[:max_tries]:
        try:
            litert_torch.convert(leaf.eval(), args)
        except Exception:  # noqa: BLE001 - any converter failure marks the culprit
            return name, leaf
    return None


def convert_module(module: nn.Module, sample: tuple, progress: bool) -> bytes:
    """The .tflite bytes of ``module`` traced on ``sample``; a converter failure -> one-line InputError."""
    import litert_torch

    with _litert_progress(progress):
        try:
            edge = litert_torch.convert(module.eval(), sample)
            return bytes(edge.model_content())
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - the converter raises plain Exceptions/ValueErrors
            message = f"{type(exc).__name__}: {exc}"
            op = _failing_op(message) or "unknown op"
            culprit = None
            try:
                culprit = _find_culprit(module, sample, message)
            except Exception:  # noqa: BLE001 - the search is best effort; the op name still helps
                pass
            where = f"litert-torch {litert_torch.__version__}"
            if culprit:
                name, leaf = culprit
                name = name.removeprefix("generator.").removeprefix("wrapped.generator.").removeprefix("wrapped.")
                loc = _LOC.search(message)
                at = f" at {Path(loc.group(1)).name}:{loc.group(2)}" if loc else ""
                raise InputError(f"layer '{name}' ({type(leaf).__name__}: {leaf.extra_repr()})", where,
                                 f"a layer LiteRT can convert; the converter failed to lower {op}{at}") from None
            raise InputError(f"model cannot be converted ({op})", where,
                             f"ops LiteRT supports; converter said: {_first_line(message)}") from None


def quantize_dynamic_int8(float_model: bytes) -> bytes:
    """int8 weights, float activations quantized on the fly (ai-edge-quantizer's dynamic_wi8_afp32)."""
    from ai_edge_quantizer import quantizer, recipe

    q = quantizer.Quantizer(bytearray(float_model))
    q.load_quantization_recipe(recipe.dynamic_wi8_afp32())
    # Its transformation step draws a progress bar whatever enable_progress_bar says.
    with contextlib.redirect_stderr(io.StringIO()):
        return bytes(q.quantize(enable_progress_bar=False, enable_progress_report=False).quantized_model)
