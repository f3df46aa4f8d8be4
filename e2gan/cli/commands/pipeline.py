"""The commands of one pipeline stage each: distil, train the base, evaluate, adapt, merge, describe."""
from __future__ import annotations

from pathlib import Path

from e2gan.cli.options import check_new_concepts, config_from_args, is_worker_rank


def cmd_distill(args) -> str:
    from e2gan.pipeline.data import ensure_data
    from e2gan.teachers.data_key import data_dir

    cfg = config_from_args(args)
    if args.merge_shards:
        from e2gan.data.shards import merge_shards

        merged = merge_shards(data_dir(cfg, args.runs))
        return f"merged shards into {data_dir(cfg, args.runs) / 'manifest.jsonl'}: {merged}"
    out, s = ensure_data(cfg, args.runs, progress=not args.no_progress, shard=args.shard)
    return (f"distilled {s['written']} new pairs ({s['skipped_existing']} already done, "
            f"{s['skipped_greyscale']} greyscale skipped) in {s['seconds']:.1f} s -> {out}")


def cmd_train_base(args) -> str:
    from e2gan.pipeline.base import ensure_base
    from e2gan.pipeline.data import ensure_data

    cfg = config_from_args(args)
    data, _ = ensure_data(cfg, args.runs, progress=not args.no_progress and not is_worker_rank())
    run_dir, summary = ensure_base(cfg, data, args.runs, progress=not args.no_progress,
                                   run_dir=Path(args.run_dir) if args.run_dir else None)
    if summary is None:
        return ""
    return (f"base model: {summary['gan_step']} steps in {summary['train_seconds']:.1f} s of training "
            f"({summary['stopped_by']}), last val PSNR {summary['val_psnr_last']:.2f} dB -> {run_dir}")


def cmd_evaluate(args) -> str:
    from e2gan.metrics.evaluation import evaluate_run, result_path

    result = evaluate_run(args.run, concepts=args.concept or None, split=args.split, device=args.device)
    m = result["metrics"]["mean_over_concepts"]
    return (f"{result['run']}: PSNR {m['psnr']:.2f} dB (identity {m['identity_psnr']:.2f}), "
            f"FID {m.get('fid', float('nan')):.2f} [{result['protocol']['backbone']['name']}, "
            f"N={result['protocol']['n']}] -> {result_path(args.run, result)}")


def cmd_adapt(args) -> str:
    from e2gan.pipeline.adapt import ensure_adapt
    from e2gan.pipeline.base import ensure_base
    from e2gan.pipeline.data import ensure_data

    from e2gan.data.concepts import check_concept_name

    check_concept_name(args.concept, "--concept")  # before anything is distilled; it becomes a folder name
    cfg = config_from_args(args, budget_section="adapt")
    check_new_concepts(cfg, [args.concept])  # before anything is distilled or trained
    progress = not args.no_progress
    data, _ = ensure_data(cfg, args.runs, progress=progress and not is_worker_rank())
    base = None
    if cfg.adapt.method in ("lora", "full"):
        base = Path(args.base) if args.base else ensure_base(cfg, data, args.runs, progress=progress)[0]
    run_dir, result = ensure_adapt(cfg, args.concept, data, base, args.runs, progress=progress,
                                   run_dir=Path(args.run_dir) if args.run_dir else None)
    if result is None:
        return ""
    m, c = result["metrics"]["mean_over_concepts"], result["cost"]
    return (f"{args.concept} by {cfg.adapt.method}: PSNR {m['psnr']:.2f} dB (identity {m['identity_psnr']:.2f}), "
            f"FID {m.get('fid', float('nan')):.1f}; {c['steps']} steps, {c['train_seconds']:.1f} s, "
            f"{c['params_trainable']:,} trainable params, {c['bytes_stored']:,} bytes stored -> {run_dir}")


def cmd_merge(args) -> str:
    """Base run + saved LoRA adapter -> a plain generator (generator.safetensors + model.json)."""
    from e2gan.nets.lora import merge_adapter

    r = merge_adapter(args.base, args.adapter, args.out)
    return (f"merged adapter '{r['concept']}' ({r['adapter_params']:,} params, ranks {r['ranks']}) into the base: "
            f"{r['params']:,} params, max |merged - unmerged| {r['merge_max_abs_diff']:.1e} -> {r['weights']}")


def cmd_describe(args) -> str:
    import torch

    from e2gan.config import ModelConfig
    from e2gan.metrics.cost import describe_model
    from e2gan.nets.registry import make_discriminator, make_generator
    from e2gan.presets import get_preset

    cfg = get_preset(args.preset)
    model_cfg = ModelConfig(**{**cfg.model.__dict__, **({"arch": args.arch} if args.arch else {}),
                               **({"width": args.width} if args.width else {})})
    res = args.resolution if args.resolution is not None else cfg.data.resolution
    if res <= 0 or res % 8:
        from e2gan.errors import InputError

        raise InputError(f"resolution {res}", "--resolution", "a positive multiple of 8, e.g. 64")
    nets = [("generator", make_generator(model_cfg, n_concepts=args.n_concepts))]
    if args.discriminator:
        nets.append(("discriminator", make_discriminator(cfg.disc)))
    lines = []
    for label, net in nets:
        lines.append(f"{label}: {type(net).__name__} ({model_cfg.arch if label == 'generator' else 'PatchGAN'}) at {res}x{res}")
        lines.append(f"  {'group':<14}{'params':>12}{'MMACs':>12}")
        with torch.no_grad():  # scoped: main() also runs in-process (tests, notebooks)
            rows = describe_model(net, res)
        for row in rows:
            lines.append(f"  {row['group']:<14}{row['params']:>12,}{row['macs'] / 1e6:>12.1f}")
    print("\n".join(lines))
    return "MACs counted with torch.utils.flop_counter (transposed convs at input resolution)"
