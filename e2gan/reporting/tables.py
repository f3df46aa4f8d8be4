"""The base report's tables from one result.json: per-concept quality and cost, as pandas frames."""
from __future__ import annotations

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
