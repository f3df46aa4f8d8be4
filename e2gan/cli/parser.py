"""The argument parser: every command, its flags and its help text, and which function runs it."""
from __future__ import annotations

import argparse

from e2gan.cli.commands.deploy import cmd_export, cmd_latency
from e2gan.cli.commands.pipeline import cmd_adapt, cmd_describe, cmd_distill, cmd_evaluate, cmd_merge, cmd_train_base
from e2gan.cli.commands.studies import (cmd_analyze_layers, cmd_rank_search, cmd_report, cmd_reproduce,
                                        cmd_study)
from e2gan.cli.options import add_config_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="e2gan", description="Efficient training of efficient GANs: "
                                     "distil, train, adapt, evaluate, export, study, report.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("distill", help="sources x concepts -> paired data + manifest (resumable)")
    add_config_args(p)
    p.add_argument("--shard", default=None, help="i/n: this machine's disjoint share of the work")
    p.add_argument("--merge-shards", action="store_true", help="fold finished shards into manifest.jsonl")
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser("train-base", help="train the base GAN on the base concepts (resumes from last)")
    add_config_args(p)
    p.add_argument("--run-dir", default=None, help="run directory (default: keyed by the configuration)")
    p.set_defaults(func=cmd_train_base)

    p = sub.add_parser("adapt", help="learn a new concept: lora | full | scratch | pix2pix")
    add_config_args(p)
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
    add_config_args(p)
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
    add_config_args(p)
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
    add_config_args(p)
    p.add_argument("--reports", default=None, help=reports_help)
    p.add_argument("--reference", default=None,
                   help="reference reports to compare with (default: the checkout's reports/, when present)")
    p.add_argument("--specs", default=None, help="comma-separated study specs or files, 'all' (the default: every built-in spec) or 'none' (the base model only)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes running a grid's cells side by side, each with cores/N threads (default 1)")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("report", help="rebuild <runs>/reports/<preset>/ from the studies' storage and result.json files")
    add_config_args(p)
    p.add_argument("--reports", default=None, help=reports_help)
    p.add_argument("--specs", default=None, help="comma-separated study specs or files, 'all' (the default: every built-in spec) or 'none' (the base model only)")
    p.set_defaults(func=cmd_report)
    return parser
