"""GPU checks, in one call on a machine with a CUDA GPU (about 5 minutes on one data-centre GPU):

    python -m benchmarks.gpu_checks [--out benchmarks/results] [--work runs/gpu-checks]

1. the suite's CUDA tests (`tests/test_gpu.py`: fp16 InstructPix2Pix edits on the tiny pipeline,
   `bf16-mixed` and `16-mixed` base training, DDP on one GPU, Inception features on the GPU against
   the CPU's);
2. fp16 distillation through `e2gan distill` with the tiny random pipeline at 256², timed;
3. the wall time of 100 paper-preset base steps (`e2gan train-base`, 256², width 64, batch 16,
   `16-mixed`) on that data, with the counted FLOPs and the rate they imply;
4. the paper-cost benchmark there (`benchmarks.paper_cost`: its GPU-time estimates then use the
   rate of a measured batch-16 step instead of an assumed one).

Writes ``gpu-checks-<date>-<device>.json`` and ``.md`` into --out, naming the device. Each part
records its own failure and the rest still run. Without CUDA it refuses in one line (exit 2):
there is nothing to measure, and nothing is written.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAPER_STEPS = 100


def _run(argv: list[str], env: dict, timeout: float) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    return {"argv": argv, "rc": proc.returncode, "seconds": time.perf_counter() - t0,
            "stdout_tail": proc.stdout[-3000:], "stderr_tail": proc.stderr[-3000:]}


def cuda_tests(env: dict) -> dict:
    r = _run([sys.executable, "-m", "pytest", "-q", "-rs", "tests/test_gpu.py"], env, 1200)
    counts = dict((k, int(v)) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error)", r["stdout_tail"]))
    return {**r, "counts": counts, "ok": r["rc"] == 0 and counts.get("passed", 0) > 0}


def paper_steps(work: Path, env: dict) -> dict:
    """Distil the smoke data on the GPU (fp16), then 100 paper-preset base steps at batch 16, 16-mixed."""
    import tomli_w

    from tests.smoke_paper import prepare, smoke_config

    values = prepare(work)
    cfg = smoke_config(values)
    cfg["train"] = {"steps": PAPER_STEPS, "batch_size": 16, "ckpt_every": PAPER_STEPS, "accelerator": "gpu",
                    "precision": "16-mixed"}
    config = work / "gpu-paper.toml"
    config.write_text(tomli_w.dumps(cfg))
    env = dict(env, E2GAN_WEIGHTS=values["WEIGHTS"])
    e2gan = [sys.executable, "-m", "e2gan.cli"]
    common = ["--config", str(config), "--runs", values["RUNS"], "--no-progress"]
    distill = _run(e2gan + ["distill", *common], env, 1200)
    out = {"distill": distill}
    if distill["rc"] != 0:
        return {**out, "ok": False}
    train = _run(e2gan + ["train-base", *common], env, 1800)
    out["train"] = train
    runs = sorted(Path(values["RUNS"]).glob("base-paper-*/train.json"))
    if train["rc"] != 0 or not runs:
        return {**out, "ok": False}
    summary = json.loads(runs[-1].read_text())
    from benchmarks.paper_cost import paper_config
    from benchmarks.paper_flops import paper_models
    from e2gan.metrics.train_cost import gan_step_flops

    pc = paper_config()
    g, d = paper_models(pc, len(cfg["data"]["base_concepts"]))
    flops = gan_step_flops(g, d, 16, pc.data.resolution, pc.train.lambda_l1)
    secs = summary["train_seconds"]
    teacher = json.loads((next(Path(values["RUNS"]).glob("data/paper-*")) / "teacher.json").read_text())
    return {**out, "ok": summary.get("gan_step") == PAPER_STEPS, "train_summary": summary,
            "teacher_dtype": teacher.get("dtype"), "steps": PAPER_STEPS, "train_seconds": secs,
            "wall_seconds": train["seconds"], "flops_per_step": flops,
            "achieved_tflops": flops * PAPER_STEPS / secs / 1e12 if secs else None}


def paper_cost(work: Path, out: Path, env: dict) -> dict:
    r = _run([sys.executable, "-m", "benchmarks.run", "--only", "paper_cost", "--runs", str(work / "bench-runs"),
              "--out", str(out / "gpu-bench"), "--no-latest"], env, 1800)
    found = sorted((out / "gpu-bench").glob("*.json"))
    data = json.loads(found[-1].read_text())["benchmarks"]["paper_cost"] if found else {}
    return {**r, "ok": r["rc"] == 0 and data.get("status") == "ok", "checks": data.get("checks", [])}


def render(report: dict) -> str:
    lines = [f"# GPU checks {report['started']}", "", f"Device: **{report['device']}** ({report['torch']}, CUDA "
             f"{report['cuda']}), {report['seconds']:.0f} s in all.", ""]
    t = report["parts"].get("cuda_tests", {})
    lines.append(f"- CUDA tests (`tests/test_gpu.py`): {'ok' if t.get('ok') else 'FAILED'} {t.get('counts')}")
    p = report["parts"].get("paper_steps", {})
    if p.get("ok"):
        lines.append(f"- fp16 distillation (tiny random IP2P, 256², teacher dtype {p['teacher_dtype']}): "
                     f"{p['distill']['seconds']:.1f} s wall")
        lines.append(f"- {p['steps']} paper-preset base steps (256², width 64, batch 16, 16-mixed): "
                     f"{p['train_seconds']:.1f} s on the training clock, {p['wall_seconds']:.1f} s wall; "
                     f"{p['flops_per_step'] / 1e12:.2f} TFLOP per step counted -> {p['achieved_tflops']:.1f} TFLOP/s")
    else:
        lines.append(f"- paper-preset steps: FAILED ({p.get('error') or (p.get('train') or p.get('distill') or {}).get('stderr_tail', '')[-300:]})")
    c = report["parts"].get("paper_cost", {})
    lines.append(f"- paper-cost benchmark on the GPU: {'ok' if c.get('ok') else 'FAILED'}")
    for row in c.get("checks", []):
        lines.append(f"  - {row['what']}: {row['measured']:.3g} {row['unit']} ({row['note']})")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_checks", description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--work", default="runs/gpu-checks")
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("error: no CUDA GPU (torch.cuda.is_available() is False): run this on a machine with one", file=sys.stderr)
        return 2
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONHASHSEED="0")
    out, work = Path(args.out), Path(args.work).resolve()
    device = torch.cuda.get_device_name(0)
    report = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "device": device,
              "torch": torch.__version__, "cuda": torch.version.cuda, "parts": {}}
    t0 = time.perf_counter()
    for name, fn in (("cuda_tests", lambda: cuda_tests(env)), ("paper_steps", lambda: paper_steps(work / "paper", env)),
                     ("paper_cost", lambda: paper_cost(work, out, env))):
        print(f"[gpu-checks] {name}", file=sys.stderr, flush=True)
        try:
            report["parts"][name] = fn()
        except Exception as exc:  # one broken part must not lose the others
            report["parts"][name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    report["seconds"] = time.perf_counter() - t0
    slug = re.sub(r"[^A-Za-z0-9]+", "-", device).strip("-").lower()
    stem = out / f"gpu-checks-{time.strftime('%Y-%m-%d-%H%M', time.gmtime())}-{slug}"
    out.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str))
    stem.with_suffix(".md").write_text(render(report))
    print(render(report))
    return 0 if all(v.get("ok") for v in report["parts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
