"""LoRA adaptation step vs a full fine-tuning step: the time of one training batch of each.

Both sides are the preset's adaptation as `lightning_modules.adaptation.build` sets it up: the
preset's E²GAN over the base concepts plus the new concept's embedding row (mean-initialised),
the preset's discriminator treatment (`adapt.disc`), the pix2pix objective with Adam; full
fine-tuning trains every generator weight at `train.lr_g`, LoRA the preset's groups and ranks at
`adapt.lr`. A third side is LoRA through peft's own forward (`base(x) + s·B(A(x))`, the path
before `e2gan.nets.lora.use_merged_weight_forward`). Steps run outside Lightning (`make_gan_step`, the
same objective), interleaved ABBA with one another; then the generator's forward + backward alone
for each side, to say where a step's time goes. Weights are random: a step's time does not depend
on them, so no base model is needed.
"""
from __future__ import annotations

from benchmarks.common import Context, check, interleave, make_gan_step, median, paired_ratio, timing_summary

NAME = "lora_step"
TITLE = "LoRA adaptation step vs a full fine-tuning step"


def _sides(ctx: Context) -> dict:
    """{'full', 'lora', 'lora_peft'} -> (generator, discriminator, lr_g), as build() makes them."""
    import torch

    from e2gan.nets.lora import add_lora, use_merged_weight_forward
    from e2gan.nets.registry import make_discriminator, make_generator
    from lightning_modules.adaptation import _lora_spec
    from e2gan.data.concepts import concept_names

    cfg = ctx.cfg
    n_base = len(concept_names(cfg)[0])
    out = {}
    for side in ("full", "lora", "lora_peft"):
        torch.manual_seed(cfg.adapt.seed)
        g = make_generator(cfg.model, n_base)
        table = hasattr(g.concepts, "table")
        g.concepts.add_concepts(1, "mean") if table else None
        if side != "full":
            g = add_lora(g, _lora_spec(cfg))
            if side == "lora":
                use_merged_weight_forward(g)
        if table:
            g.concepts.tables[-1].requires_grad_(True)
        d = make_discriminator(cfg.disc)
        if cfg.adapt.disc == "frozen":
            d.requires_grad_(False)
        out[side] = (g, d, cfg.train.lr_g if side == "full" else cfg.adapt.lr, n_base if table else 0)
    return out


def run(ctx: Context) -> dict:
    import torch

    cfg, sc = ctx.cfg, ctx.scale
    b, r = cfg.train.batch_size, cfg.data.resolution
    gen = torch.Generator().manual_seed(0)
    sides = _sides(ctx)
    batch = {"source": torch.rand(b, 3, r, r, generator=gen) * 2 - 1, "target": torch.rand(b, 3, r, r, generator=gen) * 2 - 1,
             "concept_id": torch.full((b,), next(iter(sides.values()))[3], dtype=torch.long)}
    t = cfg.train
    steps = {k: make_gan_step(g, d, batch, lr_g=lr, lr_d=cfg.adapt.lr_d, betas=(t.beta1, t.beta2), lambda_l1=t.lambda_l1,
                              gan_mode=t.gan_mode, device=ctx.device) for k, (g, d, lr, _) in sides.items()}
    times = interleave(steps, rounds=sc.step_rounds, warmup=1)

    def g_only(g):
        src, cid = batch["source"].to(ctx.device), batch["concept_id"].to(ctx.device)

        def call():
            g.zero_grad(set_to_none=True)
            g(src, cid).square().mean().backward()
        return call

    g_times = interleave({k: g_only(g) for k, (g, _, _, _) in sides.items()}, rounds=sc.step_rounds, warmup=1)
    ratio = paired_ratio(times["lora"], times["full"])
    before = paired_ratio(times["lora_peft"], times["full"])
    trainable = {k: sum(p.numel() for p in g.parameters() if p.requires_grad) for k, (g, _, _, _) in sides.items()}
    data = {"batch_size": b, "resolution": r, "threads": ctx.threads, "device": ctx.device, "rounds": sc.step_rounds,
            "disc": cfg.adapt.disc, "trainable_params": trainable,
            "steps": {k: {**timing_summary(v), "step_seconds": median(v), "per_round": v} for k, v in times.items()},
            "generator_fwd_bwd": {k: {**timing_summary(v), "seconds": median(v)} for k, v in g_times.items()},
            "lora_over_full": ratio, "lora_peft_over_full": before,
            "generator_lora_over_full": paired_ratio(g_times["lora"], g_times["full"]),
            "generator_lora_peft_over_full": paired_ratio(g_times["lora_peft"], g_times["full"])}
    ms = {k: 1000 * median(v) for k, v in times.items()}
    gms = {k: 1000 * median(v) for k, v in g_times.items()}
    checks = [check(
        "lora_step.ratio", f"LoRA adaptation step ÷ full fine-tuning step (batch {b} at {r}²)", ratio, 1.0, "<=",
        unit="×",
        note=(f"{ms['lora']:.0f} vs {ms['full']:.0f} ms/step; peft's own forward (before) {before:.2f}× "
              f"({ms['lora_peft']:.0f} ms); generator fwd+bwd alone {gms['lora']:.0f} / {gms['full']:.0f} / "
              f"{gms['lora_peft']:.0f} ms (LoRA / full / peft); trainable {trainable['lora']} vs {trainable['full']}"),
        basis=f"median of per-round ratios, {sc.step_rounds} rounds interleaved ABBA, {ctx.threads} threads, {ctx.device}",
        cause=(f"the generator's forward + backward is {data['generator_lora_over_full']:.2f}× the full one's; "
               "the rest of the step (discriminator, losses, Adam) is the same work on both sides"))]
    before_after = [{
        "key": "lora_step.merged_weight", "what": "LoRA adaptation step time", "before": median(times["lora_peft"]),
        "after": median(times["lora"]), "unit": "s", "ratio": paired_ratio(times["lora_peft"], times["lora"]),
        "change": "each LoRA layer runs one conv on W + s·B·A (use_merged_weight_forward) instead of peft's "
                  "base(x) + s·B(A(x)): two narrow convs fewer per layer, forward and backward",
        "basis": f"same run, {sc.step_rounds} rounds interleaved ABBA; ratio: median of per-round ratios",
        "note": f"÷ full fine-tuning step: {before:.2f}× before, {ratio:.2f}× after"}]
    return {"checks": checks, "data": data, "before_after": before_after}
