"""Tables from result.json files: pandas frames, written as Markdown and CSV."""
from __future__ import annotations

import math

import pandas as pd

QUALITY_COLUMNS = [  # (metric key, column title, decimals)
    ("psnr", "PSNR dB", 2), ("identity_psnr", "identity PSNR dB", 2), ("ssim", "SSIM", 3),
    ("fid", "FID", 2), ("kid_mean", "KID", 4), ("perceptual", "perceptual", 4), ("n", "N", 0),
]


def per_concept_table(result: dict) -> pd.DataFrame:
    """One row per concept plus the mean over concepts; PSNR gain over the identity baseline."""
    rows = []
    metrics = result["metrics"]
    for concept, m in metrics["per_concept"].items():
        rows.append({"concept": concept, **{title: m.get(key) for key, title, _ in QUALITY_COLUMNS}})
    mean = metrics["mean_over_concepts"]
    rows.append({"concept": "mean", **{title: mean.get(key) for key, title, _ in QUALITY_COLUMNS if key != "n"},
                 "N": sum(m.get("n", 0) for m in metrics["per_concept"].values())})
    df = pd.DataFrame(rows).set_index("concept")
    df.insert(2, "gain dB", df["PSNR dB"] - df["identity PSNR dB"])
    return df


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


def quality_decimals() -> dict[str, int]:
    return {title: d for _, title, d in QUALITY_COLUMNS} | {"gain dB": 2}


def cost_table(result: dict) -> pd.DataFrame:
    c = result["cost"]
    peak = (c.get("peak_memory") or {})
    rows = {
        "training seconds (evaluation excluded)": c.get("train_seconds"),
        "steps (one G+D update each)": c.get("steps"),
        "images seen": c.get("images_seen"),
        "FLOPs per step (counted)": c.get("flops_per_step"),
        "training FLOPs": c.get("train_flops"),
        "generator params": c.get("params_total"),
        "trainable params": c.get("params_trainable"),
        "discriminator params": c.get("params_discriminator"),
        "bytes stored (generator, fp32)": c.get("bytes_stored"),
        f"peak memory bytes ({peak.get('kind', '?')})": peak.get("bytes"),
    }
    return pd.DataFrame({"value": list(rows.values())}, index=pd.Index(list(rows), name="cost"))
