"""Running a .tflite (path or bytes) in the LiteRT interpreter on this machine: its I/O, its outputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["tflite_io", "run_tflite", "quiet_interpreter"]


def _interpreter(model: str | Path | bytes, threads: int | None = None):
    from ai_edge_litert.interpreter import Interpreter

    if isinstance(model, (bytes, bytearray)):
        return Interpreter(model_content=bytes(model), num_threads=threads)
    return Interpreter(model_path=str(model), num_threads=threads)


def quiet_interpreter(model: str | Path, threads: int | None = None):
    """An interpreter with its tensors allocated, without LiteRT's "INFO: Created TensorFlow Lite
    XNNPACK delegate" line on stderr (printed at allocation, once per process and model)."""
    from e2gan.quiet import native_chatter_silenced

    interp = _interpreter(model, threads)
    with native_chatter_silenced():
        interp.allocate_tensors()
    return interp


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
