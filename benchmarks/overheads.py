"""5. Overheads: CLI start-up, a study trial's cost outside training and evaluation, distillation.

- `e2gan --help` start-up: wall time of the console script in a fresh process, interleaved with a
  bare `python -c pass` (the interpreter's own floor); `-X importtime` names the slowest imports.
- Study trial: one grid cell (LoRA on the crucial groups, the benchmark concept) run end to end
  through the study machinery (Optuna storage, claim, heartbeat, `evaluate_cell`, tell) in a
  scratch runs folder that links the cached data and base model. Overhead = wall time − training
  clock − evaluation (final `evaluate_run` and in-loop validation), as a fraction of the wall time,
  broken down by phase.
- Distillation wrapper: `DiffusionTeacher.edit` vs calling its diffusers pipeline directly
  (`wrapper_overhead`, tiny random InstructPix2Pix pipeline, interleaved); and `distill()`'s time
  vs its teacher's time and vs the floor of writing the same pairs, for the procedural teacher and
  the tiny diffusion teacher, every write mode (`benchmarks.distill_overhead`).

Parts (`--only overheads.distill,overheads.cli`): cli, trial, wrapper, distill.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import Context, check, median, paired_ratio, wait_for_base
from benchmarks.distill_overhead import Phases as _Phases
from benchmarks.distill_overhead import distill_before_after, distill_cause, distill_overhead, floor_cause, fmt_pct

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
    import e2gan.metrics.evaluation as evaluate
    from studies import runner
    from e2gan.pipeline.base import base_dir
    from e2gan.teachers.data_key import data_dir
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


def run(ctx: Context) -> dict:
    from e2gan.data.concepts import load_concepts
    from e2gan.data.concepts import concept_names

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
        from e2gan.teachers.diffusion_overhead import wrapper_overhead

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
            f = x["floor"]
            checks.append(check(
                f"{key}.floor", f"distill() time per pair outside the teacher ÷ the floor of writing a pair, {what}",
                x["over_floor"], 1.2, "<=", unit="×",
                note=(f"{x['overhead_ms_per_pair']:.2f} vs {f['ms_per_pair']:.2f} ms/pair (PNG encode + hash + "
                      f"{f['mode']} writes of the same {f['pairs']} pairs and {x['sources_written']} sources); "
                      f"teacher {x['teacher_ms_per_pair']:.2f} ms/pair"),
                basis=f"median of per-round ratios, {x['rounds']} rounds, the floor interleaved with the write modes",
                cause=floor_cause(x)))
            before_after += distill_before_after(x, key)
    return {"checks": checks, "data": data, "before_after": before_after}
