"""The paper's latency column: host (torch, LiteRT) and phone (adb) per method, with MACs."""
from __future__ import annotations

import pandas as pd

from e2gan.reporting.paper_tables.common import (distinct, frame_of, index_title, paper_entry, paper_number,
                                                 table_notes)
from e2gan.reporting.stats import Estimate, estimate, format_number
from e2gan.reporting.study_context import StudyContext
from e2gan.reporting.table import Table


def latency_rows(ctx: StudyContext) -> list[dict]:
    """One row per (cell, backend): latencies recorded in the cell's runs (result['latency'])."""
    out = []
    groups = ctx.groups or [()]
    for g in groups:
        rows = ctx.group_rows(g) if g else ctx.frame
        per_backend: dict[str, list[dict]] = {}
        for r in ctx.run_results(rows):
            for backend, rec in (r.get("latency") or {}).items():
                # Rows are kept per protocol tag; the bare backend key repeats the latest of them.
                if isinstance(rec, dict) and (not rec.get("protocol_tag") or backend == rec["protocol_tag"]):
                    per_backend.setdefault(str(backend), []).append(rec)
        for backend, recs in per_backend.items():
            ms = [_latency_ms(x) for x in recs]
            out.append({"group": g, "label": ctx.group_label(g), "backend": backend, "estimate": estimate(ms),
                        "p10": min((x.get("p10_ms") for x in recs if x.get("p10_ms") is not None), default=None),
                        "p90": max((x.get("p90_ms") for x in recs if x.get("p90_ms") is not None), default=None),
                        "macs": next((x.get("macs") for x in recs if x.get("macs")), None),
                        "threads": distinct(x.get("threads", x.get("protocol", {}).get("threads")) for x in recs),
                        "device": distinct(_device_name(x, backend) for x in recs)})
    return out


def _latency_ms(rec: dict) -> float | None:
    for k in ("latency_ms", "median_ms", "mean_ms"):
        if rec.get(k) is not None:
            return rec[k]
    return None


def _device_name(rec: dict, backend: str) -> str:
    dev = rec.get("device")
    if isinstance(dev, dict):
        return " ".join(str(dev[k]) for k in ("manufacturer", "model", "soc") if dev.get(k)) or "phone"
    if dev:
        return str(dev)
    return "host" if rec.get("backend", backend) in ("torch", "litert") else "phone"


def latency_table(ctx: StudyContext) -> Table:
    """The paper's latency column: host (torch, LiteRT) and phone (adb) per method, with MACs."""
    disp, data = {}, {}
    for row in latency_rows(ctx):
        label = f"{row['label']} / {row['backend']}"
        e: Estimate = row["estimate"]
        paper = paper_entry(ctx, row["label"]) or {}
        paper_ms = paper.get("phone_ms", paper.get("latency_ms"))  # the paper measured on a phone only
        disp[label] = {"latency ms (mean of runs)": e.text(2),
                       "p10–p90 ms": (f"{format_number(row['p10'], 2)}–{format_number(row['p90'], 2)}"
                                      if row["p10"] is not None else "–"),
                       "MACs": format_number(row["macs"], 0), "threads": row["threads"], "device": row["device"],
                       "paper phone ms": paper_number(paper_ms)}
        data[label] = {**e.record("latency_ms"), "p10_ms": row["p10"], "p90_ms": row["p90"], "macs": row["macs"],
                       "threads": row["threads"], "device": row["device"], "paper_phone_ms": paper_ms}
    notes = ["Host: median of timed calls after warm-up (torch eager or the LiteRT interpreter); phone: "
             "benchmark_model's average over its runs. Cells: mean ± 95% CI over the measured runs (N = runs). "
             "MACs per image from torch.utils.flop_counter (transposed convs at input resolution)."]
    if not disp:
        notes.insert(0, "No run of this study has a latency record yet: measure the runs (torch / LiteRT on the "
                        "host, or a phone over adb) and rebuild the report.")
    if any(isinstance(v, dict) and "phone_ms" in v for v in ctx.paper.values()):
        notes.append("'paper phone ms': the paper's on-phone latency (iPhone 14; runtime not stated), from the "
                     "spec's [paper] table.")
    empty_cols = ["latency ms (mean of runs)", "p10–p90 ms", "MACs", "threads", "device", "paper phone ms"]
    display = frame_of(disp, index_title(ctx) + " / backend") if disp else pd.DataFrame(columns=empty_cols).rename_axis(index_title(ctx) + " / backend")
    return Table("latency", "Latency and MACs", display, frame_of(data, index_title(ctx) + " / backend"),
                 table_notes(ctx, extra=notes))
