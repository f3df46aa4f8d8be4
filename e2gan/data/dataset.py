"""Paired data on disk as tensors: (source, target, concept id). The folders are written by
`e2gan.data.distill` in the format of `e2gan.data.manifest`.

Images are returned in [-1, 1] (the generators end in tanh). The manifest is validated against
the files before anything trains on them.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from e2gan.errors import InputError

SPLITS = ("train", "val", "test")


def load_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"), dtype=np.uint8)  # a writable copy for torch
    except (OSError, ValueError) as exc:
        raise InputError("unreadable image", str(path), f"a valid PNG/JPEG ({exc})") from None


# Every cell of a study decodes the same test images (and its concept's training pairs) again: the
# decoded arrays are kept per process, keyed by the file's stat, least recently used dropped past
# this many bytes (the tiny preset's test images of three held-out concepts: about 25 MB).
DECODED_MEMO_BYTES = 256 << 20
_DECODED: OrderedDict = OrderedDict()
_decoded_bytes = 0


def decoded_rgb(path: Path) -> np.ndarray:
    """``load_rgb``, remembered per process while the file's stat (device, inode, size, mtime, ctime) is
    unchanged, as the manifest check remembers hashes.
    Callers must not write into the array (``to_model_range`` copies it)."""
    try:
        st = path.stat()
    except OSError:
        return load_rgb(path)  # says which file, and why
    key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    hit = _DECODED.get(key)
    if hit is not None:
        _DECODED.move_to_end(key)
        return hit
    global _decoded_bytes
    img = _DECODED[key] = load_rgb(path)
    _decoded_bytes += img.nbytes
    while len(_DECODED) > 1 and _decoded_bytes > DECODED_MEMO_BYTES:
        _decoded_bytes -= _DECODED.popitem(last=False)[1].nbytes
    return img


def to_model_range(img_uint8: np.ndarray) -> torch.Tensor:
    """HWC uint8 -> CHW float in [-1, 1]."""
    return torch.from_numpy(img_uint8).permute(2, 0, 1).float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float (any leading dims) -> uint8, rounding like image writers do."""
    return x.detach().float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class Pair:
    source: Path
    target: Path
    concept: str
    source_id: str
    split: str


def manifest_pairs(root: str | Path, concepts: list[str], split: str, check_hashes: bool = True,
                   records: list[dict] | None = None) -> list[Pair]:
    """The pairs of ``concepts`` in ``split``, in manifest order, after validating the manifest.

    records: what ``verify_manifest(root)`` returned for this folder just before; the manifest is
    then not read or checked again (several datasets over one folder share one check).
    """
    from e2gan.data.manifest import verify_manifest

    if split not in SPLITS:
        raise InputError(f"unknown split '{split}'", str(root), f"one of {list(SPLITS)}")
    root = Path(root)
    if records is None:
        records = verify_manifest(root, check_hashes=check_hashes)
    known = {r["concept"] for r in records}
    missing = [c for c in concepts if c not in known]
    if missing:
        raise InputError(f"concept(s) {missing} not in the data", str(root / "manifest.jsonl"),
                         f"one of {sorted(known)} (distil them first)")
    wanted = set(concepts)
    pairs = [Pair(root / r["source"], root / r["target"], r["concept"], r["source_id"], r["split"])
             for r in records if r["concept"] in wanted and r["split"] == split]
    if not pairs:
        raise InputError(f"no '{split}' pairs for {concepts}", str(root / "manifest.jsonl"),
                         "at least one pair (are there enough source images?)")
    return pairs


class PairedDataset(Dataset):
    """(source, target, concept_id) over one or many concepts.

    ``concept_index`` maps concept names to the generator's embedding rows; it is fixed by the
    caller (the base model's concept list) so ids stay stable across runs and datasets.
    ``records``: the folder's checked manifest records, to skip checking them again (``manifest_pairs``).
    """

    def __init__(self, root: str | Path, concepts: list[str], split: str,
                 concept_index: dict[str, int] | None = None, preload: bool = True,
                 indices: list[int] | None = None, check_hashes: bool = True,
                 records: list[dict] | None = None):
        self.root = Path(root)
        self.split = split
        self.concept_index = concept_index or {c: i for i, c in enumerate(concepts)}
        unknown = [c for c in concepts if c not in self.concept_index]
        if unknown:
            raise InputError(f"concept(s) {unknown} have no embedding id", str(self.root),
                             f"one of {sorted(self.concept_index)}")
        pairs = manifest_pairs(self.root, concepts, split, check_hashes=check_hashes, records=records)
        self.pairs = [pairs[i] for i in indices] if indices is not None else pairs
        self._cache: dict[Path, np.ndarray] | None = {} if preload else None

    def __len__(self) -> int:
        return len(self.pairs)

    def _image(self, path: Path) -> np.ndarray:
        if self._cache is None:
            return load_rgb(path)
        if path not in self._cache:
            self._cache[path] = decoded_rgb(path)
        return self._cache[path]

    def __getitem__(self, i: int) -> dict:
        p = self.pairs[i]
        return {
            "source": to_model_range(self._image(p.source)),
            "target": to_model_range(self._image(p.target)),
            "concept_id": torch.tensor(self.concept_index[p.concept], dtype=torch.long),
            "index": i,
        }

    def concepts_present(self) -> list[str]:
        return sorted({p.concept for p in self.pairs})


class StepBatchSampler(torch.utils.data.Sampler):
    """``steps`` batches per epoch, drawn from a permutation seeded by (seed, epoch).

    Each epoch is a pure function of its number, so resuming at an epoch boundary replays exactly
    the batches an uninterrupted run would have seen. Under DDP each rank takes its own slice of
    the global batch, so the ranks see disjoint samples.
    """

    def __init__(self, n: int, batch_size: int, steps: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        self.n, self.batch_size, self.steps, self.seed = n, batch_size, steps, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        global_batch = self.batch_size * self.world_size
        need = self.steps * global_batch
        reps = -(-need // self.n)
        order = torch.cat([torch.randperm(self.n, generator=g) for _ in range(reps)])[:need]
        for s in range(self.steps):
            chunk = order[s * global_batch:(s + 1) * global_batch]
            yield chunk[self.rank * self.batch_size:(self.rank + 1) * self.batch_size].tolist()
