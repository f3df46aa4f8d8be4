"""5. Overheads: CLI start-up, a study trial's cost outside training and evaluation, distillation.

- `e2gan --help` start-up: wall time of the console script in a fresh process, interleaved with a
  bare `python -c pass` (the interpreter's own floor); `-X importtime` names the slowest imports.
- Study trial: one grid cell (LoRA on the crucial groups, the benchmark concept) run end to end
  through the study machinery (Optuna storage, claim, heartbeat, `evaluate_cell`, tell) in a
  scratch runs folder that links the cached data and base model. Overhead = wall time − training
  clock − evaluation (final `evaluate_run` and in-loop validation), as a fraction of the wall time,
  broken down by phase.
- Distillation wrapper: `DiffusionTeacher.edit` vs calling its diffusers pipeline directly
  (`wrapper_overhead`, tiny random InstructPix2Pix pipeline, interleaved); and `distill()`'s total
  time vs its teacher's time, for the procedural teacher and the tiny diffusion teacher, with each
  of `e2gan.distill.WRITE_MODES` run into fresh folders, interleaved ABBA: the mode `distill`
  picks for that teacher ("auto": "batched" in line for a CPU teacher, "pipelined" with a
  background writer on an accelerator) is the measured number; "per-file" (one fsync per PNG, the
  path before batching) is the before/after comparison; "batched-fsync" shows what concurrent
  fsyncs alone give; "pipelined" on a CPU teacher shows what a writer thread costs there.

Parts (`--only overheads.distill,overheads.cli`): cli, trial, wrapper, distill.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import Context, check, median, paired_ratio, wait_for_base

NAME = "overheads"
TITLE = "Overheads: CLI start-up, study trial, distillation wrapper"
PARTS = ("cli", "trial", "wrapper", "distill")


# ----------------------------------------------------------------------------- CLI start-up
def _cli_command() -> list[str]:
    script = Path(sys.executable).parent / "e2gan"
    return [str(script), "--help"] if script.exists() else [sys.executable, "-c",
                                                            "import sys; from e2gan.cli import main; sys.exit(main(['--help']))"]


def _run_quiet(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def slowest_imports(module: str, env: dict, top: int = 6) -> list[dict]:
    """Cumulative import times (ms) of the slowest top-level imports of ``module`` (-X importtime)."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], env=env,
                         capture_output=True, text=True).stderr
    rows = []
    for line in out.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m.group(3)) <= 2:  # top-level (directly imported) packages only
            rows.append({"module": m.group(4), "cumulative_ms": int(m.group(2)) / 1000})
    return sorted(rows, key=lambda r: -r["cumulative_ms"])[:top]


def cli_startup(ctx: Context) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = _cli_command()
    t_cli, t_py = [], []
    _run_quiet(cmd, env)  # warm the file cache once
    for r in range(ctx.scale.help_runs):
        pair = [(t_cli, cmd), (t_py, [sys.executable, "-c", "pass"])]
        for times, c in (pair if r % 2 == 0 else pair[::-1]):
            times.append(_run_quiet(c, env))
    return {"command": " ".join(Path(cmd[0]).name if i == 0 else a for i, a in enumerate(cmd)),
            "seconds": median(t_cli), "python_floor_seconds": median(t_py), "all": t_cli, "python_all": t_py,
            "runs": len(t_cli), "slowest_imports": slowest_imports("e2gan.cli", env)}


# ----------------------------------------------------------------------------- a study trial
class _Phases:
    """Wall time of named phases, by wrapping functions in the modules that call them."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
        return timed

    @contextlib.contextmanager
    def patched(self, targets: list[tuple[object, str, str]]):
        saved = [(obj, attr, getattr(obj, attr)) for obj, attr, _ in targets]
        try:
            for obj, attr, name in targets:
                setattr(obj, attr, self.wrap(name, getattr(obj, attr)))
            yield self
        finally:
            for obj, attr, fn in saved:
                setattr(obj, attr, fn)


def _validation_timer(phases: _Phases):
    import lightning as L

    class ValidationTimer(L.Callback):
        def on_validation_start(self, trainer, pl_module):
            self._t0 = time.perf_counter()

        def on_validation_end(self, trainer, pl_module):
            phases.seconds["validation"] = phases.seconds.get("validation", 0.0) + time.perf_counter() - self._t0

    return ValidationTimer()


def _spec_file(ctx: Context, folder: Path, steps: int) -> Path:
    import tomli_w

    from e2gan.config import CRUCIAL

    config = {k: dict(v) for k, v in ctx.scale.config_overrides.items()}
    config.setdefault("adapt", {})["steps"] = steps
    spec = {"name": "bench-trial", "title": "benchmark: one study trial", "table": "main", "metric": "psnr",
            "concepts": [ctx.scale.concept], "seeds": [0], "config": config,
            "arms": {"e2gan": {"adapt": {"method": "lora", "groups": list(CRUCIAL)}}}}
    path = folder / "bench-trial.toml"
    path.write_text(tomli_w.dumps(spec))
    return path


def study_trial(ctx: Context) -> dict:
    import lightning_modules.adaptation as adaptation
    import e2gan.evaluate as evaluate
    from studies import runner
    from studies.prerequisites import base_dir, data_dir
    from studies.spec import load_spec

    data, base_run, _ = wait_for_base(ctx, ctx.cfg)
    folder = ctx.work / "trial"
    if folder.exists():
        shutil.rmtree(folder)
    runs = folder / "runs"
    (runs / "data").mkdir(parents=True)
    steps = ctx.scale.trial_steps or ctx.cfg.adapt.steps
    spec = load_spec(_spec_file(ctx, folder, steps))
    cfg = spec.cell_config(spec.grid(ctx.preset)[0], ctx.preset)
    # The cached prerequisites, linked: a trial reuses them exactly as in a real study.
    data_dir(cfg, runs).symlink_to(Path(data).resolve(), target_is_directory=True)
    base_dir(cfg, runs).symlink_to(Path(base_run).resolve(), target_is_directory=True)
    # A worker imports peft once for all its trials (~1 s, with transformers): timed on its own,
    # outside the trial, so the number does not depend on what ran before in this process.
    already = "peft" in sys.modules
    t0 = time.perf_counter()
    import peft  # noqa: F401
    peft_import = None if already else time.perf_counter() - t0

    phases = _Phases()
    real_fit = adaptation.fit

    def fit_with_timer(*args, **kwargs):
        kwargs["extra_callbacks"] = [*(kwargs.get("extra_callbacks") or []), _validation_timer(phases)]
        return real_fit(*args, **kwargs)

    adaptation.fit = fit_with_timer
    try:
        with phases.patched([(evaluate, "evaluate_run", "evaluation"), (adaptation, "fit", "fit"),
                             (adaptation, "gan_step_flops", "flop counting"),
                             (adaptation, "build", "build models"),
                             (adaptation, "save_adapter", "saving"), (adaptation, "save_generator", "saving"),
                             (runner, "evaluate_cell", "cell")]):
            t0 = time.perf_counter()
            url = runner.default_storage(spec, runs, ctx.preset)
            study = runner.load_study(spec, url, ctx.preset, create=True)
            runner.reconcile(study, spec, ctx.preset)
            t_setup = time.perf_counter() - t0
            t0 = time.perf_counter()
            counts = runner.work(spec, url, ctx.preset, runs, max_trials=1)
            total = time.perf_counter() - t0
    finally:
        adaptation.fit = real_fit
    if counts.get("complete") != 1:
        trial = study.get_trials()[-1]
        raise RuntimeError(f"benchmark trial did not complete: {counts} {trial.user_attrs.get('fail_reason')}")
    trial = study.get_trials()[-1]
    train = float(trial.user_attrs["train_seconds"])
    ph = phases.seconds
    evaluation = ph.get("evaluation", 0.0) + ph.get("validation", 0.0)
    overhead = total - train - evaluation
    breakdown = {
        "training clock": train,
        "evaluation (final evaluate_run)": ph.get("evaluation", 0.0),
        "validation inside the loop": ph.get("validation", 0.0),
        "Lightning loop outside training batches and validation (setup, checkpoints, teardown)":
            ph.get("fit", 0.0) - train - ph.get("validation", 0.0),
        "FLOP counting (one G+D step on copies)": ph.get("flop counting", 0.0),
        "building models (load base, LoRA injection)": ph.get("build models", 0.0),
        "saving adapter and generator": ph.get("saving", 0.0),
        "study machinery (storage, claim, heartbeat, tell) and the rest":
            total - ph.get("cell", 0.0),
        "rest of the cell (data subset, merge, result)":
            ph.get("cell", 0.0) - ph.get("fit", 0.0) - ph.get("evaluation", 0.0) - ph.get("flop counting", 0.0)
            - ph.get("build models", 0.0) - ph.get("saving", 0.0),
    }
    return {"steps": steps, "wall_seconds": total, "study_setup_seconds": t_setup, "train_seconds": train,
            "evaluation_seconds": evaluation, "overhead_seconds": overhead, "overhead_fraction": overhead / total,
            "breakdown_seconds": breakdown, "psnr": trial.user_attrs.get("psnr"),
            "storage": "sqlite (one machine)",
            "once_per_worker_seconds": {"import peft": peft_import,
                                        "what": "paid once per worker process, before its first trial "
                                                "(None: already imported by an earlier benchmark in this process)"}}


# ----------------------------------------------------------------------------- distillation
def distill_once(ctx: Context, teacher, sources: list, concepts: list, label: str, mode: str) -> dict:
    """One distill() into a fresh folder with ``e2gan.distill.WRITE_MODE = mode``, its time split by phase."""
    import e2gan.distill as distill_mod
    import e2gan.io as io_mod

    out = ctx.work / f"distill-{label}-{mode}"
    if out.exists():
        shutil.rmtree(out)
    fsync = {"calls": 0, "seconds": 0.0}
    real_fsync = os.fsync

    def timed_fsync(fd):  # the same call, timed (summed over threads): the cost of making writes durable
        t = time.perf_counter()
        try:
            return real_fsync(fd)
        finally:
            fsync["calls"] += 1
            fsync["seconds"] += time.perf_counter() - t

    phases = _Phases()
    saved_mode = distill_mod.WRITE_MODE
    distill_mod.WRITE_MODE = mode
    os.fsync = timed_fsync
    try:
        with phases.patched([(distill_mod, "_png_bytes", "png"), (distill_mod, "atomic_write_bytes", "files"),
                             (distill_mod, "atomic_write_many", "files"), (distill_mod, "_append_lines", "manifest"),
                             (io_mod, "_syncfs_all", "syncfs")]):
            summary = distill_mod.distill(sources, concepts, teacher, out, seed=ctx.cfg.data.seed, progress=False)
    finally:
        os.fsync = real_fsync
        distill_mod.WRITE_MODE = saved_mode
    shutil.rmtree(out, ignore_errors=True)
    ph, total, teacher_s = phases.seconds, float(summary["seconds"]), float(summary["teacher_seconds"])
    written = max(1, summary["written"])
    known = teacher_s + ph.get("png", 0.0) + ph.get("files", 0.0) + ph.get("manifest", 0.0)
    return {"mode": mode, "pairs_written": summary["written"], "seconds": total, "teacher_seconds": teacher_s,
            "overhead": total / teacher_s - 1 if teacher_s > 0 else None,
            "overhead_ms_per_pair": 1000 * (total - teacher_s) / written,
            "teacher_ms_per_pair": 1000 * teacher_s / written, "fsync": fsync,
            "breakdown_seconds": {"teacher": teacher_s, "PNG encoding": ph.get("png", 0.0),
                                  "image files (temp, durable, rename)": ph.get("files", 0.0),
                                  "of which syncfs barriers": ph.get("syncfs", 0.0),
                                  "manifest appends (write + fsync)": ph.get("manifest", 0.0),
                                  "rest (checks, hashing, bookkeeping)": total - known}}


def distill_overhead(ctx: Context, teacher_spec: str, concepts: list, n_sources: int | None, label: str) -> dict:
    """distill() total vs teacher time, every write mode, interleaved ABBA over ``distill_rounds`` rounds."""
    from e2gan.distill import WRITE_MODE as DEFAULT_MODE  # "auto" unless changed
    from e2gan.distill import WRITE_MODES, resolve_write_mode, teacher_device
    from e2gan.sources import load_sources
    from e2gan.teachers import load_teacher

    teacher = load_teacher(teacher_spec)
    d = ctx.cfg.data
    sources = load_sources(d.sources, d.resolution, crops_per_photo=d.crops_per_photo, seed=d.seed)
    sources = sources[:n_sources] if n_sources else sources
    # The mode distill() uses for this teacher first, then every other one ("auto" is one of them).
    mode_now = resolve_write_mode(DEFAULT_MODE, teacher_device(teacher, teacher.describe()))
    modes = [mode_now, *[m for m in WRITE_MODES if m not in (mode_now, "auto")]]
    distill_once(ctx, teacher, sources, concepts, label, mode_now)  # warm-up: teacher, imports, file cache
    runs: dict[str, list[dict]] = {m: [] for m in modes}
    for r in range(ctx.scale.distill_rounds):
        for mode in (modes if r % 2 == 0 else modes[::-1]):
            runs[mode].append(distill_once(ctx, teacher, sources, concepts, label, mode))

    def summary(rs: list[dict]) -> dict:
        out = {k: median([x[k] for x in rs]) for k in ("seconds", "teacher_seconds", "overhead_ms_per_pair",
                                                          "teacher_ms_per_pair")}
        out["overhead"] = median([x["overhead"] for x in rs]) if all(x["overhead"] is not None for x in rs) else None
        out["fsync"] = {"calls": rs[0]["fsync"]["calls"], "seconds": median([x["fsync"]["seconds"] for x in rs])}
        out["breakdown_seconds"] = {k: median([x["breakdown_seconds"][k] for x in rs]) for k in rs[0]["breakdown_seconds"]}
        return out

    per_mode = {m: {**summary(rs), "runs": rs} for m, rs in runs.items()}
    # A background writer shares the CPU with the teacher, which can slow the teacher's own clock
    # and hide the writer's cost in it; so a pipelined total is compared with the teacher's time
    # in the same round's sequential ("batched") run, and the larger overhead is the one reported.
    written = max(1, runs[mode_now][0]["pairs_written"])

    def conservative(mode: str) -> list[tuple[float | None, float]]:  # (overhead, ms/pair) per round
        rs = runs[mode]
        if mode != "pipelined" or "batched" not in runs:
            return [(x["overhead"], x["overhead_ms_per_pair"]) for x in rs]
        return [max((a["overhead"], a["overhead_ms_per_pair"]),
                    (a["seconds"] / b["teacher_seconds"] - 1, 1000 * (a["seconds"] - b["teacher_seconds"]) / written))
                for a, b in zip(rs, runs["batched"])]

    per_round = {mode: conservative(mode) for mode in runs}
    for mode, pairs in per_round.items():
        per_mode[mode]["overhead_own_teacher_clock"] = per_mode[mode]["overhead"]
        overheads = [o for o, _ in pairs]
        per_mode[mode]["overhead"] = median(overheads) if None not in overheads else None
        per_mode[mode]["overhead_ms_per_pair"] = median([ms for _, ms in pairs])
    now = per_mode[mode_now]
    ms_now = [ms for _, ms in per_round[mode_now]]
    before = {m: paired_ratio([ms for _, ms in pairs], ms_now) for m, pairs in per_round.items() if m != mode_now}
    return {"teacher": label, "write_mode": mode_now, "pairs_written": runs[mode_now][0]["pairs_written"],
            **{k: v for k, v in now.items() if k != "runs"}, "concepts": [c.name for c in concepts],
            "sources_written": len(sources), "rounds": ctx.scale.distill_rounds, "modes": per_mode,
            "default_mode": DEFAULT_MODE, "speedup_vs_per_file": before.get("per-file"), "speedup_vs": before}


CHANGE = "PNGs of a batch to temps, one syncfs barrier, renames (before: temp + fsync + rename per PNG)"


def distill_before_after(x: dict, key: str) -> list[dict]:
    """Rows of the results' before_after section: per-file fsyncs (before) vs the mode distill() uses."""
    b, a = x["modes"]["per-file"], x["modes"][x["write_mode"]]
    basis = f"same run, {x['rounds']} rounds interleaved ABBA, fresh folders; ratio: median of per-round ratios"
    fs = x["modes"].get("batched-fsync")
    extra = (f"; concurrent fsyncs alone (batched-fsync): {fs['overhead_ms_per_pair']:.2f} ms/pair" if fs else "")
    return [
        {"key": f"{key}.ms_per_pair", "what": f"distill() time outside the teacher per pair, {x['teacher']} teacher",
         "before": b["overhead_ms_per_pair"], "after": a["overhead_ms_per_pair"], "unit": "ms",
         "ratio": x["speedup_vs_per_file"], "change": CHANGE + f"; now: {x['write_mode']}", "basis": basis,
         "note": f"{x['pairs_written']} pairs; fsync calls {b['fsync']['calls']} → {a['fsync']['calls']}{extra}"},
        {"key": key, "what": f"distill() total ÷ teacher time − 1, {x['teacher']} teacher",
         "before": b["overhead"], "after": a["overhead"], "unit": "%",
         "ratio": (b["overhead"] / a["overhead"]) if a["overhead"] and a["overhead"] > 0 else None,
         "change": CHANGE + f"; now: {x['write_mode']}", "basis": basis,
         "note": f"teacher {a['teacher_ms_per_pair']:.2f} ms/pair"},
    ]


def _pipelined_text(x: dict) -> str:
    """What the background writer measured against the same writes in line, for this teacher."""
    modes = x["modes"]
    if "pipelined" not in modes or "batched" not in modes:
        return ""
    p, b = modes["pipelined"], modes["batched"]
    chosen = "chosen" if x["write_mode"] == "pipelined" else "not chosen for a CPU teacher"
    return (f" A background writer ('pipelined', {chosen}) measured {fmt_pct(p['overhead'])} "
            f"({p['overhead_ms_per_pair']:.2f} ms/pair, against the in-line run's teacher clock) vs "
            f"{fmt_pct(b['overhead'])} in line: on a CPU-only machine it competes with the teacher for the cores; "
            "with a GPU teacher the CPU idles while the teacher edits (not measured here: no GPU in this run).")


def distill_cause(x: dict) -> str:
    br = x["breakdown_seconds"]
    png_ms = 1000 * br["PNG encoding"] / max(1, x["pairs_written"] + x["sources_written"])
    text = (f"of distill()'s {x['seconds']:.2f} s, PNG encoding takes {br['PNG encoding']:.2f} s "
            f"({png_ms:.2f} ms per PNG), writing the files {br['image files (temp, durable, rename)']:.2f} s "
            f"(syncfs {br['of which syncfs barriers']:.2f} s), the manifest appends "
            f"{br['manifest appends (write + fsync)']:.2f} s, the teacher {br['teacher']:.2f} s. "
            f"Batched writes ({x['write_mode']}) cut the time outside the teacher {x['speedup_vs_per_file']:.1f}× "
            f"against one fsync per PNG ({x['modes']['per-file']['overhead_ms_per_pair']:.2f} → "
            f"{x['overhead_ms_per_pair']:.2f} ms/pair, same run)." + _pipelined_text(x))
    if x["teacher_ms_per_pair"] < 2 * png_ms:
        text += (f" This teacher takes {x['teacher_ms_per_pair']:.2f} ms/pair, less than encoding the PNGs it yields: "
                 "no writer that stores PNG files meets ≤ 5% around it.")
    text += (f" Next to a real diffusion teacher (seconds per image) the {x['overhead_ms_per_pair']:.1f} ms/pair "
             "around it is well under 1%.")
    return text


def run(ctx: Context) -> dict:
    from e2gan.teachers import load_concepts
    from studies.prerequisites import concept_names

    sc = ctx.scale
    parts = set(ctx.parts.get(NAME) or PARTS)
    data, checks, before_after = {}, [], []
    if "cli" in parts:
        ctx.log("CLI start-up")
        cli = data["cli_startup"] = cli_startup(ctx)
        imports = ", ".join(f"{r['module']} {r['cumulative_ms']:.0f} ms" for r in cli["slowest_imports"][:3])
        checks.append(check("overheads.cli_help", "`e2gan --help` start-up", cli["seconds"], 1.0, "<=", unit="s",
                            note=f"bare python {cli['python_floor_seconds']:.2f} s; slowest imports: {imports}",
                            basis=f"median of {cli['runs']} fresh processes, interleaved with `python -c pass`"))
    if "trial" in parts:
        ctx.log("one study trial end to end")
        trial = data["study_trial"] = study_trial(ctx)
        top = max(((k, v) for k, v in trial["breakdown_seconds"].items()
                   if not k.startswith(("training clock", "evaluation", "validation"))), key=lambda kv: kv[1])
        checks.append(check(
            "overheads.study_trial", f"study trial overhead outside training and evaluation ({trial['steps']} steps)",
            trial["overhead_fraction"], 0.05, "<=", unit="%",
            note=(f"{trial['overhead_seconds']:.1f} s of {trial['wall_seconds']:.1f} s; largest: {top[0]} {top[1]:.1f} s"
                  + (f"; once per worker, not per trial: import peft {imp:.1f} s"
                     if (imp := trial["once_per_worker_seconds"]["import peft"]) is not None else "")),
            basis="wall − training clock − final evaluation − in-loop validation, ÷ wall; one-off imports "
                  "of the worker process before its first trial excluded"))
    pipe = None
    if parts & {"wrapper", "distill"}:
        from tests.tiny_pipelines import ip2p_dir

        pipe = ip2p_dir()
    if "wrapper" in parts:
        from e2gan.teachers.diffusion import wrapper_overhead

        ctx.log("distillation wrapper (tiny diffusion pipeline)")
        wrapper = wrapper_overhead(pipe, n_images=sc.wrapper_images, steps=2, repeats=sc.wrapper_repeats, warmup=1)
        wrapper["overhead_paired"] = paired_ratio(wrapper["wrapper_s"]["all"], wrapper["raw_s"]["all"]) - 1
        data["wrapper"] = wrapper
        checks.append(check(
            "overheads.diffusion_wrapper", "DiffusionTeacher.edit ÷ raw pipeline call − 1", wrapper["overhead_median"],
            0.05, "<=", unit="%",
            note=f"{wrapper['n_images']} images, {wrapper['steps']} steps, tiny random IP2P; paired {100 * wrapper['overhead_paired']:+.1f}%",
            basis=f"medians of {wrapper['repeats']} interleaved repeats"))
    if "distill" in parts:
        ctx.log("distill() around its teacher, every write mode")
        names = concept_names(ctx.cfg)[0][: sc.distill_concepts]
        chosen = [c for c in load_concepts(ctx.cfg.data.concepts_file or None) if c.name in names]
        proc = data["distill_procedural"] = distill_overhead(ctx, "procedural", chosen, None, "procedural")
        diff = data["distill_tiny_diffusion"] = distill_overhead(ctx, f"diffusers:{pipe}?steps=2", chosen[:1],
                                                                 8 * sc.wrapper_images, "tiny-diffusion")
        for key, x, what in (("overheads.distill_diffusion", diff, "tiny diffusion teacher"),
                             ("overheads.distill_procedural", proc, "procedural teacher")):
            b = x["modes"]["per-file"]
            checks.append(check(
                key, f"distill() total ÷ teacher time − 1, {what}", x["overhead"], 0.05, "<=", unit="%",
                note=(f"{x['pairs_written']} pairs; {x['overhead_ms_per_pair']:.2f} ms/pair around a "
                      f"{x['teacher_ms_per_pair']:.2f} ms/pair teacher; per-file fsync (before) "
                      f"{fmt_pct(b['overhead'])}, {b['overhead_ms_per_pair']:.2f} ms/pair"),
                basis=f"median of {x['rounds']} runs into fresh folders, interleaved with the other write modes",
                cause=distill_cause(x)))
            before_after += distill_before_after(x, key)
    return {"checks": checks, "data": data, "before_after": before_after}


def fmt_pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.0f}%" if abs(x) >= 10 else f"{100 * x:.1f}%"
