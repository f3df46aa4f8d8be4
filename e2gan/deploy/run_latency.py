"""``e2gan latency``: time a run's generator (torch), its .tflite (litert) or the .tflite on a phone (adb).

Every latency row (torch, litert, adb) carries the same top-level keys (backend, latency_ms,
median_ms, threads, warmup, runs, peak_fraction, protocol_tag) and a ``protocol`` sub-object
(backend, threads, warmup, runs, device, delegate, ...). ``protocol_tag`` is short and names what
changes the number: "adb-gpu", "adb-cpu-4t", "adb-cpu-4t-f0" (core mask), "torch-2t",
"litert-1t". Rows are kept per tag, so a GPU-delegate run no longer overwrites the CPU one;
``result["latency"][backend]`` is the latest row of that backend, for readers that want one.
"""
from __future__ import annotations

import time
from pathlib import Path

from e2gan.deploy.protocol import BACKENDS, protocol_tag
from e2gan.deploy.run_files import locate, record, resolve_concept, run_resolution, sidecar
from e2gan.errors import InputError

__all__ = ["latency_run"]

HOST_DEFAULTS = {"warmup": 5, "runs": 30}
PHONE_DEFAULTS = {"warmup": 5, "runs": 50, "threads": 4}


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
    every backend; see this module's docstring).
    """
    if backend not in BACKENDS:
        raise InputError(f"backend {backend!r}", "--backend", f"one of {', '.join(BACKENDS)}")
    run_dir, tflite = locate(target, model)
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"

    if backend == "adb":
        from e2gan.deploy.adb_session import Timeouts
        from e2gan.deploy.phone_benchmark import run_phone_benchmark

        if serial is None:
            raise InputError("no device given", "--serial", "HOST:PORT (adb over TCP) or usb[:SERIAL]")
        if tflite is None or not tflite.is_file():
            raise InputError("no exported model", str(tflite), "an export first (e2gan export RUN)")
        side = sidecar(tflite)
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
            from e2gan.deploy.export_prep import takes_concepts
            from e2gan.nets.registry import load_generator

            generator, meta = load_generator(run_dir)
            cid, cname = resolve_concept(meta, concept, "--concept")
            res = resolution or run_resolution(run_dir)
            if res is None:
                raise InputError("unknown resolution", str(run_dir), "--resolution N")
            x = torch.rand(1, int(getattr(generator, "in_channels", 3)), res, res,
                           generator=torch.Generator().manual_seed(seed)) * 2 - 1
            inputs = (x, torch.tensor([cid])) if takes_concepts(generator) else (x,)
            row = host_latency(generator, inputs, warmup=warmup, runs=runs, threads=threads, backend="torch",
                               gemm_peak=gemm_peak)
            row.update(resolution=[res, res], concept=cname or None, layout="NCHW")
        else:
            from e2gan.deploy.tflite_run import tflite_io
            from e2gan.io import sha256_file

            if tflite is None or not tflite.is_file():
                raise InputError("no exported model", str(tflite), "an export first (e2gan export RUN)")
            side = sidecar(tflite)
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
    row["recorded"] = record(run_dir, ("latency", tag), row) and record(run_dir, ("latency", backend), row)
    return row
