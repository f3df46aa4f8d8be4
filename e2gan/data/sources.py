"""Source image sets: the sample photos that ship inside installed packages, or a user's folder.

Built-in set: 18 photographs read straight from installed wheels (nothing is ever fetched):
scikit-image's ``skimage/data`` (astronaut, chelsea, coffee, rocket, motorcycle, ihc, retina,
hubble, and the greyscale camera, moon, coins, brick, grass, gravel), matplotlib's
``grace_hopper.jpg``, scikit-learn's ``china.jpg`` and ``flower.jpg`` (CC-BY 2.0, see
``sklearn/datasets/images/README.txt``) and mahotas' ``luispedro.jpg`` (a portrait shipped for
its demos). Lena (also in mahotas) and the Where's-Waldo page are left out.

Splits are disjoint by photograph: each photo belongs to one split (``BUILTIN_PHOTOS``), so no
test crop shares a photo with any training or validation crop. Test and validation photos are
colour photos, so every concept (colour edits skip greyscale images) gets the same N.
- train: ``crops_per_photo`` crops of each training photo;
- val / test: ``n_val`` / ``n_test`` crops in all, dealt round-robin over that split's photos
  (crop ``j`` from photo ``j % len(photos)``); ``None`` means ``crops_per_photo`` per photo.
Each crop is a square window 30-100% of the photo's short side at a random position, mirrored
left-right with probability 1/2, resized (Lanczos) to ``resolution``; windows that come out flat
or, for a colour photo, greyscale are redrawn. The windows depend on (``seed``, photo, crop
number) only: never on ``resolution``, the split sizes or the other photos.

Folder sets: a stable hash of the image id (70/15/15 in expectation; a tiny folder can leave a
split empty), each file one photograph. ``n_test`` / ``n_val`` cap the test / val splits (the
first images in a hash order are kept; the rest are dropped, never moved to train, so the
training set does not depend on the caps). ``seed`` has no effect on folder sets.
"""
from __future__ import annotations

import hashlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from e2gan.errors import InputError

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")

# (id prefix, top-level package, file inside it, split). Only files inside the wheels: some
# skimage.data images need a download, these do not. Test photos span an animal, a rocket in a
# landscape, architecture and a face; validation an object and a flower close-up.
BUILTIN_PHOTOS = (
    ("astronaut", "skimage", "data/astronaut.png", "train"),
    ("coffee", "skimage", "data/coffee.png", "train"),
    ("ihc", "skimage", "data/ihc.png", "train"),
    ("retina", "skimage", "data/retina.jpg", "train"),
    ("hubble", "skimage", "data/hubble_deep_field.jpg", "train"),
    ("grace-hopper", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "train"),
    ("camera", "skimage", "data/camera.png", "train"),  # greyscale
    ("moon", "skimage", "data/moon.png", "train"),  # greyscale
    ("coins", "skimage", "data/coins.png", "train"),  # greyscale
    ("brick", "skimage", "data/brick.png", "train"),  # greyscale texture
    ("grass", "skimage", "data/grass.png", "train"),  # greyscale texture
    ("gravel", "skimage", "data/gravel.png", "train"),  # greyscale texture
    ("motorcycle", "skimage", "data/motorcycle_left.png", "val"),
    ("flower", "sklearn", "datasets/images/flower.jpg", "val"),
    ("chelsea", "skimage", "data/chelsea.png", "test"),
    ("rocket", "skimage", "data/rocket.jpg", "test"),
    ("china", "sklearn", "datasets/images/china.jpg", "test"),
    ("luispedro", "mahotas", "demos/data/luispedro.jpg", "test"),
)


def photos_by_split() -> dict[str, list[str]]:
    """The built-in photo ids of each split."""
    return {split: [p for p, _, _, s in BUILTIN_PHOTOS if s == split] for split in SPLITS}


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
    """A file inside an installed package, found without importing it (sklearn imports slowly)."""
    spec = importlib.util.find_spec(package)
    path = Path(spec.origin).parent / name if spec is not None and spec.origin else None
    if path is None or not path.is_file():
        raise InputError(f"built-in photo {package}/{name} not found", "sources",
                         f"the pinned '{package}' package installed (pip install -r requirements.lock)")
    with Image.open(path) as im:
        return to_rgb(im)


def _check_count(name: str, value, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InputError(f"{name} {value!r}", "sources", "a positive integer")


def builtin_sources(resolution: int, crops_per_photo: int = 8, seed: int = 0,
                    n_test: int | None = None, n_val: int | None = None) -> list[SourceImage]:
    """Deterministic crops of the bundled photos, split by photograph (see the module docstring)."""
    _check_resolution(resolution)
    _check_count("crops_per_photo", crops_per_photo, allow_none=False)
    _check_count("n_test", n_test, allow_none=True)
    _check_count("n_val", n_val, allow_none=True)
    total = {"val": n_val, "test": n_test}
    out = []
    for split in SPLITS:
        photos = [(prefix, package, name) for prefix, package, name, s in BUILTIN_PHOTOS if s == split]
        n = total.get(split) or crops_per_photo * len(photos)
        counts = [n // len(photos) + (i < n % len(photos)) for i in range(len(photos))]
        for (prefix, package, name), count in zip(photos, counts):
            photo = _load_builtin_photo(package, name)
            grey = np.asarray(photo.convert("L"), dtype=np.float32)
            # Chroma at 1/4 scale: a window's colourfulness is judged at the photo's scale, not the
            # output's, so the window drawn never depends on ``resolution``.
            chroma = None
            if not is_greyscale(photo):
                a = np.asarray(photo.reduce(4), dtype=np.int16)
                chroma = a.max(axis=2) - a.min(axis=2)
            for k in range(count):
                img = _crop(photo, grey, chroma, resolution, _hash_int("crop", seed, prefix, k))
                out.append(SourceImage(f"{prefix}-{k:02d}", split, img))
    return out


def _crop(photo: Image.Image, grey: np.ndarray, chroma: np.ndarray | None, resolution: int,
          rng_seed: int) -> Image.Image:
    """A square window 30-100% of the short side, mirrored with probability 1/2; redrawn when it
    is nearly flat (the black border around the retina photo) or, from a colour photo (``chroma``
    given, at 1/4 scale), grey as ``is_greyscale`` judges it (a patch of sky), so every crop has
    something for every edit to change."""
    rng = np.random.default_rng(rng_seed)
    w, h = photo.size
    for _ in range(20):
        side = int(round(min(w, h) * rng.uniform(0.3, 1.0)))
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        flip = bool(rng.integers(0, 2))
        flat = grey[y: y + side, x: x + side].std() < 12.0
        colourless = chroma is not None and float(np.percentile(
            chroma[y // 4: (y + side) // 4, x // 4: (x + side) // 4], 99)) <= 6
        if not (flat or colourless):
            break
    img = _resize(photo.crop((x, y, x + side, y + side)), resolution)
    return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else img


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


def folder_sources(folder: str | Path, resolution: int, seed: int = 0,
                   n_test: int | None = None, n_val: int | None = None) -> list[SourceImage]:
    """Every png/jpg/jpeg/webp under ``folder`` (recursive, sorted), centre-cropped and resized.

    ``n_test`` / ``n_val`` cap the test / val splits (None: no cap). ``seed`` is accepted for a
    uniform signature; folder sets are fully deterministic.
    """
    del seed
    _check_resolution(resolution)
    _check_count("n_test", n_test, allow_none=True)
    _check_count("n_val", n_val, allow_none=True)
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
    kept = _capped(ids, {"val": n_val, "test": n_test})
    out = []
    for path, image_id in zip(files, ids):
        if image_id not in kept:
            continue  # over its split's cap: not even decoded
        img = _open_image(path)
        w, h = img.size
        s = min(w, h)
        img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        out.append(SourceImage(image_id, _hash_split(image_id), _resize(img, resolution)))
    return out


def _capped(ids: list[str], caps: dict[str, int | None]) -> set[str]:
    """The ids kept: all of train; of a capped split, the first ``cap`` in a hash order, so adding
    a file to the folder moves at most one image out of a full split."""
    by_split: dict[str, list[str]] = {s: [] for s in SPLITS}
    for i in ids:
        by_split[_hash_split(i)].append(i)
    kept = set(by_split["train"])
    for split in ("val", "test"):
        order = sorted(by_split[split], key=lambda i: _hash_int("order", i))
        kept.update(order[: caps[split]] if caps[split] is not None else order)
    return kept


def _open_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            im.load()  # decode now: truncated files fail here, not later
            im = ImageOps.exif_transpose(im)
            return to_rgb(im)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise InputError(str(path), "source image", f"a readable image file ({e})") from None


def load_sources(spec: str | None, resolution: int, crops_per_photo: int = 8, seed: int = 0,
                 n_test: int | None = None, n_val: int | None = None) -> list[SourceImage]:
    """``None`` or ``"builtin"`` -> the bundled photos; anything else is a folder path.

    ``n_test`` / ``n_val``: the built-in set's test / val sizes, a folder's caps (None: the
    built-in set takes ``crops_per_photo`` per photo, a folder keeps every image).
    """
    _check_resolution(resolution)
    if spec is None or spec == "builtin":
        return builtin_sources(resolution, crops_per_photo=crops_per_photo, seed=seed, n_test=n_test, n_val=n_val)
    return folder_sources(spec, resolution, seed=seed, n_test=n_test, n_val=n_val)
