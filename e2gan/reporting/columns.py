"""The quality and cost columns a study table shows: result keys, titles, decimals, directions."""
from __future__ import annotations

QUALITY = [  # (result key, column title, decimals)
    ("fid", "FID", 2), ("kid_mean", "KID", 4), ("perceptual", "perceptual", 4), ("psnr", "PSNR dB", 2),
    ("ssim", "SSIM", 3),
]
MAXIMIZE = {"psnr", "ssim", "identity_psnr", "gain_db"}
TITLES = {k: t for k, t, _ in QUALITY} | {"identity_psnr": "identity PSNR dB", "gain_db": "PSNR gain dB"}
DECIMALS = {k: d for k, _, d in QUALITY} | {"identity_psnr": 2, "gain_db": 2}
COST = [  # (trials column, column title, decimals)
    ("train_seconds", "wall time s", 1), ("train_flops", "training FLOPs", 0),
    ("params_trainable", "trainable params", 0), ("bytes_stored", "bytes per concept", 0),
]
COST_SHORT = {"train_seconds": "time", "train_flops": "FLOPs", "params_trainable": "params", "bytes_stored": "bytes"}


def direction_word(metric: str) -> str:
    return "↑" if metric in MAXIMIZE else "↓"


def metric_title(metric: str) -> str:
    return f"{TITLES.get(metric, metric)} {direction_word(metric)}"
