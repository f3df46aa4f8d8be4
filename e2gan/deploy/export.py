"""PyTorch generator -> .tflite through litert-torch, with a parity check against PyTorch.

The exported function is image -> image: an E²GAN generator's concept id is baked in as a
constant (after a LoRA merge the weights are concept-specific anyway), so the phone runs one
model per concept, like the pix2pix baseline. The .tflite is written atomically and only after
the LiteRT interpreter reproduced PyTorch on fixed, seeded inputs within ``parity_tol``.

Known converter limits are checked on the module tree before converting (``export_prep``), so
the user gets the layer's name in one line instead of an MLIR dump; anything else the converter
rejects is traced to its layer (``litert_convert``).
"""
from __future__ import annotations

import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from e2gan.deploy.export_prep import (REFLECT_PADS, ConceptBound, check_exportable, merged_copy, n_concepts,
                                      slice_reflection_pads, takes_concepts)
from e2gan.deploy.litert_convert import convert_module, quantize_dynamic_int8
from e2gan.deploy.tflite_run import run_tflite, tflite_io
from e2gan.errors import InputError
from e2gan.io import atomic_write, sha256_file

__all__ = ["export_tflite", "QUANTIZE", "PARITY_INPUTS"]

QUANTIZE = (None, "dynamic-int8")
PARITY_INPUTS = 3


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def _parity_inputs(shape: tuple[int, ...], n: int, seed: int) -> list[Tensor]:
    """Image-like inputs: uniform in [-1, 1] (the generators' input range), one seed each."""
    return [torch.rand(shape, generator=torch.Generator().manual_seed(seed + i)) * 2 - 1 for i in range(n)]


def _max_abs(a: list[np.ndarray], b: list[np.ndarray]) -> list[float]:
    return [float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) for x, y in zip(a, b)]


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
    generator, lora_merged = merged_copy(generator)
    pads_sliced = 0
    if reflect_pad == "slices":
        generator, pads_sliced = slice_reflection_pads(generator, copied=lora_merged)
    with_concepts = takes_concepts(generator)
    n = n_concepts(generator)
    if with_concepts and n is not None and not 0 <= concept_id < n:
        raise InputError(f"concept id {concept_id}", "export", f"an id in 0..{n - 1}")
    if precheck:
        check_exportable(generator)

    model: nn.Module = ConceptBound(generator, concept_id) if with_concepts else generator
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
    float_bytes = convert_module(model, sample, progress)
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
        final_bytes = quantize_dynamic_int8(float_bytes)
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

    from e2gan.metrics.cost import count_macs
    from e2gan.nets.params import count_params

    macs = count_macs(model, sample, by_module_prefix=False, on_meta=True)["total"]
    return {
        "path": str(out_path),
        "bytes": out_path.stat().st_size,
        "sha256": sha256_file(out_path),
        "quantize": quantize,
        "layout": "NHWC" if nhwc else "NCHW",
        "input_shape": list(shape),
        "resolution": [h, w],
        "concept_id": int(concept_id) if with_concepts else None,
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
