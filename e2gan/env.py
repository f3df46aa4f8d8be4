"""The environment a result was measured in: versions, device, threads, commit."""
from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "torchvision", "lightning", "numpy", "clean-fid", "lpips", "peft", "diffusers",
            "transformers", "optuna")


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: str = "cpu", seed: int | None = None) -> dict:
    import torch

    from e2gan import __version__

    dev = str(device)
    name = torch.cuda.get_device_name(0) if dev.startswith("cuda") and torch.cuda.is_available() else platform.processor() or platform.machine()
    return {
        "e2gan": __version__,
        "commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": dev,
        "device_name": name,
        "torch_threads": torch.get_num_threads(),
        "seed": seed,
        "versions": {p: _version(p) for p in PACKAGES},
    }
