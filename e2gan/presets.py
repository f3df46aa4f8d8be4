"""Presets: tiny (64², minutes on 2 CPU cores), small (128²), paper (256², the paper's scale, GPU).

Only what differs from the dataclass defaults in `e2gan.config` is written here. A config file is
read on top of its preset (`load_config`), so loading lives here and `e2gan.config` knows no preset.
"""
from __future__ import annotations

from pathlib import Path

from e2gan.config import Config, apply_overrides, load_toml
from e2gan.errors import InputError

PRESETS: dict[str, dict] = {
    # Sized from measured CPU throughput: the base run takes a few minutes on 2 cores.
    "tiny": {
        "data": {"resolution": 64, "crops_per_photo": 8},
        # At 64² the DS -> TB -> US path runs at 8x8, too coarse to carry the image, and instance norm
        # strips each image's colour statistics, which colour edits must keep: measured at 400 base
        # steps (val PSNR, identity 15.1 dB), instance/no skip 16.0 dB, instance + skip 16.4, no norm
        # 16.9, batch norm 14.9, no norm + skip 17.9. small and paper keep the paper's figure.
        "model": {"width": 16, "norm": "none", "lowres_skip": True},
        "disc": {"ndf": 32, "n_layers": 2},
        # lr 1e-3 (pix2pix: 2e-4): on 2 CPU cores the base must learn in minutes; at 300 steps it
        # lifted set-level PSNR by 1-1.5 dB over 2e-4 on the base concepts.
        "train": {"steps": 1200, "batch_size": 16, "ckpt_every": 200, "lr_g": 1e-3, "lr_d": 1e-3},
        # pix2pix's ResNet-9 at the E2GAN width, so the baseline costs minutes, not an hour, on a CPU;
        # small and paper use the faithful ngf=64.
        "adapt": {"pix2pix_ngf": 16, "steps": 100},
        # 500 test images per concept (the dataclass default, written here because it is the
        # preset's scale): the README's FID-vs-N table shows why; 250 validation images decide.
        "eval": {"n_test": 500, "n_val": 250},
    },
    "small": {
        "data": {"resolution": 128, "crops_per_photo": 12},
        "model": {"width": 32},
        "disc": {"ndf": 64, "n_layers": 3},
        "train": {"steps": 6000, "batch_size": 16, "ckpt_every": 500, "accelerator": "auto"},
        "eval": {"n_test": 1000, "n_val": 500},
    },
    # The paper's scale: 256², width 64 (≈6.4 M params), 70×70 PatchGAN, a GPU and real data.
    "paper": {
        "data": {"resolution": 256, "crops_per_photo": 1},
        "model": {"width": 64},
        "disc": {"ndf": 64, "n_layers": 3},
        "train": {"steps": 40000, "batch_size": 16, "ckpt_every": 2000,
                  "accelerator": "auto", "precision": "16-mixed"},
        # FID at 10k test images per concept (FFHQ's hash split holds ~10.5k), as the paper's scale expects.
        "eval": {"backbone": "inception", "n_test": 10000, "n_val": 1000},
    },
}


def get_preset(name: str) -> Config:
    if name not in PRESETS:
        raise InputError(f"unknown preset '{name}'", "--preset", f"one of {sorted(PRESETS)}")
    cfg = Config(preset=name)
    return apply_overrides(cfg, PRESETS[name], f"preset {name}")


def load_config(path: str | Path | None = None, preset: str | None = None) -> Config:
    """Preset defaults, then the file's overrides. The file may name its preset with `preset = "..."`."""
    overrides = load_toml(path) if path else {}
    cfg = get_preset(preset or overrides.get("preset", "tiny"))
    return apply_overrides(cfg, overrides, str(path) if path else "preset")
