"""The `e2gan` command line: the top floor that wires the library, Lightning modules and studies.

Heavy libraries are imported inside the commands so `e2gan --help` stays instant. Bad input exits
with status 2 and one line `error: <what> (<where>): <expected>`; `--debug` shows the traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=None, help="tiny | small | paper (default: the config's, else tiny)")
    p.add_argument("--config", default=None, help="TOML file overriding the preset")
    p.add_argument("--sources", default=None, help="folder of source images (default: built-in photos)")
    p.add_argument("--teacher", default=None,
                   help="procedural | diffusers:<hub id or folder>[?steps=20&guidance_scale=7.5&...] | module:callable")
    p.add_argument("--concepts-file", default=None, help="procedural | ffhq | scenery | a concepts TOML file")
    p.add_argument("--resolution", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="training steps (one G+D update each)")
    p.add_argument("--max-time", type=float, default=None, help="training wall-time budget in seconds")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--accelerator", default=None, help="cpu | gpu | auto")
    p.add_argument("--devices", type=int, default=None, help="number of devices (processes under DDP)")
    p.add_argument("--strategy", default=None, help="auto | ddp")
    p.add_argument("--precision", default=None, help="32-true | 16-mixed | bf16-mixed (GPU)")
    p.add_argument("--runs", default="runs", help="folder for runs, data and caches (default: runs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _config(args, budget_section: str = "train"):
    """Preset, then --config, then flags. ``budget_section``: where --steps/--max-time go."""
    from e2gan.config import apply_overrides
    from e2gan.presets import load_config

    cfg = load_config(args.config, args.preset)
    over: dict[str, dict] = {"data": {}, "train": {}, "adapt": {}}
    for attr, section, key in [("sources", "data", "sources"), ("teacher", "data", "teacher"),
                               ("concepts_file", "data", "concepts_file"),
                               ("resolution", "data", "resolution"), ("steps", budget_section, "steps"),
                               ("max_time", budget_section, "max_time_s"), ("batch_size", "train", "batch_size"),
                               ("seed", "train", "seed"), ("accelerator", "train", "accelerator"),
                               ("devices", "train", "devices"), ("strategy", "train", "strategy"),
                               ("precision", "train", "precision"), ("method", "adapt", "method"),
                               ("rank", "adapt", "rank"), ("alpha_ratio", "adapt", "alpha_ratio"),
                               ("lr", "adapt", "lr"), ("disc", "adapt", "disc"),
                               ("embedding_init", "adapt", "embedding_init"), ("train_pairs", "adapt", "train_pairs"),
                               ("selection", "adapt", "selection"), ("selection_features", "adapt", "selection_features"),
                               ("adapt_seed", "adapt", "seed")]:
        value = getattr(args, attr, None)
        if value is not None:
            over[section][key] = value
    if getattr(args, "max_time", None) is not None and getattr(args, "steps", None) is None:
        over[budget_section]["steps"] = 10 ** 9  # --max-time alone: the time budget, not the preset's steps, stops it
    if getattr(args, "groups", None):
        over["adapt"]["groups"] = [g.strip() for g in args.groups.split(",") if g.strip()]
    if getattr(args, "ranks", None):
        from e2gan.nets.lora import parse_ranks
        from e2gan.config import layer_group_names

        groups = over["adapt"].get("groups", cfg.adapt.groups)
        over["adapt"]["ranks"] = parse_ranks(groups, args.ranks, layer_group_names(cfg.model))
        over["adapt"]["groups"] = list(over["adapt"]["ranks"])
    return apply_overrides(cfg, over, "command line")


def _is_worker_rank() -> bool:
    """True in the extra processes that DDP's launcher starts by re-running this command."""
    return int(os.environ.get("LOCAL_RANK", "0")) > 0 or int(os.environ.get("NODE_RANK", "0")) > 0


def cmd_distill(args) -> str:
    from e2gan.pipeline.data import ensure_data
    from e2gan.teachers.data_key import data_dir

    cfg = _config(args)
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

    cfg = _config(args)
    data, _ = ensure_data(cfg, args.runs, progress=not args.no_progress and not _is_worker_rank())
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
    cfg = _config(args, budget_section="adapt")
    _check_new_concepts(cfg, [args.concept])  # before anything is distilled or trained
    progress = not args.no_progress
    data, _ = ensure_data(cfg, args.runs, progress=progress and not _is_worker_rank())
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


def _check_new_concepts(cfg, concepts: list[str]) -> None:
    """Every name must be a new concept of the configuration's concepts file (nothing runs before)."""
    from e2gan.errors import InputError
    from e2gan.data.concepts import concept_names

    new = concept_names(cfg)[1]
    unknown = [c for c in concepts if c not in new]
    if unknown:
        raise InputError(f"concept(s) {unknown}", "--concept", f"new concepts of this configuration: {new}")


def cmd_merge(args) -> str:
    """Base run + saved LoRA adapter -> a plain generator (generator.safetensors + model.json)."""
    from e2gan.nets.lora import merge_adapter

    r = merge_adapter(args.base, args.adapter, args.out)
    return (f"merged adapter '{r['concept']}' ({r['adapter_params']:,} params, ranks {r['ranks']}) into the base: "
            f"{r['params']:,} params, max |merged - unmerged| {r['merge_max_abs_diff']:.1e} -> {r['weights']}")


def _data_and_base(args, cfg):
    """The distilled data and the base run a per-concept study adapts from (trained if missing).

    Checks the concepts and seeds first, so bad input fails before anything is trained.
    """
    from studies.layer_analysis import parse_seeds
    from e2gan.pipeline.base import ensure_base
    from e2gan.pipeline.data import ensure_data

    parse_seeds(args.seeds, cfg.adapt.seed)
    _check_new_concepts(cfg, args.concept)
    progress = not args.no_progress
    data, _ = ensure_data(cfg, args.runs, progress=progress)
    base = Path(args.base) if args.base else ensure_base(cfg, data, args.runs, progress=progress)[0]
    return data, base


def _param_count(text: str) -> int:
    """'120000', '120k' or '0.12M' -> a parameter count."""
    from e2gan.errors import InputError

    t = str(text).strip().lower()
    scale = {"k": 1e3, "m": 1e6}.get(t[-1:], 1)
    try:
        value = float(t[:-1] if scale != 1 else t) * scale
    except ValueError:
        raise InputError(f"budget {text!r}", "--budget", "a parameter count such as 90000, 90k or 0.09M") from None
    if value <= 0:
        raise InputError(f"budget {text!r}", "--budget", "a positive parameter count")
    return int(round(value))


def cmd_analyze_layers(args) -> str:
    from studies.layer_analysis import analyze_layers

    cfg = _config(args, budget_section="adapt")
    data, base = _data_and_base(args, cfg)
    groups = [g.strip() for g in args.groups.split(",") if g.strip()] if args.groups else None
    res = analyze_layers(cfg, args.concept, data, base, args.runs, rank=cfg.adapt.rank, metric=args.metric,
                         seeds=args.seeds, groups=groups, weight_change=not args.no_weight_change,
                         out_dir=args.out, progress=not args.no_progress)
    print(res.files["markdown"].read_text())
    return res.summary()


def cmd_rank_search(args) -> str:
    from studies.rank_search import rank_search_study

    cfg = _config(args, budget_section="adapt")
    budget = _param_count(args.budget) if args.budget is not None else None
    data, base = _data_and_base(args, cfg)
    res = rank_search_study(cfg, args.concept, data, base, args.runs, groups=cfg.adapt.groups,
                            metric=args.metric, seeds=args.seeds, delta=args.delta, budget=budget,
                            start_rank=args.start_rank, max_rank=args.max_rank, max_rounds=args.max_rounds,
                            uniform_rank=args.uniform_rank, out_dir=args.out, progress=not args.no_progress)
    print(res.files["markdown"].read_text())
    return res.summary()


def _study_context(args, create: bool):
    from studies import runner
    from studies.spec import load_spec

    spec = load_spec(args.spec).with_user_config(args.config)
    preset = args.preset or spec.preset
    url = args.storage or runner.default_storage(spec, args.runs, preset)
    study = runner.load_study(spec, url, preset, create=create, patience=args.storage_patience)
    return runner, spec, preset, url, study


def cmd_study(args) -> str:
    from e2gan.errors import InputError

    if args.max_retries is not None and args.max_retries < 1:
        raise InputError(f"--max-retries {args.max_retries}", "command line", "an integer >= 1")
    if not args.storage_patience >= 0:
        raise InputError(f"--storage-patience {args.storage_patience}", "command line", "seconds >= 0")
    runner, spec, preset, url, study = _study_context(args, create=args.action in ("run", "resume"))
    progress = not args.no_progress
    if args.action == "status":
        from studies.cluster_status import cluster, cluster_lines

        for line in cluster_lines(cluster(study)):
            print(line)
        return runner.status_line(runner.status(study, spec, preset))
    if args.action == "export":
        out = Path(args.out or Path(args.runs) / "studies" / f"{spec.name}-{preset}.csv")
        runner.export_trials(study, out)
        return f"{len(study.trials)} trials -> {out}"
    max_retries = args.max_retries if args.max_retries is not None else spec.max_retries
    keep = {"max_retries": max_retries, "patience": args.storage_patience}
    # The work loop and the workers' monitor reuse this command's storage: two connections, not four.
    if args.action == "worker":
        counts = runner.work(spec, url, preset, args.runs, progress=progress, study=study, **keep)
        lost = f", {counts['lost']} taken over by others" if counts.get("lost") else ""
        return f"worker: {counts['complete']} complete, {counts['pruned']} pruned, {counts['failed']} failed{lost}"
    # run / resume: fail stale trials, enqueue missing cells, build prerequisites, then work.
    added = runner.reconcile(study, spec, preset, max_retries=max_retries)
    print(f"study {study.study_name} on {runner.redact(url)}: {added} cells queued", file=sys.stderr)
    runner.prepare(spec, preset, args.runs, progress=progress)
    if args.workers > 1:
        codes = runner.spawn_workers(spec, url, preset, args.runs, args.workers, progress=progress, study=study,
                                     **keep)
        if any(codes):
            print(f"warning: worker exit codes {codes}", file=sys.stderr)
    else:
        while True:
            counts = runner.work(spec, url, preset, args.runs, progress=progress, max_trials=1, study=study, **keep)
            if progress:
                print(runner.status_line(runner.status(study, spec, preset)), file=sys.stderr, flush=True)
            if not any(counts.values()):
                break
    _after_grid(spec, study, preset, args.runs, progress)
    from studies.summary import summary_table

    table = summary_table(study, spec)
    if table is not None:
        print(table)
    return runner.status_line(runner.status(study, spec, preset))


def cmd_export(args) -> str:
    from e2gan.deploy.run_export import export_run

    rec = export_run(args.run, out=args.out, concept=args.concept, nhwc=args.nhwc, quantize=args.quantize,
                     resolution=args.resolution, parity_tol=args.parity_tol, progress=not args.no_progress)
    int8 = f", int8 diff {rec['int8_max_abs_diff']:.3g}" if rec.get("int8_max_abs_diff") is not None else ""
    return (f"exported {rec['bytes']:,} bytes, parity max |diff| {rec['parity_max_abs_diff']:.2e}{int8} "
            f"-> {rec['path']}")


def cmd_latency(args) -> str:
    from e2gan.deploy.run_latency import latency_run

    row = latency_run(args.target, args.backend, serial=args.serial, binary=args.binary, threads=args.threads,
                      use_gpu=args.gpu, warmup=args.warmup, runs=args.runs_count, core_mask=args.core_mask,
                      adb_key=args.adb_key, concept=args.concept, resolution=args.resolution, model=args.model,
                      timeout_s=args.timeout, gemm_peak=not args.no_peak)
    median = row.get("median_ms") or row.get("latency_ms") or row.get("inference_avg_ms")
    extra = f", {row['peak_fraction']:.0%} of the CPU's fp32 peak" if row.get("peak_fraction") else ""
    return f"{args.backend} latency {median:.2f} ms ({row.get('threads')} threads){extra}"


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


def _specs(args):
    from studies.spec import builtin_specs, load_spec

    every = [p.stem for p in builtin_specs()]
    if args.specs in (None, "", "all"):
        names = every
    elif args.specs == "none":  # the base model and its report only
        names = []
    else:
        names = [n.strip() for n in args.specs.split(",") if n.strip()]
    return [load_spec(name).with_user_config(args.config) for name in names]


def _write_reports(specs, preset: str, runs: str, reports_root, base_result: dict | None, base_run: Path | None) -> Path:
    from studies.reproduce import write_reports

    return write_reports(specs, preset, runs, reports_root, base_result, base_run)


def _reports_root(args) -> Path:
    """Where this run's reports go: under the runs folder unless --reports says otherwise, so the
    committed reference report (reports/<preset>/) is never written over by default."""
    return Path(args.reports) if args.reports else Path(args.runs) / "reports"


def _reference_root(args) -> Path | None:
    """The committed reference reports: --reference, else the checkout's own reports/ folder."""
    if args.reference:
        return Path(args.reference)
    found = Path(__file__).resolve().parents[1] / "reports"
    return found if found.is_dir() else None


def cmd_report(args) -> str:
    from e2gan.pipeline.base import base_dir

    cfg = _config(args)
    run = base_dir(cfg, args.runs)
    base = _read_result(run) if (run / "result.json").exists() else None
    specs = _specs(args)
    index = _write_reports(specs, cfg.preset, args.runs, _reports_root(args), base, run)
    return f"report {cfg.preset}: {len(specs)} studies (what is in storage now, nothing run) -> {index}"


def cmd_reproduce(args) -> str:
    from e2gan.progress import RunDisplay
    from studies.reproduce import closing_lines, reproduce

    t0 = time.perf_counter()
    cfg = _config(args)
    specs = _specs(args)
    reports = _reports_root(args)
    with RunDisplay(3 + len(specs), enabled=not args.no_progress and not _is_worker_rank()) as display:
        done = reproduce(cfg, specs, args.runs, reports, display)
    if done is None:  # a DDP worker process: rank 0 reports
        return ""
    index, result = done
    for line in closing_lines(reports / cfg.preset, specs, _reference_root(args), cfg.preset):
        print(line)
    m = result["metrics"]["mean_over_concepts"]
    return (f"reproduce {cfg.preset}: base PSNR {m['psnr']:.2f} dB vs identity {m['identity_psnr']:.2f} dB, "
            f"{len(specs)} studies, {time.perf_counter() - t0:.0f} s -> {index}")


def _after_grid(spec, study, preset: str, runs: str, progress: bool) -> None:
    from studies.reproduce import after_grid

    after_grid(spec, study, preset, runs, progress)


def _read_result(run_dir: Path) -> dict:
    from e2gan.results import read_result

    return read_result(run_dir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="e2gan", description="Efficient training of efficient GANs: "
                                     "distil, train, adapt, evaluate, export, study, report.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("distill", help="sources x concepts -> paired data + manifest (resumable)")
    _add_config_args(p)
    p.add_argument("--shard", default=None, help="i/n: this machine's disjoint share of the work")
    p.add_argument("--merge-shards", action="store_true", help="fold finished shards into manifest.jsonl")
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser("train-base", help="train the base GAN on the base concepts (resumes from last)")
    _add_config_args(p)
    p.add_argument("--run-dir", default=None, help="run directory (default: keyed by the configuration)")
    p.set_defaults(func=cmd_train_base)

    p = sub.add_parser("adapt", help="learn a new concept: lora | full | scratch | pix2pix")
    _add_config_args(p)
    p.add_argument("--concept", required=True, help="the new concept (a name from the concepts file)")
    p.add_argument("--base", default=None, help="base run directory (default: the preset's base, trained if missing)")
    p.add_argument("--method", default=None, choices=["lora", "full", "scratch", "pix2pix"])
    p.add_argument("--groups", default=None, help="LoRA layer groups, comma-separated (default: down,ds,tb,us,up)")
    p.add_argument("--ranks", default=None, help="LoRA ranks: one for all, one per group, or group=rank,...")
    p.add_argument("--rank", type=int, default=None, help="uniform LoRA rank (default 4)")
    p.add_argument("--alpha-ratio", type=float, default=None, help="LoRA alpha / rank (default 2)")
    p.add_argument("--lr", type=float, default=None, help="LoRA learning rate (default 2e-3)")
    p.add_argument("--disc", default=None, choices=["fresh", "base", "frozen"], help="discriminator treatment")
    p.add_argument("--embedding-init", default=None, choices=["random", "mean", "nearest"])
    p.add_argument("--train-pairs", type=int, default=None, help="train on a subset of this many pairs")
    p.add_argument("--selection", default=None, choices=["random", "kmeans"], help="how the subset is chosen")
    p.add_argument("--selection-features", default=None, choices=["encoder", "effnet-lite0", "clip"],
                   help="what k-means clusters: the base's encoder features (pixels with no base), EfficientNet-Lite0 or CLIP")
    p.add_argument("--adapt-seed", type=int, default=None)
    p.add_argument("--run-dir", default=None)
    p.set_defaults(func=cmd_adapt)

    p = sub.add_parser("merge", help="fold a saved LoRA adapter into its base -> a plain generator for export")
    p.add_argument("--base", required=True, help="the base run the adapter was trained on (its checksum is checked)")
    p.add_argument("--adapter", required=True,
                   help="a LoRA adapt run, or a folder with adapter.json + adapter.safetensors")
    p.add_argument("--out", default=None, help="output folder for generator.safetensors + model.json "
                   "(default: <adapter>/merged)")
    p.set_defaults(func=cmd_merge)

    metrics = ["psnr", "ssim", "fid", "kid", "perceptual"]
    p = sub.add_parser("analyze-layers", help="crucial layers: LoRA on one group at a time + weight change of a full fine-tune")
    _add_config_args(p)
    p.add_argument("--concept", action="append", required=True, help="new concept (repeatable; averaged)")
    p.add_argument("--base", default=None, help="base run directory (default: the preset's base, trained if missing)")
    p.add_argument("--rank", type=int, default=None, help="LoRA rank of every group (default: adapt.rank, 4)")
    p.add_argument("--groups", default=None, help="groups to analyse, comma-separated (default: all, ResNet blocks included)")
    p.add_argument("--metric", default="psnr", choices=metrics, help="quality metric (default psnr)")
    p.add_argument("--seeds", default=None, help="adaptation seeds, e.g. 0,1,2 (default: adapt.seed)")
    p.add_argument("--no-weight-change", action="store_true", help="skip the full fine-tune weight-change analysis")
    p.add_argument("--alpha-ratio", type=float, default=None, help="LoRA alpha / rank (default 2)")
    p.add_argument("--lr", type=float, default=None, help="LoRA learning rate (default 2e-3)")
    p.add_argument("--disc", default=None, choices=["fresh", "base", "frozen"], help="discriminator treatment")
    p.add_argument("--embedding-init", default=None, choices=["random", "mean", "nearest"])
    p.add_argument("--out", default=None, help="output folder (default: runs/analysis-<preset>-<concepts>-<key>)")
    p.set_defaults(func=cmd_analyze_layers)

    p = sub.add_parser("rank-search", help="greedy per-group LoRA rank search + uniform 1x/4x and random references")
    _add_config_args(p)
    p.add_argument("--concept", action="append", required=True, help="new concept (repeatable; averaged)")
    p.add_argument("--base", default=None, help="base run directory (default: the preset's base, trained if missing)")
    p.add_argument("--groups", default=None, help="groups to search, comma-separated (default: adapt.groups, down,ds,tb,us,up)")
    p.add_argument("--metric", default="psnr", choices=metrics, help="quality metric (default psnr)")
    p.add_argument("--seeds", default=None, help="adaptation seeds, e.g. 0,1,2 (default: adapt.seed)")
    p.add_argument("--delta", type=float, default=None,
                   help="stop when no doubling gains this much (default: 0.1 for psnr, 1.0 for fid)")
    p.add_argument("--budget", default=None, help="LoRA parameter budget, e.g. 90000, 90k, 0.09M (default: none)")
    p.add_argument("--start-rank", type=int, default=1, help="every group's starting rank (default 1)")
    p.add_argument("--max-rank", type=int, default=64, help="largest rank a group may reach (default 64)")
    p.add_argument("--max-rounds", type=int, default=None, help="at most this many doubling rounds")
    p.add_argument("--uniform-rank", type=int, default=None, help="rank of the uniform 1x scheme (default: the start rank)")
    p.add_argument("--alpha-ratio", type=float, default=None, help="LoRA alpha / rank (default 2)")
    p.add_argument("--lr", type=float, default=None, help="LoRA learning rate (default 2e-3)")
    p.add_argument("--disc", default=None, choices=["fresh", "base", "frozen"], help="discriminator treatment")
    p.add_argument("--embedding-init", default=None, choices=["random", "mean", "nearest"])
    p.add_argument("--out", default=None, help="output folder (default: runs/rank-search-<preset>-<concepts>-<key>)")
    p.set_defaults(func=cmd_rank_search)

    p = sub.add_parser("study", help="Optuna studies from specs: run | resume | worker | status | export")
    p.add_argument("action", choices=["run", "resume", "worker", "status", "export"])
    p.add_argument("spec", help="a spec file or the name of a built-in spec (studies/specs/)")
    p.add_argument("--preset", default=None, help="override the spec's preset")
    p.add_argument("--storage", default=None, help="SQLAlchemy URL (default: SQLite under runs/studies/)")
    p.add_argument("--config", default=None, help="TOML layered between the preset and the spec")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine")
    p.add_argument("--max-retries", type=int, default=None,
                   help="a cell that has failed this many times is given up (default: the spec's max_retries, 3); "
                        "each attempt's reason is kept")
    p.add_argument("--storage-patience", type=float, default=600.0,
                   help="seconds to keep retrying a storage that stopped answering before exiting (default 600)")
    p.add_argument("--runs", default="runs")
    p.add_argument("--out", default=None, help="export: CSV path")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("export", help="export a run's generator to .tflite (litert-torch) with a parity check")
    p.add_argument("run")
    p.add_argument("--out", default=None)
    p.add_argument("--concept", default=None, help="concept to bake in (default: the new one, else the first)")
    p.add_argument("--nhwc", action="store_true", help="NHWC input and output")
    p.add_argument("--quantize", default=None, choices=["dynamic-int8"])
    p.add_argument("--resolution", type=int, default=None)
    p.add_argument("--parity-tol", type=float, default=1e-4)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("latency", help="latency on the host (torch | litert) or a phone over adb")
    p.add_argument("target", help="run directory or .tflite file")
    p.add_argument("--backend", required=True, choices=["torch", "litert", "adb"])
    p.add_argument("--model", default=None, help="export file inside RUN/export (default model.tflite)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--runs", dest="runs_count", type=int, default=None, help="timed runs")
    p.add_argument("--concept", default=None)
    p.add_argument("--resolution", type=int, default=None)
    p.add_argument("--serial", default=None, help="phone: HOST:PORT or usb[:SERIAL]")
    p.add_argument("--binary", default=None, help="phone: your benchmark_model binary")
    p.add_argument("--gpu", action="store_true", help="phone: GPU delegate")
    p.add_argument("--core-mask", default=None, help="phone: taskset mask, e.g. f0")
    p.add_argument("--adb-key", default=None, help="phone: adb private key (default ~/.android/adbkey)")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--no-peak", action="store_true", help="skip measuring the CPU's fp32 peak")
    p.set_defaults(func=cmd_latency)

    p = sub.add_parser("evaluate", help="test-split metrics of a run (-> result.json) or a checkpoint (-> result-step-N.json)")
    p.add_argument("run", help="run directory, or a checkpoint (runs/<run>/checkpoints/step-000200.ckpt)")
    p.add_argument("--concept", action="append", help="concept to evaluate (repeatable; default: all)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("describe", help="parameters and MACs per layer group")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--arch", default=None, choices=["e2gan", "pix2pix", "pix2pix-resize"])
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--resolution", type=int, default=None)
    p.add_argument("--n-concepts", type=int, default=8)
    p.add_argument("--discriminator", action="store_true", help="also describe the discriminator")
    p.set_defaults(func=cmd_describe)

    reports_help = "folder for this run's reports (default: <runs>/reports; the committed reference is reports/)"
    p = sub.add_parser("reproduce", help="distil, train the base, run the studies, write <runs>/reports/<preset>/ "
                       "and compare it with the committed reference")
    _add_config_args(p)
    p.add_argument("--reports", default=None, help=reports_help)
    p.add_argument("--reference", default=None,
                   help="reference reports to compare with (default: the checkout's reports/, when present)")
    p.add_argument("--specs", default=None, help="comma-separated study specs or files, 'all' (the default: every built-in spec) or 'none' (the base model only)")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("report", help="rebuild <runs>/reports/<preset>/ from the studies' storage and result.json files")
    _add_config_args(p)
    p.add_argument("--reports", default=None, help=reports_help)
    p.add_argument("--specs", default=None, help="comma-separated study specs or files, 'all' (the default: every built-in spec) or 'none' (the base model only)")
    p.set_defaults(func=cmd_report)
    return parser


def _os_error_line(exc: OSError) -> str:
    """``<what> (<where>): <expected>`` for a failed file operation."""
    import errno

    what = exc.strerror or type(exc).__name__
    where = exc.filename if exc.filename is not None else "file system"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        expected = "free space on the output disk (earlier results are kept; free some and run again to resume)"
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        expected = "a folder path whose parents are folders, not files"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        expected = "a writable output folder (--runs / --out)"
    else:
        expected = "a readable input and a writable output folder"
    return f"{what} ({where}): {expected}"


# Commands that train or load Lightning/Optuna: their third-party banners are silenced (e2gan.quiet).
# The rest (describe, export, latency, study status/export, ...) never import them, so stay quick.
QUIET_COMMANDS = {"train-base", "adapt", "evaluate", "analyze-layers", "rank-search", "study", "reproduce", "report"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from e2gan.errors import InputError

    try:
        if args.command in QUIET_COMMANDS and getattr(args, "action", None) not in ("status", "export"):
            from e2gan.quiet import silence_third_party

            silence_third_party()
        line = args.func(args)
    except InputError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the disk is full, the output folder is not writable or not a folder, ...
        if args.debug:
            raise
        print(f"error: {_os_error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: work done so far is kept; run the same command again to resume", file=sys.stderr)
        return 130
    if line and not _is_worker_rank():
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
