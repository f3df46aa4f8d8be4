"""Source image sets: the sample photos that ship inside installed packages, or a user's folder.

Built-in set: colour and greyscale photos bundled in the scikit-image wheel plus matplotlib's
``grace_hopper.jpg`` (files read straight from the installed packages, so nothing is ever
fetched), each cut into ``crops_per_photo`` deterministic random-scale square crops.

Splits are fixed and never depend on ``resolution``:
- built-in: crop ``k`` of photo number ``p`` lands on slot ``(k + 17 p) % 20`` of a 14/3/3
  train/val/test pattern. Any 8 consecutive slots hold a val and a test slot, so each photo
  with >= 8 crops is in all three splits, and the stride 17 keeps the totals near 70/15/15
  even for 1-4 crops per photo (val and test are never empty). The split depends only on
  (photo, k) — not on ``seed``, ``resolution`` or ``crops_per_photo``. ``seed``
  moves the crop windows. Crops of one photo can overlap across splits: the test split
  measures fidelity to the teacher on held-out crops, not on unseen scenes.
- folder: a stable hash of the image id (70/15/15 in expectation; a tiny folder can leave a
  split empty). ``seed`` has no effect on folder sets (there is nothing random to do).
"""
from __future__ import annotations

import hashlib
import importlib.resources
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from e2gan.errors import InputError

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")

# (id prefix, package, file). Only files inside the wheels: some skimage.data images need a
# download, these do not.
BUILTIN_PHOTOS = (
    ("astronaut", "skimage.data", "astronaut.png"),
    ("chelsea", "skimage.data", "chelsea.png"),
    ("coffee", "skimage.data", "coffee.png"),
    ("rocket", "skimage.data", "rocket.jpg"),
    ("motorcycle", "skimage.data", "motorcycle_left.png"),
    ("ihc", "skimage.data", "ihc.png"),
    ("retina", "skimage.data", "retina.jpg"),
    ("hubble", "skimage.data", "hubble_deep_field.jpg"),
    ("camera", "skimage.data", "camera.png"),  # greyscale
    ("moon", "skimage.data", "moon.png"),  # greyscale
    ("grace-hopper", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
)

# 14 train / 3 val / 3 test; val and test slots are <= 7 apart (cyclically), so any 8
# consecutive slots hold at least one of each.
_SPLIT_PATTERN = tuple(
    "val" if i in (3, 10, 16) else "test" if i in (6, 13, 19) else "train" for i in range(20)
)


@dataclass(frozen=True)
class SourceImage:
    id: str
    split: str  # 'train' | 'val' | 'test'
    image: Image.Image  # RGB, resolution x resolution


def _hash_int(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "big")


def is_greyscale(img: Image.Image, tol: int = 6) -> bool:
    """True when (nearly) every pixel has R == G == B, e.g. a grey photo stored as RGB.

    Uses the 99th percentile of per-pixel chroma so JPEG noise on a grey photo still counts
    as grey while a mostly-dark colour photo with a few coloured pixels does not.
    """
    if img.mode in ("L", "LA", "1", "I", "I;16", "F"):
        return True
    a = np.asarray(img.convert("RGB"), dtype=np.int16)
    chroma = a.max(axis=2) - a.min(axis=2)
    return float(np.percentile(chroma, 99)) <= tol


def _check_resolution(resolution: int) -> None:
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution <= 0:
        raise InputError(f"resolution {resolution!r}", "sources", "a positive integer")


def _resize(img: Image.Image, resolution: int) -> Image.Image:
    return img.resize((resolution, resolution), Image.Resampling.LANCZOS)


def _load_builtin_photo(package: str, name: str) -> Image.Image:
    with importlib.resources.as_file(importlib.resources.files(package) / name) as path:
        return to_rgb(Image.open(path))


def builtin_sources(resolution: int, crops_per_photo: int = 8, seed: int = 0) -> list[SourceImage]:
    """Deterministic random-scale square crops of the bundled sample photos."""
    _check_resolution(resolution)
    if isinstance(crops_per_photo, bool) or not isinstance(crops_per_photo, int) or crops_per_photo <= 0:
        raise InputError(f"crops_per_photo {crops_per_photo!r}", "sources", "a positive integer")
    out = []
    for p, (prefix, package, name) in enumerate(BUILTIN_PHOTOS):
        photo = _load_builtin_photo(package, name)
        offset = 17 * p
        for k in range(crops_per_photo):
            box = _crop_box(photo, _hash_int("crop", seed, prefix, k))
            split = _SPLIT_PATTERN[(k + offset) % len(_SPLIT_PATTERN)]
            out.append(SourceImage(f"{prefix}-{k:02d}", split, _resize(photo.crop(box), resolution)))
    return out


def _crop_box(photo: Image.Image, rng_seed: int) -> tuple[int, int, int, int]:
    """A square window 40-100% of the short side; retried when it is nearly flat (e.g. the
    black border around the retina photo), so every crop has something to edit."""
    rng = np.random.default_rng(rng_seed)
    w, h = photo.size
    grey = np.asarray(photo.convert("L"), dtype=np.float32)
    box = (0, 0, min(w, h), min(w, h))
    for _ in range(20):
        side = int(round(min(w, h) * rng.uniform(0.4, 1.0)))
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        box = (x, y, x + side, y + side)
        if grey[y : y + side, x : x + side].std() >= 12.0:
            break
    return box


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB: alpha composited on white, 16/32-bit greys scaled down."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        a = np.asarray(img, dtype=np.float64) / 257.0  # full 16-bit range -> 8 bits
        img = Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "L")
    elif img.mode in ("I", "F"):
        a = np.asarray(img, dtype=np.float64)
        # PNG 16-bit often opens as 'I'; treat values above 255 as a 16-bit range.
        a = a / 257.0 if a.max(initial=0) > 255 else a
        img = Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("LA", "La", "PA", "RGBa") or (img.mode == "L" and "transparency" in img.info):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, img).convert("RGB")
    return img.convert("RGB")


def _sanitise(rel: Path) -> str:
    stem = "_".join(rel.with_suffix("").parts).lower()
    stem = re.sub(r"[^a-z0-9._-]+", "-", stem).strip("-._")
    return stem or "image"


def _hash_split(image_id: str) -> str:
    u = _hash_int("split", image_id) / 2**64
    return "train" if u < 0.70 else "val" if u < 0.85 else "test"


def folder_sources(folder: str | Path, resolution: int, seed: int = 0) -> list[SourceImage]:
    """Every png/jpg/jpeg/webp under ``folder`` (recursive, sorted), centre-cropped and resized.

    ``seed`` is accepted for a uniform signature; folder sets are fully deterministic.
    """
    del seed
    _check_resolution(resolution)
    root = Path(folder)
    if not root.exists():
        raise InputError(str(root), "source folder", "an existing folder of png/jpg/jpeg/webp images")
    if not root.is_dir():
        raise InputError(str(root), "source folder", "a folder, not a file")
    files = sorted(
        (p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    if not files:
        raise InputError(str(root), "source folder", "at least one .png/.jpg/.jpeg/.webp image")
    rels = [p.relative_to(root) for p in files]
    ids = [_sanitise(r) for r in rels]
    # Colliding ids (a/b.png vs a_b.jpg) get a short hash of their own path, so adding an
    # unrelated file never renames another.
    counts: dict[str, int] = {}
    for i in ids:
        counts[i] = counts.get(i, 0) + 1
    ids = [i if counts[i] == 1 else f"{i}-{hashlib.sha256(r.as_posix().encode()).hexdigest()[:8]}"
           for i, r in zip(ids, rels)]
    out = []
    for path, image_id in zip(files, ids):
        img = _open_image(path)
        w, h = img.size
        s = min(w, h)
        img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        out.append(SourceImage(image_id, _hash_split(image_id), _resize(img, resolution)))
    return out


def _open_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            im.load()  # decode now: truncated files fail here, not later
            im = ImageOps.exif_transpose(im)
            return to_rgb(im)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise InputError(str(path), "source image", f"a readable image file ({e})") from None


def load_sources(spec: str | None, resolution: int, crops_per_photo: int = 8, seed: int = 0) -> list[SourceImage]:
    """``None`` or ``"builtin"`` -> the bundled photos; anything else is a folder path."""
    _check_resolution(resolution)
    if spec is None or spec == "builtin":
        return builtin_sources(resolution, crops_per_photo=crops_per_photo, seed=seed)
    return folder_sources(spec, resolution, seed=seed)
