"""PyTorch generator -> .tflite through litert-torch, with a parity check against PyTorch.

The exported function is image -> image: an E²GAN generator's concept id is baked in as a
constant (after a LoRA merge the weights are concept-specific anyway), so the phone runs one
model per concept, like the pix2pix baseline. The .tflite is written atomically and only after
the LiteRT interpreter reproduced PyTorch on fixed, seeded inputs within ``parity_tol``.

Known converter limits are checked on the module tree before converting, so the user gets the
layer's name in one line instead of an MLIR dump; anything else the converter rejects is caught,
and the failing leaf layer is found by converting the candidates one by one.

Measured with litert-torch 0.10.0 (see DESIGN §5): a ConvTranspose2d with stride > 1 converts
only with padding=0 (any kernel, any output_padding) or with kernel - 2*padding == stride and no
output_padding. Odd kernels with padding (pix2pix's k3 s2 p1 op1) fail to legalize; with
padding *and* output_padding (e.g. k4 s2 p1 op1) it converts but computes wrong values.
"""
from __future__ import annotations

import contextlib
import copy
import inspect
import io
import re
import sys
import time
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from e2gan.errors import InputError
from e2gan.io import atomic_write, sha256_file

__all__ = ["export_tflite", "check_exportable", "ConceptBound", "QUANTIZE", "REFLECT_PADS", "SliceReflectionPad2d",
           "run_tflite", "tflite_io"]

QUANTIZE = (None, "dynamic-int8")
PARITY_INPUTS = 3
# How ReflectionPad2d reaches the .tflite: "slices" (SliceReflectionPad2d: the same values from
# row/column slices and one concatenation per side pair) or "mirror-pad" (the converter's own
# lowering, MIRROR_PAD). Measured with ai-edge-litert 2.3.0 on 2 CPU threads: the E²GAN width-16
# generator at 64² runs 2.2x faster with slices (1.39 vs 3.03 ms); the benchmarks time both.
REFLECT_PADS = ("slices", "mirror-pad")


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


class ConceptBound(nn.Module):
    """``generator(x, concept_ids)`` as ``f(x)`` with a constant concept id (one per image)."""

    def __init__(self, generator: nn.Module, concept_id: int):
        super().__init__()
        self.generator = generator
        self.concept_id = int(concept_id)
        self.register_buffer("concept_ids", torch.tensor([int(concept_id)], dtype=torch.long), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.generator(x, self.concept_ids.expand(x.shape[0]))


class SliceReflectionPad2d(nn.Module):
    """``nn.ReflectionPad2d`` from slices and concatenation: bit-identical values, and ops the
    LiteRT CPU runtime runs fast (see ``REFLECT_PADS``). Padding: (left, right, top, bottom)."""

    def __init__(self, padding: tuple[int, int, int, int]):
        super().__init__()
        self.left, self.right, self.top, self.bottom = (int(v) for v in padding)

    @staticmethod
    def _reflect(x: Tensor, dim: int, before: int, after: int) -> Tensor:
        if not (before or after):
            return x
        n = x.shape[dim]
        # Reflection excludes the edge itself: rows before..1 first, then n-2..n-1-after.
        parts = ([x.narrow(dim, i, 1) for i in range(before, 0, -1)] + [x]
                 + [x.narrow(dim, n - 1 - i, 1) for i in range(1, after + 1)])
        return torch.cat(parts, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self._reflect(self._reflect(x, -2, self.top, self.bottom), -1, self.left, self.right)


def _slice_reflection_pads(module: nn.Module, copied: bool) -> tuple[nn.Module, int]:
    """``module`` (copied first unless it already is a copy) with every ReflectionPad2d as slices."""
    if not any(isinstance(m, nn.ReflectionPad2d) for m in module.modules()):
        return module, 0
    module = module if copied else copy.deepcopy(module)
    swapped = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ReflectionPad2d):
                setattr(parent, name, SliceReflectionPad2d(tuple(child.padding)))
                swapped += 1
    return module, swapped


def _takes_concepts(generator: nn.Module) -> bool:
    params = list(inspect.signature(generator.forward).parameters.values())
    return len(params) >= 2 and params[1].default is inspect.Parameter.empty


def _merged_copy(generator: nn.Module) -> tuple[nn.Module, bool]:
    """A copy with LoRA folded into the base weights when the generator still carries peft LoRA layers."""
    if "peft" not in sys.modules:  # LoRA layers exist only if peft was imported; don't pay its import
        return generator, False
    from peft.tuners.lora import LoraLayer

    if not any(isinstance(m, LoraLayer) for m in generator.modules()):
        return generator, False
    from e2gan.nets.lora import merge_lora

    return merge_lora(copy.deepcopy(generator)), True


def _n_concepts(generator: nn.Module) -> int | None:
    concepts = getattr(generator, "concepts", None)
    n = getattr(concepts, "n_concepts", None)
    return int(n) if n is not None else None


# ----------------------------------------------------------------------------- known-bad layers
def _pair(v: Any) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _conv_transpose_problem(m: nn.ConvTranspose2d) -> str | None:
    k, s, p, op = _pair(m.kernel_size), _pair(m.stride), _pair(m.padding), _pair(m.output_padding)
    for kk, ss, pp, oo in zip(k, s, p, op):
        if ss <= 1 or pp == 0:
            continue
        if kk - 2 * pp != ss:
            return "fails to legalize it (kernel - 2*padding != stride)"
        if oo:
            return "converts it but computes wrong values (padding with output_padding)"
    return None


def check_exportable(module: nn.Module) -> None:
    """Raise a one-line InputError naming the first layer LiteRT is known not to convert correctly."""
    for name, m in module.named_modules():
        if isinstance(m, nn.ConvTranspose2d):
            problem = _conv_transpose_problem(m)
            if problem:
                k, s, p, op = (_pair(getattr(m, a)) for a in ("kernel_size", "stride", "padding", "output_padding"))
                desc = f"ConvTranspose2d k{k[0]} s{s[0]} p{p[0]} op{op[0]}"
                raise InputError(f"layer '{name or type(module).__name__}' ({desc})", "export to LiteRT",
                                 f"a convertible layer: litert-torch {problem}; use resize-conv up-sampling "
                                 "(arch 'pix2pix-resize') or ConvTranspose2d with padding=0 or kernel=2*padding+stride")


# ----------------------------------------------------------------------------- conversion
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


def _convert(module: nn.Module, sample: tuple, progress: bool) -> bytes:
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


# ----------------------------------------------------------------------------- running .tflite
def _interpreter(model: str | Path | bytes, threads: int | None = None):
    from ai_edge_litert.interpreter import Interpreter

    if isinstance(model, (bytes, bytearray)):
        return Interpreter(model_content=bytes(model), num_threads=threads)
    return Interpreter(model_path=str(model), num_threads=threads)


def tflite_io(model: str | Path | bytes) -> dict:
    """Input and output tensors of a .tflite: [{'name', 'shape', 'dtype'}]."""
    interp = _interpreter(model)
    desc = lambda ds: [{"name": d["name"], "shape": [int(s) for s in d["shape"]], "dtype": np.dtype(d["dtype"]).name} for d in ds]  # noqa: E731
    return {"inputs": desc(interp.get_input_details()), "outputs": desc(interp.get_output_details())}


def run_tflite(model: str | Path | bytes, inputs: list[np.ndarray], threads: int | None = None) -> list[np.ndarray]:
    """Outputs of the model's first output tensor for each single input (one interpreter)."""
    interp = _interpreter(model, threads)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    results = []
    for x in inputs:
        interp.set_tensor(inp["index"], np.ascontiguousarray(x, dtype=inp["dtype"]))
        interp.invoke()
        results.append(np.array(interp.get_tensor(out["index"])))
    return results


def _parity_inputs(shape: tuple[int, ...], n: int, seed: int) -> list[Tensor]:
    """Image-like inputs: uniform in [-1, 1] (the generators' input range), one seed each."""
    return [torch.rand(shape, generator=torch.Generator().manual_seed(seed + i)) * 2 - 1 for i in range(n)]


def _max_abs(a: list[np.ndarray], b: list[np.ndarray]) -> list[float]:
    return [float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) for x, y in zip(a, b)]


def _quantize_dynamic_int8(float_model: bytes) -> bytes:
    from ai_edge_quantizer import quantizer, recipe

    q = quantizer.Quantizer(bytearray(float_model))
    q.load_quantization_recipe(recipe.dynamic_wi8_afp32())
    # Its transformation step draws a progress bar whatever enable_progress_bar says.
    with contextlib.redirect_stderr(io.StringIO()):
        return bytes(q.quantize(enable_progress_bar=False, enable_progress_report=False).quantized_model)


# ----------------------------------------------------------------------------- the export
def export_tflite(generator: nn.Module, out_path: str | Path, resolution: int | tuple[int, int],
                  concept_id: int = 0, nhwc: bool = False, quantize: str | None = None,
                  parity_tol: float = 1e-4, parity_inputs: int = PARITY_INPUTS, seed: int = 0,
                  int8_tol: float | None = None, precheck: bool = True, progress: bool = False,
                  reflect_pad: str = "slices") -> dict:
    """Convert ``generator`` to a .tflite at ``out_path`` and prove it computes the same function.

    resolution: H (square) or (H, W) of the exported, fixed input shape (batch 1). concept_id:
    baked in for generators whose forward takes concept ids (ignored otherwise). nhwc: the
    .tflite takes and returns [1, H, W, 3] (phone image layout) instead of [1, 3, H, W].
    quantize: None or 'dynamic-int8' (int8 weights, float activations quantized on the fly);
    the float export is checked against ``parity_tol`` and the int8 file's difference is recorded
    separately (and checked only if ``int8_tol`` is given). precheck: reject known-bad layers
    before converting. reflect_pad: how reflection padding is lowered (``REFLECT_PADS``; the
    default, slices, computes the same values faster). Returns {path, bytes, sha256,
    parity_max_abs_diff, parity_inputs, ...}.
    """
    t_start = time.perf_counter()
    if quantize not in QUANTIZE:
        raise InputError(f"quantize {quantize!r}", "export", "none or 'dynamic-int8'")
    if reflect_pad not in REFLECT_PADS:
        raise InputError(f"reflect_pad {reflect_pad!r}", "export", f"one of {', '.join(REFLECT_PADS)}")
    h, w = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
    if h < 1 or w < 1:
        raise InputError(f"resolution {resolution}", "export", "a positive image size")
    if not (parity_tol > 0):
        raise InputError(f"parity_tol={parity_tol}", "export", "a positive tolerance")
    out_path = Path(out_path)
    if out_path.suffix != ".tflite":
        raise InputError(f"output file {out_path.name!r}", str(out_path.parent), "a path ending in .tflite")

    was_training = generator.training
    try:
        return _export(generator.eval(), out_path, h, w, concept_id, nhwc, quantize, parity_tol, parity_inputs,
                       seed, int8_tol, precheck, progress, t_start, reflect_pad)
    finally:
        generator.train(was_training)


def _export(generator: nn.Module, out_path: Path, h: int, w: int, concept_id: int, nhwc: bool,
            quantize: str | None, parity_tol: float, parity_inputs: int, seed: int, int8_tol: float | None,
            precheck: bool, progress: bool, t_start: float, reflect_pad: str) -> dict:
    generator, lora_merged = _merged_copy(generator)
    pads_sliced = 0
    if reflect_pad == "slices":
        generator, pads_sliced = _slice_reflection_pads(generator, copied=lora_merged)
    takes_concepts = _takes_concepts(generator)
    n_concepts = _n_concepts(generator)
    if takes_concepts and n_concepts is not None and not 0 <= concept_id < n_concepts:
        raise InputError(f"concept id {concept_id}", "export", f"an id in 0..{n_concepts - 1}")
    if precheck:
        check_exportable(generator)

    model: nn.Module = ConceptBound(generator, concept_id) if takes_concepts else generator
    in_ch = int(getattr(generator, "in_channels", 3))
    nchw_shape = (1, in_ch, h, w)
    if nhwc:
        from litert_torch import to_channel_last_io

        model = to_channel_last_io(model, args=[0], outputs=[0])
        shape = (1, h, w, in_ch)
    else:
        shape = nchw_shape
    model = model.eval()

    # torch's own checks (e.g. "divisible by 8") give a clearer message than the converter's.
    sample = (_parity_inputs(shape, 1, seed)[0],)
    with torch.no_grad():
        model(*sample)

    t0 = time.perf_counter()
    float_bytes = _convert(model, sample, progress)
    convert_seconds = time.perf_counter() - t0

    xs = _parity_inputs(shape, parity_inputs, seed)
    with torch.no_grad():
        ref = [model(x).numpy() for x in xs]
    float_out = run_tflite(float_bytes, [x.numpy() for x in xs])
    if float_out[0].shape != ref[0].shape:
        raise InputError(f"exported output shape {tuple(float_out[0].shape)}", str(out_path),
                         f"PyTorch's {tuple(ref[0].shape)}")
    parity = _max_abs(float_out, ref)
    info: dict[str, Any] = {"parity_max_abs_diff": max(parity), "parity_per_input": parity}
    if max(parity) > parity_tol:
        raise InputError(f"export does not match PyTorch (max abs diff {max(parity):.3g})", str(out_path),
                         f"<= {parity_tol:g} on {parity_inputs} seeded inputs; the converter mis-lowered a layer "
                         "(check its known issues) or the model is not deterministic in eval mode")

    final_bytes = float_bytes
    if quantize == "dynamic-int8":
        final_bytes = _quantize_dynamic_int8(float_bytes)
        int8 = _max_abs(run_tflite(final_bytes, [x.numpy() for x in xs]), ref)
        info.update(int8_max_abs_diff=max(int8), int8_per_input=int8, float_bytes=len(float_bytes))
        if int8_tol is not None and max(int8) > int8_tol:
            raise InputError(f"int8 export too far from PyTorch (max abs diff {max(int8):.3g})", str(out_path),
                             f"<= {int8_tol:g}; export without quantization")
    else:
        info["int8_max_abs_diff"] = None

    def write(tmp: Path) -> None:
        tmp.write_bytes(final_bytes)
        # The file on disk is what ships: check it loads and runs before it replaces anything.
        again = run_tflite(tmp, [xs[0].numpy()])
        if quantize is None and _max_abs(again, float_out[:1])[0] > parity_tol:
            raise InputError("written .tflite differs from the converted model", str(out_path),
                             "the same outputs as the converted model")

    atomic_write(out_path, write)

    import litert_torch

    from e2gan.metrics.cost import count_macs, count_params

    macs = count_macs(model, sample, by_module_prefix=False, on_meta=True)["total"]
    return {
        "path": str(out_path),
        "bytes": out_path.stat().st_size,
        "sha256": sha256_file(out_path),
        "quantize": quantize,
        "layout": "NHWC" if nhwc else "NCHW",
        "input_shape": list(shape),
        "resolution": [h, w],
        "concept_id": int(concept_id) if takes_concepts else None,
        "lora_merged": lora_merged,
        "reflect_pad": reflect_pad, "reflection_pads_sliced": pads_sliced,
        "parity_tol": parity_tol,
        "parity_inputs": {"n": parity_inputs, "seed": seed, "distribution": "uniform[-1, 1]", "shape": list(shape)},
        **info,
        "macs": int(macs),
        "params": count_params(generator),
        "io": tflite_io(out_path),
        "versions": {"litert-torch": litert_torch.__version__, "ai-edge-litert": _version("ai-edge-litert"),
                     "ai-edge-quantizer": _version("ai-edge-quantizer") if quantize else None,
                     "torch": torch.__version__},
        "litert_torch": litert_torch.__version__,
        "convert_seconds": convert_seconds,
        "seconds": time.perf_counter() - t_start,
    }
