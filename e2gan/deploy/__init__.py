"""Deployment: export a run's generator to .tflite and measure its latency (host or phone).

Entry points for the CLI (plain functions; heavy imports happen inside them):

  run_export.export_run(run_dir, ...)  -> run_dir/export/<stem>.tflite + <stem>.json, result["export"][stem]
  run_latency.latency_run(run_or_tflite, backend, ...)
                                       -> result["latency"][<tag>] and result["latency"][backend] (the latest)
                                          (+ run_dir/latency/<backend>-<stamp>.json)

Modules: protocol (export stems, latency protocol tags), run_files (what a run directory holds),
export (litert-torch + parity), latency (host: torch | litert), adb (phone), benchmark_output
(benchmark_model parser), gemm_peak (GEMM sweep and the honest fp32 peak), cpu_peak (theoretical
FMA peak from cpuinfo), litert_gemm (a pure-GEMM LiteRT model).
"""
