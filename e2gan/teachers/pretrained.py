"""Where pretrained weights are, without the network when offline, and what identifies them.

A hub id is looked up in the local Hugging Face cache first; a local folder must hold the files
``from_pretrained`` reads. ``fingerprint_folder`` names a model by its files' hashes (cheap for
multi-GB weights), so two copies of one model key the same caches wherever they sit. Used by the
diffusion teacher, the CLIP text encoder and the CLIP metric.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from e2gan.errors import InputError

__all__ = ["hub_offline", "how_to_provide", "resolve_pretrained", "fingerprint_folder"]

HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
FINGERPRINT_BYTES = 1 << 20
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".msgpack", ".onnx", ".gguf")


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE is set (now, or when huggingface_hub was imported)."""
    def true(name: str) -> bool:
        return os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")

    if true("HF_HUB_OFFLINE") or true("TRANSFORMERS_OFFLINE"):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - huggingface_hub comes with diffusers/transformers
        return False
    return bool(constants.HF_HUB_OFFLINE)


def how_to_provide(model: str) -> str:
    return (f"download it where there is network with `hf download {model} --local-dir <folder>` "
            f"(or `huggingface-cli download {model} --local-dir <folder>`), copy the folder here and "
            "name the folder instead of the hub id")


def resolve_pretrained(model: str, *, revision: str | None, markers: tuple[str, ...], where: str,
                       what: str = "model") -> tuple[str, dict]:
    """Where to load ``model`` from, without touching the network unless online and not cached.

    Returns (path or hub id for from_pretrained, provenance: source, revision, folder).
    A local folder must hold one of ``markers``; a hub id is looked up in the local cache
    (the snapshot folder is loaded directly); offline and not cached -> InputError.
    """
    if not isinstance(model, str) or not model.strip():
        raise InputError(f"{what} {model!r}", where, "a hub id (owner/name) or a local folder")
    model = model.strip()
    folder = Path(model).expanduser()
    if folder.is_dir():
        if not any((folder / m).is_file() for m in markers):
            raise InputError(f"folder {model!r}", where,
                             f"a folder holding {' or '.join(markers)} (made by save_pretrained or "
                             f"`hf download <id> --local-dir <folder>`)")
        return str(folder), {"source": "local folder", "revision": _local_revision(folder), "folder": folder}
    looks_like_path = (model.startswith(("/", ".", "~")) or "\\" in model or model.count("/") > 1
                       or folder.exists())
    if looks_like_path or not HUB_ID_RE.match(model):
        raise InputError(f"{what} folder {model!r}", where,
                         "an existing folder (none there) or a hub id like owner/name")
    from huggingface_hub import try_to_load_from_cache

    for marker in markers:
        try:
            hit = try_to_load_from_cache(model, marker, revision=revision)
        except Exception:  # invalid repo id / revision for the cache: treat as not cached
            hit = None
        if isinstance(hit, str):
            snap = Path(hit).parent
            return str(snap), {"source": "hub cache", "revision": snap.name, "folder": snap}
    if hub_offline():
        raise InputError(f"{what} {model!r}", where,
                         f"not in the local Hugging Face cache and the hub is offline (HF_HUB_OFFLINE=1): "
                         f"{how_to_provide(model)}")
    return model, {"source": "hub", "revision": revision or "main", "folder": None}


def _local_revision(folder: Path) -> str | None:
    """The commit a `hf download --local-dir` folder was fetched at, when its metadata says so."""
    meta = folder / ".cache" / "huggingface" / "download"
    for name in ("model_index.json.metadata", "config.json.metadata"):
        path = meta / name
        if path.is_file():
            lines = path.read_text("utf-8", errors="replace").splitlines()
            if lines and re.fullmatch(r"[0-9a-f]{40}", lines[0].strip()):
                return lines[0].strip()
    return None


def fingerprint_folder(folder: Path, variant: str | None = None) -> dict:
    """sha256 of every config/tokenizer file, and of (size + first and last MiB) of each weight file.

    Cheap (no full read of multi-GB weights) yet it tells fine-tunes of one architecture apart.
    Only what a pipeline loads counts, so two copies of one model fingerprint alike however much
    else was downloaded beside it: in a pipeline folder, ``model_index.json`` and the folders of
    the components it names; per folder, the weights of one format (safetensors if any, else
    the others) and of the requested ``variant`` (none: the files without one). Paths are
    relative, with '/'; hidden folders (.cache) are skipped.
    """
    folder = Path(folder)
    index = folder / "model_index.json"
    roots = [folder]
    if index.is_file():
        try:
            spec = json.loads(index.read_text("utf-8"))
        except (OSError, ValueError):
            spec = {}
        roots = [folder / k for k, v in spec.items()
                 if isinstance(v, list) and len(v) == 2 and v[0] is not None and (folder / k).is_dir()]
    files = [index] if index.is_file() else []
    for root in roots:
        found = [f for f in sorted(root.rglob("*")) if f.is_file()
                 and not any(part.startswith(".") for part in f.relative_to(folder).parts)]
        weights = [f for f in found if f.name.endswith(WEIGHT_SUFFIXES) and _variant_of(f.name) == variant]
        safetensors = [f for f in weights if f.name.endswith(".safetensors")]
        keep = set(safetensors or weights)
        files += [f for f in found if not f.name.endswith(WEIGHT_SUFFIXES) or f in keep]
    out: dict[str, str] = {}
    for path in files:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            if path.name.endswith(WEIGHT_SUFFIXES):
                size = path.stat().st_size
                h.update(str(size).encode())
                h.update(fh.read(FINGERPRINT_BYTES))
                if size > 2 * FINGERPRINT_BYTES:
                    fh.seek(-FINGERPRINT_BYTES, os.SEEK_END)
                h.update(fh.read(FINGERPRINT_BYTES))
            else:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        out[path.relative_to(folder).as_posix()] = h.hexdigest()
    return out


def _variant_of(name: str) -> str | None:
    """'diffusion_pytorch_model.fp16.safetensors' -> 'fp16'; shards ('-00001-of-00002') are not variants."""
    parts = name.split(".")
    if len(parts) < 3:
        return None
    middle = re.sub(r"-\d+-of-\d+$", "", parts[-2])
    return middle or None
