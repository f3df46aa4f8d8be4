"""`make smoke-paper`: the paper preset's real configuration through every stage, at reduced length.

256² images, the width-64 generator with instance norm, the 70×70 PatchGAN: distil with a
``diffusers:`` teacher (a tiny random InstructPix2Pix pipeline at 256², saved to a folder) and the
packaged ``ffhq`` concepts in two shards, train the base with DDP on two CPU processes (gloo),
evaluate it, adapt one concept with LoRA on the crucial groups, export the generator with the parity
check, time it with torch and LiteRT, build the report. Evaluation takes the real Inception and LPIPS
code paths on random-weight stand-ins found through the real lookup (``$E2GAN_WEIGHTS``); every
stand-in says so in ``result.json``.

Each stage is one ``e2gan`` command, the same command the README's "The paper preset on real data"
guide gives (``render_guide`` writes that block; a test holds the two equal). The smoke run's
``--config`` file is the guide's with its own paths and the reduced lengths (``REDUCED``) added;
it adds ``--runs`` and the few flags in ``Step.smoke``. Run: ``python -m tests.smoke_paper [--out DIR]``.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CONCEPT = "sunglasses"
BASE_CONCEPTS = ["albino", "old"]
# Everything the smoke run shortens, added to the guide's configuration file.
REDUCED = {
    "data": {"base_concepts": BASE_CONCEPTS, "new_concepts": [CONCEPT]},
    # A CPU run: two gloo processes of batch 1, two G+D steps, one checkpoint and validation.
    "train": {"steps": 2, "batch_size": 1, "ckpt_every": 2, "accelerator": "cpu"},
    "adapt": {"steps": 2},
    "eval": {"batch_size": 4},
}
TEACHER_OPTIONS = {"guide": "steps=20&image_guidance_scale=1.5&safety_checker=off",
                   "smoke": "steps=2&image_guidance_scale=1.5&safety_checker=off"}
GUIDE_VALUES = {"SOURCES": "/data/ffhq256", "MODEL": "/models/instruct-pix2pix", "RUNS": "runs",
                "CONFIG": "paper-ffhq.toml", "TEACHER": TEACHER_OPTIONS["guide"]}


def user_config(values: dict) -> dict:
    """The guide's configuration file: the paper preset, the user's images, concepts and teacher."""
    return {"preset": "paper", "data": {"sources": values["SOURCES"], "concepts_file": "ffhq",
                                        "teacher": f"diffusers:{values['MODEL']}?{values['TEACHER']}"}}


def smoke_config(values: dict) -> dict:
    """The guide's file with the smoke run's paths, then the reduced lengths on top."""
    cfg = user_config(values)
    for section, keys in REDUCED.items():
        if isinstance(keys, dict):
            cfg.setdefault(section, {}).update(keys)
    return cfg


@dataclass(frozen=True)
class Step:
    name: str
    args: str             # after `e2gan`; "--config {CONFIG}" marks a command that takes the configuration
    smoke: str = ""       # flags only the smoke run adds (lengths, a CPU, where output goes)
    env: tuple = ()       # (name, value) set for the smoke run only


STEPS = (
    Step("distil, shard 0 of 2", "distill --config {CONFIG} --shard 0/2"),
    Step("distil, shard 1 of 2", "distill --config {CONFIG} --shard 1/2"),
    Step("merge the shards", "distill --config {CONFIG} --merge-shards"),
    # One thread per DDP process: two processes on two cores.
    Step("train the base, DDP", "train-base --config {CONFIG} --strategy ddp --devices 2", env=(("OMP_NUM_THREADS", "1"),)),
    Step("evaluate the base", "evaluate {RUNS}/base-paper-*"),
    Step("adapt a new concept with LoRA",
         # --base: the base trained above (a base trained on other devices has another key)
         f"adapt --config {{CONFIG}} --concept {CONCEPT} --method lora --groups down,ds,tb,us,up "
         f"--base {{RUNS}}/base-paper-* --run-dir {{RUNS}}/{CONCEPT}-lora"),
    Step("export with the parity check", f"export {{RUNS}}/{CONCEPT}-lora"),
    Step("latency, torch", f"latency {{RUNS}}/{CONCEPT}-lora --backend torch", "--warmup 1 --runs 3"),
    Step("latency, LiteRT", f"latency {{RUNS}}/{CONCEPT}-lora --backend litert", "--warmup 1 --runs 3"),
    # The base's key holds its devices and strategy: the report names them to find it.
    Step("report", "report --config {CONFIG} --strategy ddp --devices 2 --specs none", "--reports {REPORTS}"),
)


def render_guide() -> str:
    """The README's guide: the configuration file, then every stage as a user types it at full length."""
    import tomli_w

    v = GUIDE_VALUES
    commands = "\n".join(f"e2gan {s.args.format(**v)}" for s in STEPS)
    return f"```toml\n# {v['CONFIG']}\n{tomli_w.dumps(user_config(v))}```\n\n```\n{commands}\n```"


def smoke_argv(step: Step, values: dict) -> list[str]:
    """The smoke run's argv of a step: the guide's command, then --runs and its own flags."""
    argv = shlex.split(step.args.format(**values))
    if "--config {CONFIG}" in step.args:
        argv += ["--runs", values["RUNS"], "--no-progress"]
    elif argv[0] == "export":
        argv += ["--no-progress"]
    argv += shlex.split(step.smoke.format(**values))
    return [_one_match(a) if "*" in a else a for a in argv]


def _one_match(pattern: str) -> str:
    """A shell glob the guide uses for a folder named by its configuration's key: exactly one match."""
    found = sorted(glob.glob(pattern))
    if len(found) != 1:
        raise RuntimeError(f"smoke-paper: {pattern} matches {found or 'nothing'}: exactly one folder expected")
    return found[0]


def _e2gan() -> list[str]:
    script = Path(sys.executable).with_name("e2gan")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "e2gan.cli"]


def prepare(out: Path) -> dict:
    """Source images, the stand-in teacher and metric weights, the reduced-length config."""
    import tomli_w

    from e2gan.data.sources import builtin_sources
    from tests.stand_ins import NOTE, save_alexnet, save_inception
    from tests.tiny_pipelines import save_tiny_pipeline

    sources = out / "sources"
    if not sources.is_dir():  # 256² crops of the bundled photos, as a user's folder of images
        tmp = out / "sources.tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        for s in builtin_sources(256, crops_per_photo=1):  # 18 images; 4 val and 2 test by their names
            s.image.save(tmp / f"{s.id}.png")
        tmp.rename(sources)
    model = out / "models" / "tiny-ip2p-256"
    if not (model / "model_index.json").is_file():
        save_tiny_pipeline(model, "ip2p", resolution=256,
                           stand_in=NOTE.format(what="tiny InstructPix2Pix pipeline, 256² native"))
    weights = out / "weights"
    for name, save in (("inception-2015-12-05.pt", save_inception), ("alexnet-owt-7be5be79.pth", save_alexnet)):
        if not (weights / name).is_file():
            save(weights)
    config = out / "smoke-paper.toml"
    values = {"SOURCES": str(sources), "MODEL": str(model), "TEACHER": TEACHER_OPTIONS["smoke"],
              "RUNS": str(out / "runs"), "CONFIG": str(config), "REPORTS": str(out / "reports"),
              "WEIGHTS": str(weights)}
    config.write_text(tomli_w.dumps(smoke_config(values)))
    return values


def _fresh(out: Path) -> None:
    """Start from nothing, every time: a finished run would otherwise be reused and prove nothing.

    Only a folder this module made (it holds smoke-paper.toml) or an empty one is cleared.
    """
    import shutil

    if out.exists() and any(out.iterdir()):
        if not (out / "smoke-paper.toml").is_file():
            raise RuntimeError(f"{out} is not a smoke-paper folder (no smoke-paper.toml): choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def run(out: str | Path, log=print) -> dict:
    """Every stage in order; returns per-stage wall times and what was checked (see ``check``)."""
    out = Path(out).resolve()
    _fresh(out)
    t0 = time.perf_counter()
    values = prepare(out)
    stages = [{"stage": "prepare stand-ins and sources", "seconds": time.perf_counter() - t0}]
    env = dict(os.environ, E2GAN_WEIGHTS=values["WEIGHTS"], HF_HUB_OFFLINE="1", PYTHONHASHSEED="0")
    for step in STEPS:
        argv = smoke_argv(step, values)
        log(f"[smoke-paper] {step.name}: e2gan {shlex.join(argv)}")
        t = time.perf_counter()
        proc = subprocess.run(_e2gan() + argv, env=dict(env, **dict(step.env)), capture_output=True, text=True)
        seconds = time.perf_counter() - t
        if proc.returncode != 0:
            raise RuntimeError(f"smoke-paper: '{step.name}' exited {proc.returncode}\n"
                               f"$ e2gan {shlex.join(argv)}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
        last = (proc.stdout.strip().splitlines() or [""])[-1]
        log(f"  {seconds:.1f} s: {last}")
        stages.append({"stage": step.name, "command": f"e2gan {shlex.join(argv)}", "seconds": seconds, "line": last})
    from tests.smoke_checks import check

    summary = {"stages": stages, "checks": check(out, values), "total_seconds": time.perf_counter() - t0,
               "cpus": os.cpu_count(), "load_average": list(os.getloadavg())}
    (out / "smoke-paper.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.smoke_paper", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/smoke-paper", help="work folder (default runs/smoke-paper)")
    p.add_argument("--guide", action="store_true", help="print the README guide's commands and exit")
    args = p.parse_args(argv)
    if args.guide:
        print(render_guide())
        return 0
    try:
        s = run(args.out)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"smoke-paper: {len(s['stages']) - 1} stages and {len(s['checks'])} checks passed in "
          f"{s['total_seconds']:.0f} s on {s['cpus']} CPUs (load average {s['load_average'][0]:.1f}) "
          f"-> {Path(args.out) / 'smoke-paper.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
