"""``e2gan export``: a finished run's generator -> run_dir/export/<stem>.tflite + <stem>.json.

The record also lands in ``result["export"][stem]`` when the run has a result.json.
"""
from __future__ import annotations

import time
from pathlib import Path

from e2gan.deploy.protocol import export_stem
from e2gan.deploy.run_files import record, resolve_concept, run_resolution
from e2gan.errors import InputError

__all__ = ["export_run"]


def export_run(run_dir: str | Path, out: str | Path | None = None, concept: str | int | None = None,
               nhwc: bool = False, quantize: str | None = None, resolution: int | None = None,
               parity_tol: float = 1e-4, progress: bool = False) -> dict:
    """Export a finished run's generator to .tflite with a parity check.

    out: default ``run_dir/export/<stem>.tflite`` (stem: model[-nhwc][-int8]). concept: name or
    id to bake in (default: an adapted run's new concept, else the first). resolution: default
    the run's training resolution. Writes ``<out>.json`` beside the model and, if the run has a
    result.json, ``result["export"][stem]``. Returns the export record.
    """
    from e2gan.deploy.export import export_tflite
    from e2gan.nets.registry import load_generator

    run_dir = Path(run_dir)
    generator, meta = load_generator(run_dir)
    cid, cname = resolve_concept(meta, concept, "--concept")
    res = resolution or run_resolution(run_dir)
    if res is None:
        raise InputError("unknown export resolution", str(run_dir), "--resolution N (the run has no config.json)")
    stem = export_stem(nhwc, quantize)
    out_path = Path(out) if out else run_dir / "export" / f"{stem}.tflite"
    info = export_tflite(generator, out_path, res, concept_id=cid, nhwc=nhwc, quantize=quantize,
                         parity_tol=parity_tol, progress=progress)
    info.update(run=run_dir.name, arch=meta.get("model", {}).get("arch"), concept=cname or None,
                exported_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    from e2gan.io import atomic_write_json

    atomic_write_json(out_path.with_suffix(".json"), info)
    info["recorded"] = record(run_dir, ("export", out_path.stem), info)
    return info
