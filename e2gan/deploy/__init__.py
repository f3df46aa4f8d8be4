"""Deployment: export a run's generator to .tflite and measure its latency (host or phone).

Entry points for the CLI (plain functions; heavy imports happen inside them):

  export_run(run_dir, ...)          -> run_dir/export/<stem>.tflite + <stem>.json, result["export"][stem]
  latency_run(run_or_tflite, backend, ...)
                                    -> result["latency"][<tag>] and result["latency"][backend] (the latest)
                                       (+ run_dir/latency/<backend>-<stamp>.json)

Every latency row (torch, litert, adb) carries the same top-level keys (backend, latency_ms,
median_ms, threads, warmup, runs, peak_fraction, protocol_tag) and a ``protocol`` sub-object
(backend, threads, warmup, runs, device, delegate, ...). ``protocol_tag`` is short and names what
changes the number: "adb-gpu", "adb-cpu-4t", "adb-cpu-4t-f0" (core mask), "torch-2t",
"litert-1t". Rows are kept per tag, so a GPU-delegate run no longer overwrites the CPU one;
``result["latency"][backend]`` is the latest row of that backend, for readers that want one.

Modules: export (litert-torch + parity), latency (host: torch | litert), adb (phone),
benchmark_output (benchmark_model parser), gemm_peak (GEMM sweep and the honest fp32 peak),
cpu_peak (theoretical FMA peak from cpuinfo), litert_gemm (a pure-GEMM LiteRT model).
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from e2gan.errors import InputError

__all__ = ["export_run", "latency_run", "BACKENDS", "export_stem", "protocol_tag"]

BACKENDS = ("torch", "litert", "adb")
HOST_DEFAULTS = {"warmup": 5, "runs": 30}
PHONE_DEFAULTS = {"warmup": 5, "runs": 50, "threads": 4}


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


def _run_resolution(run_dir: Path) -> int | None:
    for name, path in (("config.json", ("data", "resolution")), ("result.json", ("config", "data", "resolution"))):
        f = run_dir / name
        if f.exists():
            try:
                node: Any = json.loads(f.read_text())
                for k in path:
                    node = node[k]
                return int(node)
            except (KeyError, TypeError, ValueError):
                continue
    return None


def _resolve_concept(meta: dict, concept: str | int | None, where: str) -> tuple[int, str]:
    concepts = list(meta.get("concepts") or [])
    if not concepts:
        return 0, ""
    if concept is None:  # an adapted run's new concept is the last one; a base run: the first
        idx = len(concepts) - 1 if meta.get("kind") == "adapt" else 0
        return idx, concepts[idx]
    if isinstance(concept, int) or (isinstance(concept, str) and concept.isdigit()):
        idx = int(concept)
        if not 0 <= idx < len(concepts):
            raise InputError(f"concept id {idx}", where, f"an id in 0..{len(concepts) - 1} ({', '.join(concepts)})")
        return idx, concepts[idx]
    if concept not in concepts:
        raise InputError(f"concept {concept!r}", where, f"one of {', '.join(concepts)}")
    return concepts.index(concept), concept


def _record(run_dir: Path | None, key: tuple[str, ...], value: dict) -> bool:
    """Write into the run's result.json when there is one; False otherwise."""
    if run_dir is None or not (run_dir / "result.json").exists():
        return False
    from e2gan.results import update_result

    update_result(run_dir, key, value)
    return True


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
    cid, cname = _resolve_concept(meta, concept, "--concept")
    res = resolution or _run_resolution(run_dir)
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
    info["recorded"] = _record(run_dir, ("export", out_path.stem), info)
    return info


def _locate(target: str | Path, model_name: str | None) -> tuple[Path | None, Path | None]:
    """(run_dir or None, tflite path or None) from a run directory or a .tflite path."""
    t = Path(target)
    if t.is_dir():
        if not (t / "model.json").exists():
            raise InputError("not a run directory", str(t), "a run holding model.json (or a .tflite file)")
        return t, t / "export" / (model_name or "model.tflite")
    if t.suffix == ".tflite":
        if not t.is_file():
            raise InputError("no such .tflite", str(t), "an exported model file")
        run = t.parent.parent if t.parent.name == "export" and (t.parent.parent / "model.json").exists() else None
        return run, t
    raise InputError("latency target", str(t), "a run directory or a .tflite file")


def _sidecar(tflite: Path) -> dict:
    side = tflite.with_suffix(".json")
    try:
        return json.loads(side.read_text()) if side.exists() else {}
    except json.JSONDecodeError:
        return {}


def latency_run(target: str | Path, backend: str, serial: str | None = None, binary: str | Path | None = None,
                threads: int | None = None, use_gpu: bool = False, warmup: int | None = None,
                runs: int | None = None, core_mask: str | None = None, adb_key: str | Path | None = None,
                concept: str | int | None = None, resolution: int | None = None, model: str | None = None,
                timeout_s: float = 600.0, gemm_peak: bool = True, seed: int = 0) -> dict:
    """Measure latency of a run (or a .tflite); record it under result["latency"][protocol tag]
    (e.g. "adb-gpu", "adb-cpu-4t", "torch-2t") and, as the latest, result["latency"][backend].

    backend 'torch': the run's generator in eager PyTorch (needs a run directory). 'litert': the
    exported .tflite in the LiteRT interpreter on this machine. 'adb': the .tflite on a phone via
    ``benchmark_model`` (``serial`` HOST:PORT or usb[:SERIAL], ``binary`` the user's
    benchmark_model). model: export file name inside run_dir/export (default model.tflite).
    threads: host default torch's thread count, phone default 4. warmup/runs: host 5/30,
    phone 5/50. Returns the latency row (same top-level keys and ``protocol`` sub-object for
    every backend; see the module docstring).
    """
    if backend not in BACKENDS:
        raise InputError(f"backend {backend!r}", "--backend", f"one of {', '.join(BACKENDS)}")
    run_dir, tflite = _locate(target, model)
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"

    if backend == "adb":
        from e2gan.deploy.adb import Timeouts, run_phone_benchmark

        if serial is None:
            raise InputError("no device given", "--serial", "HOST:PORT (adb over TCP) or usb[:SERIAL]")
        if tflite is None or not tflite.is_file():
            raise InputError("no exported model", str(tflite), "an export first (e2gan export RUN)")
        side = _sidecar(tflite)
        row = run_phone_benchmark(tflite, binary, serial, threads=PHONE_DEFAULTS["threads"] if threads is None else threads,
                                  use_gpu=use_gpu, warmup=PHONE_DEFAULTS["warmup"] if warmup is None else warmup,
                                  runs=PHONE_DEFAULTS["runs"] if runs is None else runs, core_mask=core_mask,
                                  adb_key=adb_key, out_dir=(run_dir or tflite.parent) / "latency",
                                  timeouts=Timeouts(run_s=float(timeout_s)), stamp=stamp)
        macs = side.get("macs")
        row["macs"] = macs
        row["achieved_gflops"] = 2.0 * macs / (row["latency_ms"] / 1000.0) / 1e9 if macs and row["latency_ms"] else None
        row["export"] = {k: side.get(k) for k in ("quantize", "layout", "resolution", "concept", "parity_max_abs_diff")}
        from e2gan.io import atomic_write_json

        atomic_write_json(row["row_file"], {k: v for k, v in row.items() if k != "row_file"})
    else:
        import torch

        from e2gan.deploy.latency import host_latency

        warmup = HOST_DEFAULTS["warmup"] if warmup is None else warmup
        runs = HOST_DEFAULTS["runs"] if runs is None else runs
        if backend == "torch":
            if run_dir is None:
                raise InputError("torch latency needs the run", str(target), "a run directory (a .tflite has no PyTorch graph)")
            from e2gan.deploy.export import _takes_concepts
            from e2gan.nets.registry import load_generator

            generator, meta = load_generator(run_dir)
            cid, cname = _resolve_concept(meta, concept, "--concept")
            res = resolution or _run_resolution(run_dir)
            if res is None:
                raise InputError("unknown resolution", str(run_dir), "--resolution N")
            x = torch.rand(1, int(getattr(generator, "in_channels", 3)), res, res,
                           generator=torch.Generator().manual_seed(seed)) * 2 - 1
            inputs = (x, torch.tensor([cid])) if _takes_concepts(generator) else (x,)
            row = host_latency(generator, inputs, warmup=warmup, runs=runs, threads=threads, backend="torch",
                               gemm_peak=gemm_peak)
            row.update(resolution=[res, res], concept=cname or None, layout="NCHW")
        else:
            from e2gan.deploy.export import tflite_io
            from e2gan.io import sha256_file

            if tflite is None or not tflite.is_file():
                raise InputError("no exported model", str(tflite), "an export first (e2gan export RUN)")
            side = _sidecar(tflite)
            shape = tflite_io(tflite)["inputs"][0]["shape"]
            x = torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1
            row = host_latency(tflite, (x,), warmup=warmup, runs=runs, threads=threads, backend="litert",
                               macs=side.get("macs"), gemm_peak=gemm_peak)
            row.update(model={"path": str(tflite), "sha256": sha256_file(tflite)},
                       export={k: side.get(k) for k in ("quantize", "layout", "resolution", "concept")})
        from e2gan.env import environment
        from e2gan.io import atomic_write_json

        row["env"] = {k: v for k, v in environment().items() if k in ("platform", "device_name", "python", "torch_threads")}
        out_dir = (run_dir or tflite.parent) / "latency"  # type: ignore[union-attr]
        row["row_file"] = str(out_dir / f"{backend}-{stamp}.json")
        atomic_write_json(row["row_file"], row)
    row["target"] = str(target)
    tag = row.get("protocol_tag") or protocol_tag(row.get("protocol") or {"backend": backend})
    row["protocol_tag"] = tag
    # Per protocol first, then the backend's latest (what single-row readers take).
    row["recorded"] = _record(run_dir, ("latency", tag), row) and _record(run_dir, ("latency", backend), row)
    return row
