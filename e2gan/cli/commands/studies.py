"""The commands over many runs: layer analysis, rank search, Optuna studies, reports, reproduce."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from e2gan.cli.options import (config_from_args, data_and_base, is_worker_rank, param_count, reference_root,
                               refuse_config_flags, reports_root, specs_from_args)


def cmd_analyze_layers(args) -> str:
    from studies.layer_analysis import analyze_layers

    cfg = config_from_args(args, budget_section="adapt")
    data, base = data_and_base(args, cfg)
    groups = [g.strip() for g in args.groups.split(",") if g.strip()] if args.groups else None
    res = analyze_layers(cfg, args.concept, data, base, args.runs, rank=cfg.adapt.rank, metric=args.metric,
                         seeds=args.seeds, groups=groups, weight_change=not args.no_weight_change,
                         out_dir=args.out, progress=not args.no_progress)
    print(res.files["markdown"].read_text())
    return res.summary()


def cmd_rank_search(args) -> str:
    from studies.rank_search import rank_search_study

    cfg = config_from_args(args, budget_section="adapt")
    budget = param_count(args.budget) if args.budget is not None else None
    data, base = data_and_base(args, cfg)
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
    from e2gan.cli.reproduce import after_grid

    after_grid(spec, study, preset, args.runs, progress)
    from studies.summary import summary_table

    table = summary_table(study, spec, preset)
    if table is not None:
        print(table)
    return runner.status_line(runner.status(study, spec, preset))


def cmd_report(args) -> str:
    from e2gan.cli.reproduce import write_reports
    from e2gan.results import read_result
    from e2gan.pipeline.base import base_dir

    cfg = config_from_args(args)
    run = base_dir(cfg, args.runs)
    base = read_result(run) if (run / "result.json").exists() else None
    specs = specs_from_args(args)
    index = write_reports(specs, cfg.preset, args.runs, reports_root(args), base, run)
    return f"report {cfg.preset}: {len(specs)} studies (what is in storage now, nothing run) -> {index}"


def workers_from_args(args) -> int:
    from e2gan.errors import InputError

    if args.workers < 1:
        raise InputError(f"--workers {args.workers}", "reproduce", "a whole number of processes >= 1")
    return args.workers


def cmd_reproduce(args) -> str:
    from e2gan.progress import RunDisplay
    from e2gan.cli.reproduce import closing_lines, reproduce

    t0 = time.perf_counter()
    refuse_config_flags(args, "reproduce")
    cfg = config_from_args(args)
    specs = specs_from_args(args)
    reports = reports_root(args)
    with RunDisplay(3 + len(specs), enabled=not args.no_progress and not is_worker_rank()) as display:
        done = reproduce(cfg, specs, args.runs, reports, display, workers=workers_from_args(args))
    if done is None:  # a DDP worker process: rank 0 reports
        return ""
    index, result = done
    for line in closing_lines(reports / cfg.preset, specs, reference_root(args), cfg.preset):
        print(line)
    m = result["metrics"]["mean_over_concepts"]
    return (f"reproduce {cfg.preset}: base PSNR {m['psnr']:.2f} dB vs identity {m['identity_psnr']:.2f} dB, "
            f"{len(specs)} studies, {time.perf_counter() - t0:.0f} s -> {index}")
