"""Values as table text: a frame as a GitHub-flavoured Markdown table, a config value as a row label.

Below every layer that prints a table (studies' summaries, searches, reports), so none of them
reaches up into reporting for it."""
from __future__ import annotations

import math
from typing import Any

import pandas as pd


def _fmt(value, decimals: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    v = float(value)
    if abs(v) >= 1e9:  # FLOPs, bytes: magnitude matters, not the last digit
        return f"{v:.3e}"
    if decimals == 0 or (v.is_integer() and abs(v) >= 100):
        return f"{int(round(v)):,}"
    return f"{v:.{decimals}f}"


def to_markdown(df: pd.DataFrame, decimals: dict[str, int] | None = None, default: int = 3) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    decimals = decimals or {}
    index_name = df.index.name or ""
    header = [index_name, *map(str, df.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(df.columns)) + "|"]
    for idx, row in df.iterrows():
        cells = [str(idx)]
        for col in df.columns:
            v = row[col]
            cells.append(_fmt(v, decimals.get(col, default)) if isinstance(v, (int, float)) or v is None else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def label_value(v: Any) -> str:
    """A config value as a row label: lists joined with '+', dicts as k=v, whole floats as ints."""
    if isinstance(v, (list, tuple)):
        return "+".join(map(str, v))
    if isinstance(v, dict):
        return ", ".join(f"{k}={v[k]}" for k in v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)
