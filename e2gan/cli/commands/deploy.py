"""The commands that leave the host's Python: export to .tflite, latency on the host or a phone."""
from __future__ import annotations


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
