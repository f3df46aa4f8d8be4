"""Phone latency over adb: push a .tflite and the user's `benchmark_model`, run it, parse it.

The connection is ``adb_session``'s (every adb call with its timeouts; a drop mid-run keeps the
partial output). Every shell argument is quoted with `shlex.quote`.

Recorded with each run: device model, SoC, Android version and ABI (`getprop`), every thermal
zone's type and temperature before and after, the binary's and the model's sha256 (and the
on-device sha256 of what was pushed, where `sha256sum` exists), the exact command, and the raw
output, kept in a file beside the parsed row.
"""
from __future__ import annotations

import os
import re
import shlex
import time
from dataclasses import asdict
from pathlib import Path

from e2gan.deploy.adb_session import REMOTE_DIR, PhoneSession, Timeouts, connect
from e2gan.deploy.protocol import protocol_tag
from e2gan.errors import InputError
from e2gan.io import atomic_write_json, atomic_write_text, sha256_file

__all__ = ["check_binary", "benchmark_command", "run_phone_benchmark", "EXIT_MARKER"]

EXIT_MARKER = "__e2gan_exit="
_ELF_MACHINES = {3: "x86", 40: "arm", 62: "x86_64", 183: "aarch64", 243: "riscv"}


def check_binary(path: str | Path | None) -> dict:
    """The user's benchmark_model: present, executable, an ELF file. Returns {path, bytes, sha256, elf}."""
    if path is None:
        raise InputError("no benchmark_model binary given", "--binary",
                         "a benchmark_model built for the phone (e.g. TFLite's android_aarch64_benchmark_model)")
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"benchmark_model not found: {p}", "--binary", "an existing file")
    if not os.access(p, os.X_OK):
        raise InputError(f"benchmark_model is not executable: {p}", "--binary", f"an executable file (chmod +x {shlex.quote(str(p))})")
    head = p.read_bytes()[:20] if p.stat().st_size >= 20 else p.read_bytes()
    if head[:4] != b"\x7fELF":
        raise InputError(f"benchmark_model is not an ELF executable: {p}", "--binary",
                         "the native Android build (android_aarch64_benchmark_model), not a script or an .apk")
    bits = {1: 32, 2: 64}.get(head[4]) if len(head) > 4 else None
    endian = "little" if len(head) > 5 and head[5] == 1 else "big"
    machine = int.from_bytes(head[18:20], endian) if len(head) >= 20 else None
    return {"path": str(p), "bytes": p.stat().st_size, "sha256": sha256_file(p),
            "elf": {"bits": bits, "machine": _ELF_MACHINES.get(machine, machine)}}



# ----------------------------------------------------------------------------- the benchmark
def benchmark_command(binary: str, graph: str, threads: int = 4, use_gpu: bool = False, warmup: int = 5,
                      runs: int = 50, core_mask: str | None = None, extra_args: list[str] | None = None) -> str:
    """The shell line that runs benchmark_model on the phone, every argument quoted."""
    if int(threads) < 1 and int(threads) != -1:
        raise InputError(f"threads={threads}", "--threads", "a thread count >= 1 (or -1 for the tool's default)")
    if int(warmup) < 0 or int(runs) < 1:
        raise InputError(f"warmup={warmup}, runs={runs}", "latency", "warmup >= 0 and runs >= 1")
    argv = [binary, f"--graph={graph}", f"--num_threads={int(threads)}", f"--use_gpu={'true' if use_gpu else 'false'}",
            f"--warmup_runs={int(warmup)}", f"--num_runs={int(runs)}", *(extra_args or [])]
    if core_mask is not None:
        mask = str(core_mask).strip().lower().removeprefix("0x")
        if not re.fullmatch(r"[0-9a-f]{1,16}", mask) or int(mask, 16) == 0:
            raise InputError(f"core mask {core_mask!r}", "--core-mask", "a non-zero hex CPU mask such as f0 (big cores)")
        argv = ["taskset", mask, *argv]
    return " ".join(shlex.quote(a) for a in argv) + f"; echo {EXIT_MARKER}$?"


def _split_exit(output: str) -> tuple[str, int | None]:
    m = None
    for m in re.finditer(rf"{re.escape(EXIT_MARKER)}(-?\d+)", output):
        pass
    if m is None:
        return output, None
    return output[: m.start()].rstrip("\r\n") + "\n", int(m.group(1))


def _remote_sha256(session: PhoneSession, paths: list[str]) -> dict[str, str | None]:
    out = session.shell("sha256sum " + " ".join(shlex.quote(p) for p in paths), what="sha256sum")
    found: dict[str, str | None] = {p: None for p in paths}
    for line in out.splitlines():
        m = re.match(r"\s*([0-9a-f]{64})\s+\*?(.+?)\s*$", line)
        if m and m.group(2) in found:
            found[m.group(2)] = m.group(1)
    return found


def run_phone_benchmark(model: str | Path, binary: str | Path | None, serial: str, threads: int = 4,
                        use_gpu: bool = False, warmup: int = 5, runs: int = 50, core_mask: str | None = None,
                        adb_key: str | Path | None = None, out_dir: str | Path | None = None,
                        timeouts: Timeouts = Timeouts(), remote_dir: str = REMOTE_DIR,
                        extra_args: list[str] | None = None, stamp: str | None = None) -> dict:
    """Push ``model`` and ``binary`` to the phone, run benchmark_model, return the parsed row.

    The raw output is written to ``out_dir/adb-<stamp>.txt`` and the row to
    ``out_dir/adb-<stamp>.json`` (out_dir defaults to the model's folder / 'latency').
    Output that does not parse, and a phone that drops or stalls mid-run, raise InputError naming
    the saved raw file (for a drop: the partial output that arrived).
    """
    from e2gan.deploy.benchmark_output import parse_benchmark_output

    t_start = time.perf_counter()
    model = Path(model).expanduser()
    if not model.is_file():
        raise InputError(f"no model at {model}", "latency --backend adb", "an exported .tflite (run the export first)")
    bin_info = check_binary(binary)
    model_info = {"path": str(model), "bytes": model.stat().st_size, "sha256": sha256_file(model)}
    command_preview = benchmark_command("benchmark_model", "model.tflite", threads, use_gpu, warmup, runs, core_mask,
                                        extra_args)  # validates the arguments before touching the phone
    del command_preview
    out_dir = Path(out_dir) if out_dir else model.parent / "latency"
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"
    raw_path, row_path = out_dir / f"adb-{stamp}.txt", out_dir / f"adb-{stamp}.json"

    remote_bin = f"{remote_dir}/{Path(bin_info['path']).name}"
    remote_model = f"{remote_dir}/{model.name}"
    command = benchmark_command(remote_bin, remote_model, threads, use_gpu, warmup, runs, core_mask, extra_args)
    with connect(serial, adb_key, timeouts) as session:
        device = session.device_info()
        session.shell(f"mkdir -p {shlex.quote(remote_dir)}", what="mkdir")
        session.push(bin_info["path"], remote_bin, mode=0o755)
        session.push(model, remote_model, mode=0o644)
        session.shell(f"chmod 755 {shlex.quote(remote_bin)}", what="chmod")
        on_device = _remote_sha256(session, [remote_bin, remote_model])
        for remote, local in ((remote_bin, bin_info), (remote_model, model_info)):
            if on_device[remote] is not None and on_device[remote] != local["sha256"]:
                raise InputError(f"pushed file differs on the phone: {remote}", session.where,
                                 f"sha256 {local['sha256'][:12]}..., got {on_device[remote][:12]}... (retry the push)")
        thermal_before = session.thermal()
        t_run = time.perf_counter()
        output = session.stream(command, save_to=raw_path, what="benchmark_model")
        run_seconds = time.perf_counter() - t_run
        thermal_after = session.thermal()
        key_info = session.key  # type: ignore[attr-defined]
        adb_calls = session.log

    text, exit_code = _split_exit(output)
    atomic_write_text(raw_path, text)
    try:
        parsed = parse_benchmark_output(text)
    except ValueError as exc:
        notes = [f"exit status {exit_code}"] if exit_code not in (None, 0) else []
        if "; first error line: " in str(exc):
            notes.append(str(exc).split("; first error line: ", 1)[1][:140])
        detail = f" ({'; '.join(notes)})" if notes else ""
        raise InputError("benchmark_model output did not parse", session.where,
                         f"a timing summary in its output{detail}; raw output saved to {raw_path}") from None

    latency_ms = parsed["inference_avg_ms"]
    row = {
        "backend": "adb",
        "latency_ms": latency_ms,
        "latency_stat": "benchmark_model Inference (avg)",
        "median_ms": parsed.get("inference_median_ms"),
        "std_ms": parsed.get("inference_std_ms"),
        "parsed": parsed,
        "device": {**device, "serial": session.where},
        "thermal_before": thermal_before,
        "thermal_after": thermal_after,
        "thermal_max_c": {"before": _max_temp(thermal_before), "after": _max_temp(thermal_after)},
        "binary": {**bin_info, "remote": remote_bin, "remote_sha256": on_device[remote_bin]},
        "model": {**model_info, "remote": remote_model, "remote_sha256": on_device[remote_model]},
        # the keys every latency row carries at the top level (what `e2gan latency` prints)
        "threads": int(threads), "warmup": int(warmup), "runs": int(runs),
        "gemm_peak_gflops": None, "peak_fraction": None,  # no GEMM peak is measured on the phone
        "protocol": {"backend": "adb", "threads": int(threads), "warmup": int(warmup), "runs": int(runs),
                     "device": _device_label(device, session.where), "serial": session.where,
                     "delegate": "gpu" if use_gpu else "cpu", "statistic": "benchmark_model Inference (avg)",
                     "use_gpu": bool(use_gpu), "warmup_runs": int(warmup), "num_runs": int(runs),
                     "core_mask": core_mask, "extra_args": list(extra_args or []),
                     "command": command, "exit_code": exit_code, "timeouts": asdict(timeouts)},
        "adb_key": {k: key_info[k] for k in ("path", "generated")},
        "adb_calls": adb_calls,
        "raw_output": str(raw_path),
        "run_seconds": run_seconds,
        "seconds": time.perf_counter() - t_start,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    row["protocol_tag"] = protocol_tag(row["protocol"])
    if exit_code not in (None, 0):
        row["warning"] = f"benchmark_model exited with status {exit_code} after printing its timings"
    atomic_write_json(row_path, row)
    row["row_file"] = str(row_path)
    return row


def _device_label(device: dict, serial: str) -> str:
    name = " ".join(str(device[k]) for k in ("manufacturer", "model") if device.get(k))
    return f"{name} ({serial})" if name else serial


def _max_temp(zones: list[dict]) -> float | None:
    temps = [z["temp_c"] for z in zones if z.get("temp_c") is not None]
    return max(temps) if temps else None
