"""Parse the text TFLite/LiteRT `benchmark_model` prints, in every dialect seen in the wild.

All timings in the tool's output are microseconds; everything returned here is milliseconds.

Dialects (searched without anchors, so `INFO: ` prefixes, logcat prefixes such as
`I tflite  : ` and the `\\r` adb adds to line ends do not matter; numbers may use e-notation,
e.g. `avg=2.95034e+06`, because the tool streams floats with `<<`):

  summary      `Inference timings in us: Init: X, First inference: Y, Warmup (avg): Z, Inference (avg): W`
               (TF >= 2.2 and LiteRT; `count=` lines may carry `p5= median= p95=`)
  average      `Average inference timings in us: Warmup: Z, Init: X, Inference: W`
               (older binaries and the benchmark apk via logcat)
  no-stats     `Average inference timings in us: Warmup: Z, Init: X, no stats: W` (TF 1.1x)
  count-only   no summary line, only `count=... avg=...` statistics lines

`count=` lines: the first is the warm-up phase, the last the timed runs (a lone line is taken as
the timed runs). Memory lines, when present: `Memory footprint delta from the start of the tool
(MB): init=a overall=b`, `Peak memory footprint (MB): init=a overall=b` and `Overall peak memory
footprint (MB) via periodic monitoring: P`.
"""
from __future__ import annotations

import re
from typing import Any

__all__ = ["parse_benchmark_output", "DIALECTS"]

DIALECTS = ("summary", "average", "no-stats", "count-only")

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_SUMMARY = re.compile(r"(?<![Aa]verage )Inference timings in us:(?P<body>[^\n]*)")
_AVERAGE = re.compile(r"Average inference timings in us:(?P<body>[^\n]*)")
_PAIR = re.compile(rf"(?P<key>[A-Za-z][A-Za-z ()]*?)\s*:\s*(?P<val>{_NUM})")
_COUNT_LINE = re.compile(rf"\bcount=(?P<count>{_NUM})(?P<rest>(?:[ \t]+[a-z0-9_]+={_NUM})*)")
_KV = re.compile(rf"([a-z0-9_]+)=({_NUM})")
_MEM_DELTA = re.compile(rf"Memory footprint delta from the start of the tool \(MB\):\s*init=({_NUM})\s+overall=({_NUM})")
_MEM_PEAK_OLD = re.compile(rf"(?<!Overall )Peak memory footprint \(MB\):\s*init=({_NUM})\s+overall=({_NUM})")
_MEM_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring:\s*({_NUM})")
_DELEGATE = re.compile(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \(([^)]*)\)")
_FALLBACK = re.compile(r"will not be executed by the delegate|Failed to apply .*delegate|"
                       r"falling back to (?:the )?CPU", re.IGNORECASE)
_THREADS = re.compile(r"Num threads:\s*\[(-?\d+)\]")
_ERROR_HINT = re.compile(r"^.*(?:ERROR|Error|error|Failed|failed|not found|Permission denied|Aborted|"
                         r"Segmentation fault|can't execute).*$", re.MULTILINE)

# Summary keys (lower-cased, spaces collapsed) -> output field.
_SUMMARY_KEYS = {
    "init": "init_ms",
    "first inference": "first_inference_ms",
    "warmup (avg)": "warmup_avg_ms",
    "warmup": "warmup_avg_ms",
    "inference (avg)": "inference_avg_ms",
    "inference": "inference_avg_ms",
    "no stats": "inference_avg_ms",
    "with stats": "inference_with_stats_avg_ms",
}
# count= line keys -> suffix of the output field (the tool's own names).
_STAT_KEYS = {"first": "first", "curr": "curr", "min": "min", "max": "max", "avg": "avg", "std": "std",
              "p5": "p5", "median": "median", "p50": "median", "p95": "p95"}


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _summary_pairs(body: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for m in _PAIR.finditer(body):
        key = " ".join(m.group("key").lower().split())
        field = _SUMMARY_KEYS.get(key)
        if field and field not in out:
            out[field] = float(m.group("val")) / 1000.0
    return out


def _count_lines(text: str) -> list[dict[str, float]]:
    rows = []
    for m in _COUNT_LINE.finditer(text):
        row = {"count": float(m.group("count"))}
        row.update({k: float(v) for k, v in _KV.findall(m.group("rest"))})
        rows.append(row)
    return rows


def _stats_ms(row: dict[str, float]) -> dict[str, float]:
    return {name: row[key] / 1000.0 for key, name in _STAT_KEYS.items() if key in row}


def _error_hint(text: str) -> str:
    hits = [line.strip() for line in _ERROR_HINT.findall(text) if line.strip()]
    return f"; first error line: {hits[0][:200]}" if hits else ""


def parse_benchmark_output(text: str) -> dict[str, Any]:
    """Timings (ms), statistics, memory and delegate info from one `benchmark_model` run.

    Returns {'dialect', 'inference_avg_ms', 'init_ms', 'first_inference_ms', 'warmup_avg_ms',
    'inference_std_ms', 'inference_min_ms', 'inference_max_ms', 'inference_median_ms',
    'inference_p5_ms', 'inference_p95_ms', 'runs', 'warmup_runs', 'warmup', 'timed',
    'memory_mb', 'delegate', 'delegate_partial', 'delegate_fallback', 'num_threads'}; fields the output does not
    carry are None. Raises ValueError when no timing line is found (callers save the raw text).
    """
    if not isinstance(text, str):
        raise ValueError(f"benchmark output must be text, got {type(text).__name__}")
    text = _normalise(text)

    summary: dict[str, float] = {}
    dialect = None
    m = None
    for m in _SUMMARY.finditer(text):  # the last summary wins (some harnesses repeat runs)
        pass
    if m is not None:
        summary, dialect = _summary_pairs(m.group("body")), "summary"
    else:
        for m in _AVERAGE.finditer(text):
            pass
        if m is not None:
            body = m.group("body")
            summary = _summary_pairs(body)
            dialect = "no-stats" if re.search(r"no stats\s*:", body) else "average"
            if "inference_avg_ms" not in summary:  # oldest form: "...in us: 137722 , Warmup: 146161,"
                lead = re.match(rf"\s*({_NUM})", body)
                if lead:
                    summary["inference_avg_ms"] = float(lead.group(1)) / 1000.0

    counts = _count_lines(text)
    warm_row = counts[0] if len(counts) >= 2 else None
    timed_row = counts[-1] if counts else None
    if dialect is None and timed_row is not None and "avg" in timed_row:
        dialect = "count-only"
    if dialect is None or (summary.get("inference_avg_ms") is None and not (timed_row and "avg" in timed_row)):
        raise ValueError("no benchmark_model timing line ('Inference timings in us', 'Average inference "
                         "timings in us' or 'count=... avg=...') in the output" + _error_hint(text))

    timed = _stats_ms(timed_row) if timed_row else {}
    warm = _stats_ms(warm_row) if warm_row else {}
    inference_avg = summary.get("inference_avg_ms", timed.get("avg"))
    out: dict[str, Any] = {
        "dialect": dialect,
        "inference_avg_ms": inference_avg,
        "init_ms": summary.get("init_ms"),
        "first_inference_ms": summary.get("first_inference_ms", warm.get("first", warm.get("curr"))),
        "warmup_avg_ms": summary.get("warmup_avg_ms", warm.get("avg")),
        "inference_std_ms": timed.get("std"),
        "inference_min_ms": timed.get("min"),
        "inference_max_ms": timed.get("max"),
        "inference_median_ms": timed.get("median"),
        "inference_p5_ms": timed.get("p5"),
        "inference_p95_ms": timed.get("p95"),
        "runs": int(timed_row["count"]) if timed_row else None,
        "warmup_runs": int(warm_row["count"]) if warm_row else None,
        "warmup": warm or None,
        "timed": timed or None,
    }
    if "inference_with_stats_avg_ms" in summary:
        out["inference_with_stats_avg_ms"] = summary["inference_with_stats_avg_ms"]

    memory: dict[str, float] = {}
    if (mm := _MEM_DELTA.search(text)):
        memory.update(init_delta=float(mm.group(1)), overall_delta=float(mm.group(2)))
    if (mm := _MEM_PEAK_OLD.search(text)):
        memory.update(init=float(mm.group(1)), overall=float(mm.group(2)))
    if (mm := _MEM_PEAK.search(text)):
        memory["peak"] = float(mm.group(1))
    out["memory_mb"] = memory or None

    delegates = [{"replaced": int(a), "total": int(b), "name": name.strip()} for a, b, name in _DELEGATE.findall(text)]
    out["delegate"] = delegates[-1] if delegates else None
    out["delegate_partial"] = bool(delegates) and delegates[-1]["replaced"] < delegates[-1]["total"]
    out["delegate_fallback"] = bool(_FALLBACK.search(text))
    threads = _THREADS.search(text)
    out["num_threads"] = int(threads.group(1)) if threads else None
    return out
