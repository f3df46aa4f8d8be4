"""3. Kernel efficiency: the exported generator's achieved FLOP/s as a fraction of the fp32 GEMM peak.

Achieved FLOP/s = 2 x MACs / median latency (LiteRT interpreter, batch 1; MACs counted by
torch.utils.flop_counter on the exported module: convolutions and matmuls, not element-wise ops).
The peak is a 1536² fp32 torch.mm with the same thread count, timed *interleaved* with the model
calls, so both see the same machine state. For context the same is reported for PyTorch eager and
for single 3x3 convolutions at the generator's widths (what the conv kernels alone achieve), and a
PyTorch profile splits the eager model's time by operator kind (on the CPU).

On a GPU (the run's device) PyTorch eager and the lone conv run there and are set against the
same torch.mm on that device (synchronised after every call); LiteRT always runs on the CPU and
keeps the CPU peak.
"""
from __future__ import annotations

from benchmarks.common import (Context, adaptive_rounds, check, cuda_sync, gemm_call, interleave, median,
                               timing_summary)
from benchmarks.speed import _macs, _models, export_cached, litert_call, torch_call

NAME = "kernel"
TITLE = "Kernel efficiency: achieved FLOP/s vs the measured fp32 GEMM peak"


def _conv_call(channels: int, resolution: int, device: str = "cpu"):
    import torch

    conv = torch.nn.Conv2d(channels, channels, 3, padding=1).eval().to(device)
    x = torch.randn(1, channels, resolution, resolution).to(device)

    def call():
        with torch.inference_mode():
            conv(x)

    return call, channels * channels * 9 * resolution * resolution


def op_profile(module, concept_id: int, resolution: int, runs: int = 3) -> dict:
    """Share of PyTorch eager self-CPU time by operator kind (conv, norm, matmul/attention, other)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    call = torch_call(module, concept_id, resolution)
    call()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(runs):
            call()
    kinds = {"conv": ("conv", "mkldnn_convolution"), "norm": ("norm",),
             "matmul/attention": ("mm", "matmul", "bmm", "linear", "addmm", "attention", "softmax"),
             "pad/resample": ("pad", "upsample", "interp")}
    totals = {k: 0.0 for k in [*kinds, "element-wise/other"]}
    top = []
    for ev in prof.key_averages():
        t = ev.self_cpu_time_total
        name = ev.key.lower()
        kind = next((k for k, keys in kinds.items() if any(s in name for s in keys)), "element-wise/other")
        totals[kind] += t
        top.append((ev.key, t))
    all_t = sum(totals.values()) or 1.0
    top.sort(key=lambda kv: -kv[1])
    return {"share": {k: v / all_t for k, v in totals.items()},
            "top_ops": [{"op": k, "share": v / all_t} for k, v in top[:8]], "runs": runs,
            "resolution": resolution}


def run(ctx: Context) -> dict:
    sc = ctx.scale
    adapt = ctx.shared.get("adaptation")
    gemm, gemm_flops = gemm_call()                      # the CPU's peak: LiteRT runs there
    on_device = ctx.device != "cpu"
    if on_device:
        dev_gemm, dev_gemm_flops = gemm_call(device=ctx.device)   # eager and the lone conv run on the device
    sync = cuda_sync(ctx.device)
    targets = [("preset", ctx.cfg.model.width, ctx.cfg.adapt.pix2pix_ngf, True)]
    if sc.paper_pair:
        targets.append(("paper-width", sc.paper_width, sc.paper_width, False))
    rows, checks = [], []
    for label, width, ngf, trained in targets:
        models = _models(ctx, width, ngf, trained)
        g, cid = models["e2gan"]
        for res in sc.speed_resolutions:
            key = f"e2gan-w{width}{'-trained' if trained and adapt else ''}"
            exp = export_cached(ctx, key, g, cid, res)
            exp_mirror = export_cached(ctx, key, g, cid, res, reflect_pad="mirror-pad")  # the export before
            macs = exp["macs"]
            eager_macs = _macs(g, cid, res)
            conv, conv_macs = _conv_call(width, res, ctx.device)
            calls = {"litert": litert_call(exp["path"], ctx.threads, res), "torch": torch_call(g, cid, res, ctx.device),
                     "gemm": gemm, "conv3x3": conv, "litert_mirror_pad": litert_call(exp_mirror["path"], ctx.threads, res)}
            if on_device:
                calls["gemm_device"] = dev_gemm
            rounds = adaptive_rounds(calls, sc.latency_seconds, *sc.latency_rounds, sync=sync)
            t = interleave(calls, rounds, warmup=1, sync=sync)
            peak = gemm_flops / median(t["gemm"]) / 1e9
            row = {"model": f"E²GAN w{width}", "pair": label, "resolution": res, "macs": macs,
                   "gemm_peak_gflops": peak, "gemm_peak_paired": [gemm_flops / x / 1e9 for x in t["gemm"]],
                   "device": ctx.device, "threads": ctx.threads, "rounds": rounds,
                   "timings": {k: timing_summary(v) for k, v in t.items()}}
            if on_device:
                row["device_gemm_peak_gflops"] = dev_gemm_flops / median(t["gemm_device"]) / 1e9
            for side, m in (("litert", macs), ("litert_mirror_pad", macs), ("torch", eager_macs), ("conv3x3", conv_macs)):
                on_cpu = side.startswith("litert")
                ref, ref_flops = ("gemm_device", dev_gemm_flops) if on_device and not on_cpu else ("gemm", gemm_flops)
                side_peak = ref_flops / median(t[ref]) / 1e9
                gf = 2 * m / median(t[side]) / 1e9
                paired = median([(2 * m / x) / (ref_flops / y) for x, y in zip(t[side], t[ref])])
                row[side] = {"median_ms": 1000 * median(t[side]), "gflops": gf, "peak_fraction": gf / side_peak,
                             "peak_fraction_paired": paired, "macs": m,
                             "device": "cpu" if on_cpu else ctx.device}
            row["conv3x3"]["what"] = f"one Conv2d {width}->{width} 3x3 at {res}² (the generator's narrowest conv width)"
            row["profile_eager"] = op_profile(g, cid, res)
            rows.append(row)
            checks.append(check(
                f"kernel.{label}.{res}", f"LiteRT E²GAN w{width} at {res}²: achieved ÷ fp32 GEMM peak",
                row["litert"]["peak_fraction"], 0.70, ">=", unit="%",
                note=(f"{row['litert']['gflops']:.1f} of {peak:.1f} GFLOP/s (paired {100 * row['litert']['peak_fraction_paired']:.0f}%); "
                      f"MIRROR_PAD export (before) {100 * row['litert_mirror_pad']['peak_fraction']:.0f}%; "
                      f"eager {100 * row['torch']['peak_fraction']:.0f}%, "
                      f"a lone {width}-channel 3x3 conv {100 * row['conv3x3']['peak_fraction']:.0f}%"
                      + (f" (eager and conv on {ctx.device}, of its {row['device_gemm_peak_gflops']:.0f} GFLOP/s torch.mm)"
                         if on_device else "")),
                basis=f"2×MACs / median latency, {rounds} rounds interleaved with a 1536² torch.mm, {ctx.threads} threads",
                cause=(f"narrow layers: a lone {width}-channel 3×3 conv itself reaches only "
                       f"{100 * row['conv3x3']['peak_fraction']:.0f}% of the GEMM peak here; convs are "
                       f"{100 * row['profile_eager']['share']['conv']:.0f}% of the eager time, norms "
                       f"{100 * row['profile_eager']['share']['norm']:.0f}% (memory-bound)")))
    data = {"rows": rows, "threads": ctx.threads,
            "macs_convention": "torch.utils.flop_counter: convs and matmuls (attention included), element-wise ops excluded"}
    before_after = [
        {"key": f"kernel.{r['pair']}.{r['resolution']}.reflect_pad",
         "what": f"LiteRT {r['model']} at {r['resolution']}²: achieved ÷ fp32 GEMM peak",
         "before": r["litert_mirror_pad"]["peak_fraction"], "after": r["litert"]["peak_fraction"], "unit": "%",
         "ratio": r["litert"]["peak_fraction"] / r["litert_mirror_pad"]["peak_fraction"],
         "change": "reflection padding exported as slices + concatenation instead of MIRROR_PAD (the same values)",
         "basis": f"same run, {r['rounds']} rounds interleaved with the GEMM peak",
         "note": f"{r['litert_mirror_pad']['median_ms']:.2f} → {r['litert']['median_ms']:.2f} ms"}
        for r in rows]
    return {"checks": checks, "data": data, "before_after": before_after}
