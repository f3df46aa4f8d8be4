"""6. What a paper-preset run costs: memory and FLOPs of a training step, GPU time per stage.

Measured here, whatever the benchmark preset: the peak memory of one paper-preset training step
(E²GAN width 64 over the ffhq base concepts + the 70×70 PatchGAN at 256², the pix2pix objective,
Adam) at batch 1 and batch 16 on the CPU, each in a fresh process (peak resident set, VmHWM, and its
rise over the process with models and batch loaded), and its wall time there. Counted: FLOPs of
each unit of work (`benchmarks.paper_flops`). Estimated, and labelled so: the GPU time of each
stage of `e2gan reproduce --preset paper`, counted FLOPs ÷ an effective rate — the rate of a real
batch-16 step measured on the GPU when the run has one, else an assumed rate stated in the row.

Batch 16 runs only when a linear extrapolation from batch 1 fits in half the memory available;
otherwise the extrapolation is reported as such.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from benchmarks.common import Context, check

NAME = "paper_cost"
TITLE = "Paper preset: memory and FLOPs of a training step, GPU time per stage (estimated)"
ASSUMED_TFLOPS = 30.0   # effective mixed-precision rate of a current data-centre GPU on small-batch conv GANs
IMAGES = 1000           # source images per concept assumed for the distillation and evaluation estimates
TEST_FRACTION = 0.15    # folder splits: ~15% test


def paper_config(scale: str = "paper"):
    """The paper preset with the ffhq concepts; the harness's own micro scale shrinks it to seconds."""
    import copy

    from benchmarks.common import SCALES
    from e2gan.config import apply_overrides
    from e2gan.presets import get_preset

    cfg = apply_overrides(get_preset("paper"), {"data": {"concepts_file": "ffhq"}}, "paper_cost")
    if scale == "micro":
        micro = copy.deepcopy(SCALES["micro"].config_overrides)
        micro["data"] = {"resolution": micro["data"]["resolution"]}  # the ffhq concepts stay
        cfg = apply_overrides(cfg, micro, "paper_cost micro")
    return cfg


def _available_bytes() -> int | None:
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def measure_step(batch: int, threads: int, device: str = "cpu", scale: str = "paper") -> dict:
    """One paper-preset training step in a fresh process: peak memory, wall time (``_worker``)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.paper_cost", str(batch), str(threads), device, scale],
                          capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"paper-preset step at batch {batch} failed: {proc.stderr.strip()[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _worker(batch: int, threads: int, device: str, scale: str) -> dict:
    import torch

    from benchmarks.common import make_gan_step
    from benchmarks.paper_flops import paper_models
    from e2gan.metrics.cost import peak_memory_bytes, reset_peak_memory
    from e2gan.data.concepts import concept_names

    torch.set_num_threads(threads)
    cfg = paper_config(scale)
    g, d = paper_models(cfg, len(concept_names(cfg)[0]))
    r = cfg.data.resolution
    gen = torch.Generator().manual_seed(0)
    data = {"source": torch.rand(batch, 3, r, r, generator=gen) * 2 - 1,
            "target": torch.rand(batch, 3, r, r, generator=gen) * 2 - 1,
            "concept_id": torch.randint(0, 2, (batch,), generator=gen)}
    step = make_gan_step(g, d, data, lr_g=cfg.train.lr_g, lr_d=cfg.train.lr_d, lambda_l1=cfg.train.lambda_l1,
                         device=device)
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sync()
    reset_peak_memory(device)  # the peak starts at what is resident now: models, batch, libraries
    before = peak_memory_bytes(device)["bytes"] if not cuda else int(torch.cuda.memory_allocated())
    # The first step holds the peak (Adam's state appears in it). On a GPU two more steps are timed
    # after it: the first one carries cuDNN's algorithm search and the allocator's growth.
    times = []
    for _ in range(3 if cuda else 1):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    peak = peak_memory_bytes(device)
    return {"batch": batch, "threads": threads, "device": device, "seconds": min(times[1:] or times),
            "first_step_seconds": times[0], "before_bytes": before, "peak_bytes": peak["bytes"], "kind": peak["kind"],
            "rise_bytes": peak["bytes"] - before, "resolution": cfg.data.resolution, "width": cfg.model.width}


def counted(cfg, scale: str = "paper") -> dict:
    from benchmarks import paper_flops as pf
    from e2gan.metrics.train_cost import gan_step_flops
    from e2gan.data.concepts import concept_names

    base, new = concept_names(cfg)
    r, t = cfg.data.resolution, cfg.train
    g, d = pf.paper_models(cfg, len(base))
    out = {"base_concepts": len(base), "new_concepts": len(new)}
    out["base_step"] = {b: gan_step_flops(g, d, b, r, t.lambda_l1) for b in sorted({1, 16, t.batch_size})}
    out["lora_step"] = gan_step_flops(pf.lora_generator(cfg, len(base) + 1), d, t.batch_size, r, t.lambda_l1)
    out["generator_forward"] = pf.generator_forward(g, r)
    out["inception_forward"] = pf.inception_forward()
    out["lpips_pair"] = pf.lpips_alex_pair(max(r, 64))  # AlexNet needs 63² at least (micro scale: 32²)
    out["ip2p_edit"] = pf.ip2p_edit() if scale == "paper" else pf.ip2p_edit(steps=1, resolution=64)
    return out


def stages(cfg, c: dict, n_cells: int) -> list[dict]:
    """FLOPs of each stage of `reproduce --preset paper` with the ffhq concepts (assumptions in `basis`)."""
    n_concepts = c["base_concepts"] + c["new_concepts"]
    n_test = round(IMAGES * TEST_FRACTION)
    per_eval = n_test * (c["generator_forward"] + 2 * c["inception_forward"] + c["lpips_pair"])
    b = cfg.train.batch_size
    return [
        {"stage": f"distil (InstructPix2Pix, {c['ip2p_edit']['steps']} steps at {c['ip2p_edit']['resolution']}²)", "flops": IMAGES * n_concepts * c["ip2p_edit"]["total"],
         "basis": f"{IMAGES} images × {n_concepts} ffhq concepts × {c['ip2p_edit']['total'] / 1e12:.1f} TFLOP per edit"},
        {"stage": f"base training ({cfg.train.steps:,} steps, batch {b})", "flops": cfg.train.steps * c["base_step"][b],
         "basis": f"{c['base_step'][b] / 1e12:.2f} TFLOP per step (G and D forward and backward)"},
        {"stage": f"one concept, `e2gan adapt` ({cfg.adapt.steps} LoRA steps)", "flops": cfg.adapt.steps * c["lora_step"],
         "basis": f"{c['lora_step'] / 1e12:.2f} TFLOP per LoRA step, batch {b}"},
        {"stage": f"study cells ({n_cells} × 100 steps)", "flops": n_cells * 100 * c["lora_step"],
         "basis": "every cell counted as a LoRA step (pix2pix and full fine-tunes cost more)"},
        {"stage": "evaluating one run (per concept)", "flops": per_eval,
         "basis": f"{n_test} test images: generator, Inception on output and target, LPIPS-AlexNet"},
    ]


def run(ctx: Context) -> dict:
    import torch

    scale = "micro" if ctx.scale.name == "micro" else "paper"
    cfg = paper_config(scale)
    threads = ctx.threads
    c = counted(cfg, scale)
    ctx.log(f"counted: base step {c['base_step'][16] / 1e12:.2f} TFLOP at batch 16, IP2P edit "
            f"{c['ip2p_edit']['total'] / 1e12:.1f} TFLOP")
    mem = {1: measure_step(1, threads, scale=scale)}
    one = mem[1]
    predicted = one["before_bytes"] + 16 * one["rise_bytes"]
    available = _available_bytes()
    if available is None or predicted < 0.5 * available:
        mem[16] = measure_step(16, threads, scale=scale)
    else:
        mem[16] = {"batch": 16, "extrapolated": True, "peak_bytes": predicted, "available_bytes": available}
    gpu = measure_step(16, 1, "cuda", scale) if torch.cuda.is_available() else None
    rate = c["base_step"][16] / gpu["seconds"] if gpu else ASSUMED_TFLOPS * 1e12
    rate_note = (f"rate measured on {torch.cuda.get_device_name(0)}: one fp32 batch-16 step, {rate / 1e12:.1f} TFLOP/s"
                 if gpu else f"assumed effective {ASSUMED_TFLOPS:g} TFLOP/s (no GPU in this run): an estimate")
    rows = stages(cfg, c, n_cells=101)
    for row in rows:
        row["gpu_hours_estimated"] = row["flops"] / rate / 3600

    gib = 2 ** 30
    checks = []
    for b in (1, 16):
        m = mem[b]
        if m.get("extrapolated"):
            note = (f"not run: batch 1 extrapolated to {m['peak_bytes'] / gib:.1f} GiB, over half the "
                    f"{m['available_bytes'] / gib:.1f} GiB available")
        else:
            note = (f"fresh process, {m['threads']} threads: rise {m['rise_bytes'] / gib:.2f} GiB over models and batch "
                    f"loaded; the step took {m['seconds']:.1f} s on the CPU")
        checks.append(check(f"paper_cost.peak_memory_b{b}", f"peak memory of one paper-preset training step, batch {b}, CPU",
                            m["peak_bytes"] / gib, None, unit="GiB", note=note))
    checks.append(check("paper_cost.step_flops", "counted FLOPs of one paper-preset training step, batch 16",
                        c["base_step"][16] / 1e12, None, unit="TFLOP",
                        note=f"batch 1: {c['base_step'][1] / 1e12:.3f} TFLOP; LoRA step {c['lora_step'] / 1e12:.2f} TFLOP"))
    for i, row in enumerate(rows):
        hours = row["gpu_hours_estimated"]
        checks.append(check(f"paper_cost.stage{i}", f"GPU time, estimated: {row['stage']}",
                            hours if hours >= 1 else 3600 * hours, None, unit="GPU-h" if hours >= 1 else "GPU-s",
                            note=f"{row['flops']:.2e} FLOPs counted ({row['basis']}); {rate_note}"))
    data = {"counted": c, "memory": mem, "gpu_step": gpu, "rate_flops_per_s": rate, "rate_note": rate_note,
            "stages": rows, "assumed_images_per_concept": IMAGES, "threads": threads}
    return {"checks": checks, "data": data}


if __name__ == "__main__":  # the fresh process of measure_step: batch, threads, device
    print(json.dumps(_worker(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])))
