"""What every benchmark shares: the run context, budgets per preset, targets, interleaved timing.

Conventions:
- A *check* is one row of the summary table: a measured number, its target, whether it is met
  and, when it is not, by what factor it misses (`check`).
- Ratios between two sides (E²GAN vs pix2pix, a model vs the GEMM peak) are measured in one
  process with the sides interleaved call by call in ABBA order (`interleave`), so a change of
  machine load during the run hits both sides alike. Thread counts are set explicitly and recorded.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

SCHEMA = "e2gan-bench/1"
OPS = (">=", "<=")


# ----------------------------------------------------------------------------- budgets per scale
@dataclass
class Scale:
    """Budgets of one benchmark run. `tiny` is sized for a few minutes per group on 2 CPU cores."""

    name: str
    concept: str = "hue-60"                 # the new concept adapted in the cost benchmark
    config_overrides: dict = field(default_factory=dict)   # on top of the preset (micro only)
    p2p_steps: int = 300                    # pix2pix from scratch: its whole budget
    lora_steps: int = 150                   # LoRA from the base: at most this many steps
    eval_every: int = 5                     # test-split PSNR every this many steps (both sides)
    final_window: int = 3                   # pix2pix's final quality: mean of its last checkpoints
    # The second LoRA arm's per-group ranks: the allocation the tiny ranks study's greedy search
    # chose (studies/specs/ranks.toml [greedy]; reports/tiny/ranks, greedy-rank-search table).
    searched_ranks: dict = field(default_factory=lambda: {"down": 2, "ds": 1, "tb": 1, "us": 1, "up": 1})
    searched_source: str = ("greedy rank search of the tiny ranks study on hue-60 (seed 0, 100 steps, 2 rounds; "
                            "reports/tiny/ranks)")
    step_rounds: int = 6                    # interleaved rounds when timing training steps
    speed_resolutions: tuple[int, ...] = (64, 256)
    paper_width: int = 64                   # E²GAN width / pix2pix ngf of the paper-like pair
    paper_pair: bool = True
    latency_seconds: float = 6.0            # timing budget per (pair, resolution, backend)
    latency_rounds: tuple[int, int] = (5, 40)   # min / max interleaved rounds
    peak_sizes: tuple[int, ...] = (256, 512, 1024, 1536)   # square GEMMs (torch, numpy) of the peak sweep
    peak_litert_sizes: tuple[int, ...] = (256, 512, 1024)  # LiteRT FULLY_CONNECTED GEMMs of the sweep
    throughput_fit_steps: int = 30          # a short real training loop (Lightning) for loop overhead
    throughput_p2p64: bool = True           # include pix2pix ngf=64 in the training-step comparison
    trial_steps: int | None = None          # study-trial benchmark budget (None: the preset's adapt.steps)
    help_runs: int = 5
    wrapper_images: int = 4
    wrapper_repeats: int = 5
    distill_concepts: int = 3
    distill_rounds: int = 3                 # interleaved rounds per distill() write mode


SCALES: dict[str, Scale] = {
    "tiny": Scale("tiny"),
    "small": Scale("small", p2p_steps=1500, lora_steps=750, eval_every=25, speed_resolutions=(128, 256),
                   throughput_fit_steps=50),
    "paper": Scale("paper", p2p_steps=6000, lora_steps=3000, eval_every=100, speed_resolutions=(256,),
                   throughput_fit_steps=50),
    # A seconds-long run of every code path, for the harness's own test.
    "micro": Scale(
        "micro",
        config_overrides={
            "data": {"resolution": 32, "crops_per_photo": 2, "base_concepts": ["hue-120", "pixelate"],
                     "new_concepts": ["hue-60"]},
            "model": {"width": 8, "attn_heads": 2, "n_tokens": 2},
            "disc": {"ndf": 8, "n_layers": 2},
            "train": {"steps": 4, "batch_size": 4, "ckpt_every": 2},
            "adapt": {"pix2pix_ngf": 8, "steps": 2},
            "eval": {"batch_size": 16, "n_test": 8, "n_val": 4},  # the preset's 500/250 are not seconds-long
        },
        p2p_steps=6, lora_steps=4, eval_every=2, final_window=2, step_rounds=2, speed_resolutions=(32,),
        paper_width=8, paper_pair=False, latency_seconds=0.2, latency_rounds=(2, 3), throughput_fit_steps=2,
        peak_sizes=(64, 128), peak_litert_sizes=(64,),
        throughput_p2p64=False, trial_steps=2, help_runs=1, wrapper_images=1, wrapper_repeats=1,
        distill_concepts=1, distill_rounds=1),
}


# ----------------------------------------------------------------------------- the run context
@dataclass
class Context:
    preset: str
    scale: Scale
    cfg: Any                                 # e2gan.config.Config of the preset (+ scale overrides)
    runs: Path                               # shared runs folder: data and base model are reused
    work: Path                               # this benchmark run's own scratch folder
    threads: int
    device: str = "cpu"
    progress: bool = False
    shared: dict = field(default_factory=dict)   # results one benchmark leaves for another
    parts: dict = field(default_factory=dict)    # benchmark -> the parts to run (--only NAME.PART); absent: all

    def log(self, msg: str) -> None:
        print(f"  {msg}", file=sys.stderr, flush=True)

    def config(self, **sections: dict):
        """A copy of the run's config with per-section overrides (validated)."""
        from e2gan.config import apply_overrides

        return apply_overrides(copy.deepcopy(self.cfg), sections, "benchmark")


def make_context(preset: str, scale: str | None, runs: str | Path, work: str | Path | None,
                 threads: int, progress: bool = False) -> Context:
    from e2gan.config import apply_overrides
    from e2gan.presets import get_preset
    from e2gan.data.concepts import concept_names

    if (scale or preset) not in SCALES:
        raise ValueError(f"unknown benchmark scale {scale or preset!r}: one of {', '.join(SCALES)}")
    sc = SCALES[scale or preset]
    cfg = apply_overrides(get_preset(preset), copy.deepcopy(sc.config_overrides), f"benchmark scale {sc.name}")
    base, new = concept_names(cfg)
    if sc.concept in base:
        raise ValueError(f"benchmark concept {sc.concept!r} is a base concept of preset {preset}")
    if sc.concept not in new:  # distil it with the rest; the data folder's key ignores concept lists
        cfg = apply_overrides(cfg, {"data": {"new_concepts": [*cfg.data.new_concepts, sc.concept]}}, "benchmark")
    runs = Path(runs)
    work = Path(work) if work else runs / f"bench-{preset}" if sc.name == preset else runs / f"bench-{sc.name}"
    return Context(preset=preset, scale=sc, cfg=cfg, runs=runs, work=work, threads=int(threads),
                   device=pick_device(cfg), progress=progress)


def pick_device(cfg) -> str:
    import torch

    if cfg.train.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return "cuda"
    return "cpu"


# ----------------------------------------------------------------------------- targets
def check(key: str, what: str, measured: float | None, target: float | None, op: str = ">=", *,
          unit: str = "", paper: str | None = None, note: str = "", basis: str = "", cause: str = "") -> dict:
    """One summary row. ``measured`` None means "not reached / not measurable" (a miss).

    ``shortfall`` is the factor by which a missed target is missed: target/measured for ">="
    targets, measured/target for "<=" targets (1.0 or less when met). ``cause``: what the
    measurements say about why (shown with a missed target).
    """
    if op not in OPS:
        raise ValueError(f"op {op!r} not in {OPS}")
    finite = measured is not None and not (isinstance(measured, float) and math.isnan(measured))
    met = None
    shortfall = None
    if target is not None:
        if not finite:
            met = False
        else:
            met = measured >= target if op == ">=" else measured <= target
            if op == ">=":
                shortfall = (target / measured) if measured > 0 else math.inf
            else:
                shortfall = (measured / target) if target > 0 else math.inf
    miss_by = ""
    if met is False:
        if not finite:
            miss_by = "not reached"
        elif op == ">=":
            miss_by = f"{shortfall:.2f}× below target" if math.isfinite(shortfall) else "none measured"
        else:
            miss_by = f"{shortfall:.2f}× above target"
    return {"key": key, "what": what, "measured": measured, "unit": unit, "target": target, "op": op,
            "met": met, "shortfall": shortfall, "miss_by": miss_by, "paper": paper, "note": note,
            "basis": basis, "cause": cause if met is False else ""}


# ----------------------------------------------------------------------------- timing
def interleave(calls: dict[str, Callable[[], Any]], rounds: int, warmup: int = 1,
               sync: Callable[[], None] | None = None) -> dict[str, list[float]]:
    """Per-call wall times (s) of each named call, interleaved ABBA: round r runs the calls in
    order, round r+1 in reverse, so a drift in machine load hits every side alike."""
    names = list(calls)
    for name in names:
        for _ in range(warmup):
            calls[name]()
    if sync:
        sync()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            calls[name]()
            if sync:
                sync()
            times[name].append(time.perf_counter() - t0)
    return times


def adaptive_rounds(calls: dict[str, Callable[[], Any]], budget_s: float, lo: int, hi: int,
                    sync: Callable[[], None] | None = None) -> int:
    """Rounds that fit ``budget_s`` after one timed warm-up call of each side (which is also the warm-up)."""
    t0 = time.perf_counter()
    for fn in calls.values():
        fn()
    if sync:
        sync()
    per_round = max(time.perf_counter() - t0, 1e-6)
    return int(max(lo, min(hi, budget_s // per_round)))


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def ratio_of_medians(a: list[float], b: list[float]) -> float:
    return median(a) / median(b)


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median of the per-round ratios a_i / b_i (robust to load changing between rounds)."""
    return median([x / y for x, y in zip(a, b)])


def timing_summary(seconds: list[float]) -> dict:
    from e2gan.deploy.latency import summarise_times

    return {**summarise_times(seconds), "n": len(seconds)}


def gemm_call(size: int = 1536, device: str = "cpu") -> tuple[Callable[[], Any], float]:
    """A fp32 square matmul and its FLOPs: the machine's practical peak, interleaved with the models."""
    import torch

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device)
    b = torch.randn(size, size, generator=gen).to(device)
    out = torch.empty(size, size, device=device)
    return (lambda: torch.mm(a, b, out=out)), 2.0 * size ** 3


def cuda_sync(device: str) -> Callable[[], None] | None:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return None


# ----------------------------------------------------------------------------- a GAN training step
def make_gan_step(generator, discriminator, batch: dict, *, lr_g: float, lr_d: float,
                  betas: tuple[float, float] = (0.5, 0.999), lambda_l1: float = 100.0,
                  gan_mode: str = "vanilla", device: str = "cpu", channels_last: bool = True,
                  d_weight_grads: bool = False) -> Callable[[], None]:
    """One batch of PairedGANModule's objective (``gan_batch_step``: D update, then G with L1 +
    adversarial), outside Lightning, on the given modules: a training step without the loop around it.

    ``channels_last=False, d_weight_grads=True``: the step as it ran before 2026-12-06 (NCHW batches,
    D's weight gradients computed in G's term and discarded), the other side of ``throughput``'s
    step-speed-up row.
    """
    import torch

    from lightning_modules.gan_module import gan_batch_step, nhwc

    g, d = generator.to(device).train(), discriminator.to(device).train()
    opt_g = torch.optim.Adam([p for p in g.parameters() if p.requires_grad], lr=lr_g, betas=betas)
    d_params = [p for p in d.parameters() if p.requires_grad]
    opt_d = torch.optim.Adam(d_params, lr=lr_d, betas=betas) if d_params else None
    src, tgt = batch["source"].to(device), batch["target"].to(device)
    if channels_last:
        src, tgt = nhwc(src), nhwc(tgt)
    cid = batch["concept_id"].to(device)

    def step() -> None:
        gan_batch_step(g, d, src, tgt, cid, opt_g, opt_d, lambda_l1=lambda_l1, gan_mode=gan_mode,
                       d_weight_grads=d_weight_grads)

    return step


def train_batch(data_root: Path, concepts: list[str], concept_index: dict[str, int], batch_size: int,
                seed: int = 0) -> dict:
    """A real training batch (first ``batch_size`` pairs of a seeded permutation of the train split)."""
    import torch

    from e2gan.data.dataset import PairedDataset

    ds = PairedDataset(data_root, concepts, "train", concept_index, check_hashes=False)
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed)).tolist()
    idx = [order[i % len(order)] for i in range(batch_size)]
    items = [ds[i] for i in idx]
    return {"source": torch.stack([it["source"] for it in items]),
            "target": torch.stack([it["target"] for it in items]),
            "concept_id": torch.stack([torch.as_tensor(it["concept_id"]) for it in items]).long()}


# ----------------------------------------------------------------------------- shared prerequisites
def wait_for_base(ctx: Context, cfg, poll_s: float = 15.0, stale_s: float = 300.0, timeout_s: float = 3600.0):
    """The base model of ``cfg``: reuse it when complete; when another process is training it right
    now (a checkpoint written within ``stale_s``), wait for it instead of training a second copy."""
    from e2gan.pipeline.base import base_dir, base_is_complete, ensure_base
    from e2gan.pipeline.data import ensure_data

    data, _ = ensure_data(cfg, ctx.runs, progress=False)
    run_dir = base_dir(cfg, ctx.runs)
    t0 = time.perf_counter()
    while not base_is_complete(run_dir, cfg):
        ckpts = list((run_dir / "checkpoints").glob("*.ckpt")) if (run_dir / "checkpoints").exists() else []
        fresh = [p for p in ckpts if time.time() - p.stat().st_mtime < stale_s]
        if not fresh or time.perf_counter() - t0 > timeout_s:
            break
        ctx.log(f"base model {run_dir.name} is being trained by another process; waiting")
        time.sleep(poll_s)
    base_run, summary = ensure_base(cfg, data, ctx.runs, progress=ctx.progress)
    return data, base_run, summary


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def jsonable(obj: Any) -> Any:
    """Floats that JSON can hold (inf/nan -> None), tuples -> lists, dataclasses -> dicts."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, Path):
        return str(obj)
    try:
        return float(obj)
    except (TypeError, ValueError):
        return str(obj)
