"""4. Training throughput: images/s and achieved FLOP/s of a base-training step.

A base-training step (the preset's E²GAN generator over the base concepts + its PatchGAN, batch
and resolution of the preset, the pix2pix objective, Adam) is timed interleaved with the same step
for pix2pix ResNet-9 (the preset's ngf, and ngf 64) and the best GEMM of the CPU peak sweep
(`benchmarks.peak`; on a GPU a 1536² matmul there). Achieved FLOP/s is set against the CPU's
honest fp32 peak (theoretical, raised only by a measured rate above it). FLOPs per step are
counted (torch.utils.flop_counter, G+D forward and backward). Then a short real training loop
(Lightning, `lightning_modules.training.fit`) measures what the loop around the step costs: its
images/s from the training clock vs the bare step's.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import shutil
import time
from pathlib import Path

from benchmarks import peak as cpu_peak
from benchmarks.common import (Context, check, cuda_sync, gemm_call, interleave, make_gan_step, median,
                               ratio_of_medians, timing_summary, train_batch, wait_for_base)

NAME = "throughput"
TITLE = "Training throughput of a base-training step"


def run(ctx: Context) -> dict:
    import torch

    from e2gan.metrics.train_cost import gan_step_flops
    from e2gan.nets.registry import make_discriminator, make_generator
    from lightning_modules.training import fit
    from e2gan.data.concepts import concept_names

    sc, cfg, t = ctx.scale, ctx.cfg, ctx.cfg.train
    data, base_run, base_summary = wait_for_base(ctx, cfg)
    base, _ = concept_names(cfg)
    index = {c: i for i, c in enumerate(base)}
    batch = train_batch(data, base, index, t.batch_size, seed=t.seed)
    sides = {"e2gan": (make_generator(cfg.model, len(base)), make_discriminator(cfg.disc))}
    p2p_ngfs = [cfg.adapt.pix2pix_ngf] + ([64] if sc.throughput_p2p64 and cfg.adapt.pix2pix_ngf != 64 else [])
    for ngf in p2p_ngfs:
        m = dataclasses.replace(cfg.model, arch="pix2pix", width=ngf, n_blocks=cfg.adapt.pix2pix_blocks)
        sides[f"pix2pix-ngf{ngf}"] = (make_generator(m, 1), make_discriminator(cfg.disc))
    flops = {k: gan_step_flops(g, d, t.batch_size, cfg.data.resolution, t.lambda_l1) for k, (g, d) in sides.items()}
    before = tuple(copy.deepcopy(m) for m in sides["e2gan"])
    calls = {k: make_gan_step(g, d, batch, lr_g=t.lr_g, lr_d=t.lr_d, betas=(t.beta1, t.beta2), lambda_l1=t.lambda_l1,
                              gan_mode=t.gan_mode, device=ctx.device) for k, (g, d) in sides.items()}
    # The E2GAN step as it ran before 2026-12-06 (NCHW batches, D's weight gradients computed in G's
    # term), interleaved with today's: what those two changes bought.
    calls["e2gan-before"] = make_gan_step(*before, batch, lr_g=t.lr_g, lr_d=t.lr_d, betas=(t.beta1, t.beta2),
                                          lambda_l1=t.lambda_l1, gan_mode=t.gan_mode, device=ctx.device,
                                          channels_last=False, d_weight_grads=True)
    on_cpu = ctx.device == "cpu"
    if on_cpu:   # the sweep's best GEMM, interleaved; the peak is the CPU's honest one (benchmarks.peak)
        best = cpu_peak.sweep(ctx)
        gemm, gemm_flops = best["call"], best["flop"]
    else:
        gemm, gemm_flops = gemm_call(device=ctx.device)
    calls["gemm"] = gemm
    sync = cuda_sync(ctx.device)
    times = interleave(calls, rounds=sc.step_rounds, warmup=1, sync=sync)
    gemm_gflops = gemm_flops / min(times["gemm"]) / 1e9
    achieved = {k: flops[k] / median(times[k]) / 1e9 for k in sides}
    machine = None
    if on_cpu:
        machine = cpu_peak.final(ctx, {**{f"training step {k}": v for k, v in achieved.items()},
                                       f"{cpu_peak.label(best['best'])} interleaved": gemm_gflops})
        peak = machine["gflops"]
    else:
        peak = gemm_flops / median(times["gemm"]) / 1e9
    steps = {}
    for k in sides:
        s = median(times[k])
        steps[k] = {"step_seconds": s, "images_per_s": t.batch_size / s, "flops_per_step": flops[k],
                    "achieved_gflops": achieved[k], "peak_fraction": achieved[k] / peak,
                    "gemm_fraction": achieved[k] / max(gemm_gflops, (machine or {}).get("measured_gemm_gflops") or 0),
                    "timing": timing_summary(times[k])}
    for k in sides:
        if k != "e2gan":
            steps[k]["slower_than_e2gan"] = ratio_of_medians(times[k], times["e2gan"])
    speedup = {"before_step_seconds": median(times["e2gan-before"]), "now_step_seconds": median(times["e2gan"]),
               "before_over_now": ratio_of_medians(times["e2gan-before"], times["e2gan"]),
               "timing_before": timing_summary(times["e2gan-before"])}

    # The same step inside the real training loop (data loading, Lightning, logging; no validation).
    loop_dir = ctx.work / "throughput" / "fit"
    if loop_dir.exists():
        shutil.rmtree(loop_dir)
    n = sc.throughput_fit_steps
    loop_cfg = ctx.config(train={"steps": n, "ckpt_every": n})
    g, d = make_generator(cfg.model, len(base)), make_discriminator(cfg.disc)
    bare_before = interleave({"e2gan": calls["e2gan"]}, rounds=max(2, sc.step_rounds // 2), warmup=0, sync=sync)["e2gan"]
    t0 = time.perf_counter()
    summary = fit(loop_cfg, loop_dir, data, base, index, g, d, progress=False)
    fit_wall = time.perf_counter() - t0
    bare_after = interleave({"e2gan": calls["e2gan"]}, rounds=max(2, sc.step_rounds // 2), warmup=0, sync=sync)["e2gan"]
    bare = median(bare_before + bare_after)
    loop_step = summary["train_seconds"] / max(1, summary["gan_step"])
    loop = {"steps": summary["gan_step"], "train_seconds": summary["train_seconds"],
            "images_per_s": summary["images_seen"] / summary["train_seconds"], "step_seconds": loop_step,
            "bare_step_seconds_around": bare, "fit_wall_seconds": fit_wall, "loop_overhead": loop_step / bare - 1,
            "note": "sequential with the bare-step timing around it (not interleaved): load changes show up here"}
    base_run_rate = None
    if base_summary and base_summary.get("train_seconds"):
        base_run_rate = {"images_per_s": base_summary["images_seen"] / base_summary["train_seconds"],
                         "steps": base_summary["gan_step"], "train_seconds": base_summary["train_seconds"],
                         "note": "from the cached base run's train.json (machine load then unknown)"}
    data_out = {"batch_size": t.batch_size, "resolution": cfg.data.resolution, "device": ctx.device,
                "threads": torch.get_num_threads(), "peak_gflops": peak,
                "gemm_peak_gflops": max(gemm_gflops, (machine or {}).get("measured_gemm_gflops") or 0),
                "peak": machine, "gemm_interleaved_gflops": gemm_gflops, "rounds": sc.step_rounds,
                "steps": steps, "step_speedup": speedup, "loop": loop, "base_run": base_run_rate,
                "models": {k: {"generator_params": sum(p.numel() for p in g_.parameters()),
                               "discriminator_params": sum(p.numel() for p in d_.parameters())}
                           for k, (g_, d_) in sides.items()}}
    data_out["omp_wait_policy"] = omp_policy_probe(ctx)
    e = steps["e2gan"]
    checks = [
        check("throughput.images_per_s", f"base-training step, E²GAN w{cfg.model.width}, batch {t.batch_size} at {cfg.data.resolution}²",
              e["images_per_s"], None, unit="img/s",
              note=f"{e['step_seconds'] * 1000:.0f} ms/step; {loop['images_per_s']:.1f} img/s in a short Lightning run "
                   "(sequential, so load-sensitive)",
              basis=f"median of {sc.step_rounds} interleaved rounds, {ctx.threads} threads, {ctx.device}"),
        check("throughput.peak_fraction", f"achieved FLOP/s of that step ÷ the {'CPU' if on_cpu else ctx.device}'s fp32 peak",
              e["peak_fraction"], None, unit="%",
              note=(f"{e['achieved_gflops']:.1f} of {peak:.1f} GFLOP/s ({e['flops_per_step'] / 1e9:.2f} GFLOP/step); "
                    f"{100 * e['gemm_fraction']:.0f}% of the best GEMM measured"),
              basis=cpu_peak.describe(machine) if machine else f"median rate of a 1536² torch.mm on {ctx.device}"),
    ]
    checks.append(check("throughput.step_speedup", "E²GAN step as it ran before 2026-12-06 (NCHW, D's weight "
                        "gradients in G's term) ÷ today's (channels_last, none)", speedup["before_over_now"], None, unit="×",
                        note=f"{speedup['before_step_seconds'] * 1000:.0f} → {speedup['now_step_seconds'] * 1000:.0f} ms/step, "
                             "interleaved in one run; the same objective (the generator's gradients bit-identical "
                             "without D's weight gradients: tests/lightning_modules/test_gan_module.py)"))
    omp = data_out["omp_wait_policy"]
    checks.append(check("throughput.omp_wait_policy", "E²GAN step time with spinning (ACTIVE) ÷ sleeping (PASSIVE) OpenMP threads",
                        omp["active_over_passive_step"], None, unit="×",
                        note=f"batch-1 forward {omp['active_over_passive_forward']:.1f}×; load average {omp['loadavg']}; "
                             f"fresh processes, {ctx.threads} threads"))
    for k in sides:
        if k != "e2gan":
            s = steps[k]
            checks.append(check(f"throughput.{k}", f"pix2pix {k.split('-')[1]} step time ÷ E²GAN's (same D, batch)",
                                s["slower_than_e2gan"], None, unit="×",
                                note=f"{s['images_per_s']:.1f} img/s, {s['achieved_gflops']:.1f} GFLOP/s "
                                     f"({100 * s['peak_fraction']:.0f}% of peak)"))
    return {"checks": checks, "data": data_out}


# ----------------------------------------------------------------------------- OpenMP wait policy
def omp_policy_probe(ctx: Context) -> dict:
    """The same E²GAN training step and batch-1 forward in fresh processes with OMP_WAIT_POLICY
    ACTIVE (spinning idle threads, the OpenMP default) and PASSIVE (sleeping), alternated A P P A.
    On a machine busy with other processes, spinning threads wait on descheduled ones at every
    parallel region; this records what that costs here and now (the load average is beside it)."""
    import os
    import subprocess
    import sys

    from benchmarks.common import loadavg

    payload = json.dumps({"model": dataclasses.asdict(ctx.cfg.model), "disc": dataclasses.asdict(ctx.cfg.disc),
                          "resolution": ctx.cfg.data.resolution, "batch_size": ctx.cfg.train.batch_size,
                          "steps": 3, "threads": ctx.threads})
    results: dict[str, list[dict]] = {"ACTIVE": [], "PASSIVE": []}
    order = ["ACTIVE", "PASSIVE", "PASSIVE", "ACTIVE"]
    for policy in order:
        env = {**os.environ, "OMP_WAIT_POLICY": policy, "OMP_NUM_THREADS": str(ctx.threads)}
        out = subprocess.run([sys.executable, "-m", "benchmarks.throughput", payload], env=env, capture_output=True,
                             text=True, check=True, cwd=str(Path(__file__).resolve().parent.parent))
        results[policy].append(json.loads(out.stdout.strip().splitlines()[-1]))
    summary = {}
    for policy, rs in results.items():
        summary[policy] = {k: min(r[k] for r in rs) for k in ("step_seconds", "forward_seconds")}
    return {"threads": ctx.threads, "loadavg": loadavg(), "runs": results, "best_of": summary,
            "active_over_passive_step": summary["ACTIVE"]["step_seconds"] / summary["PASSIVE"]["step_seconds"],
            "active_over_passive_forward": summary["ACTIVE"]["forward_seconds"] / summary["PASSIVE"]["forward_seconds"],
            "what": "median step / batch-1 forward time per process, best of 2 processes per policy, order A P P A"}


def _probe(payload: dict) -> dict:
    import time

    import torch

    from e2gan.config import DiscConfig, ModelConfig
    from e2gan.nets.registry import make_discriminator, make_generator

    torch.set_num_threads(payload["threads"])
    torch.manual_seed(0)
    g = make_generator(ModelConfig(**payload["model"]), 4)
    d = make_discriminator(DiscConfig(**payload["disc"]))
    b, r = payload["batch_size"], payload["resolution"]
    batch = {"source": torch.rand(b, 3, r, r) * 2 - 1, "target": torch.rand(b, 3, r, r) * 2 - 1,
             "concept_id": torch.zeros(b, dtype=torch.long)}
    step = make_gan_step(g, d, batch, lr_g=1e-3, lr_d=1e-3)
    x, c = torch.rand(1, 3, r, r), torch.zeros(1, dtype=torch.long)

    def forward():
        with torch.inference_mode():
            g.eval()(x, c)
        g.train()

    out = {}
    for name, fn, n in (("step_seconds", step, payload["steps"]), ("forward_seconds", forward, 10)):
        fn()
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        out[name] = median(ts)
    return out


if __name__ == "__main__":
    import sys

    print(json.dumps(_probe(json.loads(sys.argv[1]))))
