"""bf16-mixed vs float32 training steps on the CPU: what oneDNN's bf16 kernels buy each arm.

Each side is one batch of the preset's objective (`make_gan_step`: D update, then G with L1 +
adversarial, Adam), in float32 and inside ``torch.autocast("cpu", dtype=torch.bfloat16)``, which is
what Lightning's ``bf16-mixed`` wraps a training step in (weights, Adam and the losses' reductions
stay float32). The arms are the main comparison's: LoRA on the crucial groups (E²GAN, merged-weight
forward), a full fine-tune, pix2pix at the preset's ngf, and the base model's step (its generator
over the base concepts). All eight steps run interleaved ABBA. Weights are random: a step's time
does not depend on them. Whether bf16 moves the numbers is the `precision` study's question (paired
bootstrap over main's cells), not this benchmark's. On a CPU without native bf16 the benchmark says
so and measures nothing (training keeps float32 there: `lightning_modules.training.cpu_precision`).
"""
from __future__ import annotations

from benchmarks.common import Context, check, interleave, make_gan_step, median, paired_ratio, timing_summary

NAME = "precision"
TITLE = "bf16-mixed vs float32 training steps on the CPU"


def _generators(ctx: Context) -> dict:
    """arm -> (generator, discriminator, lr_g, concept id), built as the adaptation and the base build them."""
    import dataclasses

    import torch

    from benchmarks.lora_step import _sides
    from e2gan.data.concepts import concept_names
    from e2gan.nets.registry import make_discriminator, make_generator

    cfg = ctx.cfg
    lora = _sides(ctx)
    torch.manual_seed(0)
    p2p = dataclasses.replace(cfg.model, arch="pix2pix", width=cfg.adapt.pix2pix_ngf, n_blocks=cfg.adapt.pix2pix_blocks)
    return {"e2gan": lora["lora"], "full": lora["full"],
            "pix2pix": (make_generator(p2p, 1), make_discriminator(cfg.disc), cfg.train.lr_g, 0),
            "base": (make_generator(cfg.model, len(concept_names(cfg)[0])), make_discriminator(cfg.disc), cfg.train.lr_g, 0)}


def _autocast(step, bf16: bool):
    import torch

    def call() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            step()
    return call


def run(ctx: Context) -> dict:
    import torch

    from lightning_modules.training import cpu_precision

    cfg, sc = ctx.cfg, ctx.scale
    if ctx.device != "cpu" or cpu_precision("bf16-mixed") != "bf16-mixed":
        why = "not a CPU run" if ctx.device != "cpu" else "this CPU has no native bf16 (oneDNN reports none)"
        return {"checks": [check("precision.e2gan", "E²GAN (LoRA) step, bf16-mixed ÷ float32, CPU", None, None,
                                 note=f"not measured: {why}")], "data": {"skipped": why}, "before_after": []}
    b, r, t = cfg.train.batch_size, cfg.data.resolution, cfg.train
    gen = torch.Generator().manual_seed(0)
    calls, sides = {}, _generators(ctx)
    for arm, (g, d, lr, cid) in sides.items():
        batch = {"source": torch.rand(b, 3, r, r, generator=gen) * 2 - 1,
                 "target": torch.rand(b, 3, r, r, generator=gen) * 2 - 1,
                 "concept_id": torch.full((b,), cid, dtype=torch.long)}
        for bf16 in (False, True):
            # Separate copies per precision, so that one side's Adam state never feeds the other's.
            gg, dd = (g, d) if not bf16 else _copies(g, d)
            step = make_gan_step(gg, dd, batch, lr_g=lr, lr_d=cfg.adapt.lr_d if arm != "base" else t.lr_d,
                                 betas=(t.beta1, t.beta2), lambda_l1=t.lambda_l1, gan_mode=t.gan_mode, device=ctx.device)
            calls[f"{arm}-{'bf16' if bf16 else 'fp32'}"] = _autocast(step, bf16)
    times = interleave(calls, rounds=sc.step_rounds, warmup=2)
    ratios = {arm: paired_ratio(times[f"{arm}-bf16"], times[f"{arm}-fp32"]) for arm in sides}
    ms = {k: 1000 * median(v) for k, v in times.items()}
    basis = f"median of per-round ratios, {sc.step_rounds} rounds interleaved ABBA, {ctx.threads} threads, batch {b} at {r}²"
    checks = [check(f"precision.{arm}", f"{arm} training step, bf16-mixed ÷ float32, CPU", ratios[arm], None,
                    unit="×", note=f"{ms[arm + '-bf16']:.0f} vs {ms[arm + '-fp32']:.0f} ms/step", basis=basis)
              for arm in sides]
    before_after = [{
        "key": f"precision.{arm}", "what": f"{arm} training step", "before": median(times[f"{arm}-fp32"]),
        "after": median(times[f"{arm}-bf16"]), "unit": "s", "ratio": paired_ratio(times[f"{arm}-fp32"], times[f"{arm}-bf16"]),
        "change": "bf16-mixed autocast (oneDNN bf16 convolutions; float32 weights, Adam and loss reductions) instead of float32",
        "basis": f"same run, {sc.step_rounds} rounds interleaved ABBA; ratio: median of per-round ratios",
        "note": "quality: the precision study's paired comparisons"} for arm in sides]
    data = {"batch_size": b, "resolution": r, "threads": ctx.threads, "rounds": sc.step_rounds,
            "steps": {k: {**timing_summary(v), "step_seconds": median(v), "per_round": v} for k, v in times.items()},
            "bf16_over_fp32": ratios}
    return {"checks": checks, "data": data, "before_after": before_after}


def _copies(g, d):
    import copy

    return copy.deepcopy(g), copy.deepcopy(d)
