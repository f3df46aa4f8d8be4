"""Run the benchmarks and write benchmarks/results/<date>-<host>.json, .md and LATEST.md.

    python -m benchmarks.run --preset tiny [--only adaptation,speed,overheads.distill]
                             [--out benchmarks/results] [--runs runs] [--threads N] [--readme README.md]

Thread counts are fixed before torch loads (OMP_NUM_THREADS, torch.set_num_threads, the LiteRT
interpreter's num_threads) and recorded. The data and the base model come from the shared runs
folder (reused when cached); everything a benchmark trains goes to its own scratch folder.
Every run then rewrites LATEST.md and the block of README.md between ``<!-- bench:start -->`` and
``<!-- bench:end -->`` (only a warning when the markers are missing) from the newest measurement of
each benchmark in the results folder (``benchmarks.latest``), each row naming its run.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

ORDER = ("adaptation", "speed", "kernel", "throughput", "lora_step", "precision", "overheads", "paper_cost", "eval_share")
# Run by a full bench at a real scale and by --only; the harness's micro self-test leaves them out
# (chaos starts a PostgreSQL server and two fleets of workers for --chaos-seconds each; cell_rate
# runs 8 real cells of the main comparison; main_wall the whole `reproduce --specs main`, ~45-50 minutes).
SLOW = ("chaos", "cell_rate", "main_wall")
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
DEFAULT_README = Path(__file__).resolve().parents[1] / "README.md"
README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"


def host_tag() -> str:
    """A short, stable, non-identifying name for this machine."""
    node = platform.node() or "unknown"
    return f"host-{hashlib.sha256(node.encode()).hexdigest()[:8]}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny", help=f"{' | '.join(valid_presets())} (default: tiny)")
    p.add_argument("--only", default=None, help=f"comma-separated subset of: {', '.join(ORDER)}; NAME.PART runs "
                                                 "one part of a benchmark (overheads.distill)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="results folder (default: benchmarks/results)")
    p.add_argument("--runs", default="runs", help="shared runs folder holding the data and base model")
    p.add_argument("--work", default=None, help="scratch folder (default: <runs>/bench-<preset>)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch and LiteRT (default: all cores)")
    p.add_argument("--omp-wait-policy", default="PASSIVE", choices=("PASSIVE", "ACTIVE", "inherit"),
                   help="OpenMP idle threads sleep (PASSIVE, default) or spin (ACTIVE); 'inherit' leaves the "
                        "environment alone. Spinning threads on a machine busy with other work turn every "
                        "parallel region into a wait for a descheduled thread")
    p.add_argument("--scale", default=None, help=argparse.SUPPRESS)   # 'micro': the harness's own test
    p.add_argument("--no-latest", action="store_true", help="do not update LATEST.md or the README")
    p.add_argument("--readme", default=None, help="README whose bench block every run rewrites (default: the "
                                                  "project's README.md when --out is the default; '' for none)")
    p.add_argument("--progress", action="store_true", help="show training progress bars")
    p.add_argument("--chaos-seconds", type=float, default=None,
                   help="how long the chaos benchmark kills workers (default 600)")
    args = p.parse_args(argv)
    if args.chaos_seconds is not None:
        os.environ["E2GAN_BENCH_CHAOS_S"] = str(args.chaos_seconds)
    from benchmarks.common import SCALES

    if args.preset not in valid_presets():
        _usage_error(f"unknown preset {args.preset!r} (--preset): one of {', '.join(valid_presets())}")
    if args.scale is not None and args.scale not in SCALES:
        _usage_error(f"unknown scale {args.scale!r} (--scale): one of {', '.join(SCALES)}")
    items = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else \
        list(ORDER) + ([] if args.scale == "micro" else list(SLOW))
    names = [item.partition(".")[0] for item in items]
    unknown = [n for n in names if n not in ORDER + SLOW]
    if unknown:
        p.error(f"unknown benchmark(s) {unknown}: choose from {', '.join(ORDER + SLOW)}")
    parts: dict[str, list[str]] = {}
    for item in items:
        name, _, part = item.partition(".")
        if part:
            known = getattr(importlib.import_module(f"benchmarks.{name}"), "PARTS", ())
            if part not in known:
                p.error(f"unknown part {item!r}: {name} has " + (", ".join(known) or "no parts"))
            if name not in items:   # NAME and NAME.PART together: all of NAME
                parts.setdefault(name, []).append(part)
    args.only = [s for s in ORDER + SLOW if s in names]  # dependency order: adaptation feeds speed, speed kernel
    args.parts = parts
    if args.readme is None:
        args.readme = str(DEFAULT_README) if Path(args.out).resolve() == DEFAULT_OUT else ""
    return args


def valid_presets() -> list[str]:
    """Presets that have benchmark budgets (e2gan.presets ∩ benchmarks.common.SCALES)."""
    from benchmarks.common import SCALES
    from e2gan.presets import PRESETS

    return [n for n in PRESETS if n in SCALES]


def _usage_error(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def update_readme(path: str | Path, block: str) -> bool:
    """Replace what lies between README_START and README_END in ``path`` with ``block``.

    Without both markers (in that order) the file is left alone and one warning is printed.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"[bench] warning: README not updated: cannot read {path} ({exc.strerror or exc})", file=sys.stderr)
        return False
    start = text.find(README_START)
    end = text.find(README_END, start + len(README_START)) if start >= 0 else -1
    if start < 0 or end < 0:
        print(f"[bench] warning: README not updated: {path} has no {README_START} ... {README_END} block",
              file=sys.stderr)
        return False
    new = text[: start + len(README_START)] + "\n" + block.strip("\n") + "\n" + text[end:]
    if new != text:
        from e2gan.io import atomic_write_text

        atomic_write_text(path, new)
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = args.threads or os.cpu_count() or 1
    os.environ["OMP_NUM_THREADS"] = str(threads)   # before torch (and its OpenMP pool) loads
    if args.omp_wait_policy != "inherit":
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    import torch

    torch.set_num_threads(threads)
    from e2gan.quiet import silence_third_party

    silence_third_party()  # the cells and trainings a benchmark runs print no third-party banners
    from benchmarks.common import SCHEMA, jsonable, loadavg, make_context
    from e2gan.env import environment

    ctx = make_context(args.preset, args.scale, args.runs, args.work, threads, progress=args.progress)
    ctx.parts = args.parts
    ctx.work.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    stamp = time.strftime("%Y-%m-%d-%H%M", time.gmtime())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{stamp}-{host_tag()}"
    report = {"schema": SCHEMA, "started": started, "host": host_tag(), "preset": args.preset,
              "scale": ctx.scale.name, "device": ctx.device,
              "threads": {"requested": threads, "torch": torch.get_num_threads(), "litert": threads,
                          "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                          "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")},
              "cpu_count": os.cpu_count(), "loadavg_start": loadavg(), "env": environment(ctx.device),
              "versions": _versions(),
              "config": ctx.cfg.to_dict(), "budgets": jsonable(ctx.scale), "benchmarks": {}, "before_after": []}
    t_all = time.perf_counter()
    for name in args.only:
        mod = importlib.import_module(f"benchmarks.{name}")
        print(f"[bench] {name}: {mod.TITLE}", file=sys.stderr, flush=True)
        entry = {"title": mod.TITLE, "loadavg_start": loadavg()}
        t0 = time.perf_counter()
        try:
            res = mod.run(ctx)
            entry.update(status="ok", checks=res["checks"], data=res["data"])
            if ctx.parts.get(name):
                entry["parts"] = ctx.parts[name]
            report["before_after"] += [{"benchmark": name, **row} for row in res.get("before_after", [])]
        except Exception as exc:  # one broken benchmark must not lose the others' numbers
            entry.update(status="error", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()[-4000:],
                         checks=[], data={})
            print(f"[bench] {name} failed: {entry['error']}", file=sys.stderr, flush=True)
        entry["seconds"] = time.perf_counter() - t0
        entry["loadavg_end"] = loadavg()
        report["benchmarks"][name] = entry
        report["seconds"] = time.perf_counter() - t_all
        _write(stem, report, jsonable)   # after every benchmark: a crash keeps what was measured
    report["loadavg_end"] = loadavg()
    report["seconds"] = time.perf_counter() - t_all
    from benchmarks.latest import compose, render_latest, render_readme_block
    from benchmarks.report import render_run

    _write(stem, report, jsonable)
    stem.with_suffix(".md").write_text(render_run(report))
    composed = None if args.no_latest else compose(out, args.preset, ctx.scale.name, ORDER + SLOW)
    if composed is not None:   # every run, full or --only: its rows replace those it measured again
        (out / "LATEST.md").write_text(render_latest(composed))
        if args.readme:
            update_readme(args.readme, render_readme_block(composed))
    checks = [c for b in report["benchmarks"].values() for c in b["checks"] if c["target"] is not None]
    errors = [n for n, b in report["benchmarks"].items() if b["status"] != "ok"]
    print(f"bench {args.preset}: {sum(c['met'] for c in checks)}/{len(checks)} targets met"
          f"{', errors in ' + ', '.join(errors) if errors else ''}, {report['seconds']:.0f} s -> {stem}.json",
          file=sys.stderr)
    return 1 if errors else 0


def _versions() -> dict:
    from importlib import metadata

    out = {}
    for pkg in ("torch", "lightning", "peft", "litert-torch", "ai-edge-litert", "diffusers", "optuna"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _write(stem: Path, report: dict, jsonable) -> None:
    tmp = stem.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(jsonable(report), indent=1, allow_nan=False))
    tmp.replace(stem.with_suffix(".json"))


if __name__ == "__main__":
    sys.exit(main())
