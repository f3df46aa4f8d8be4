"""Per-image scores saved at evaluation time, for paired statistics between arms.

Beside ``result.json`` a run writes ``scores.npz`` (``scores-<checkpoint>.npz`` for a checkpoint):
one row per test image, in the test split's order, so that two arms pair on the same images.

    concept, source_id      [N] str    which test image (arms pair on (concept, source_id))
    mse                     [N] f64    per-image MSE on [0,1] pixels (set PSNR = 10·log10(1/mean))
    psnr                    [N] f64    per-image PSNR dB (inf-free: capped at 100 dB)
    perceptual              [N] f64    per-image LPIPS or proxy distance (nan when not measured)
    feat_out, feat_tgt      [N,d] f16  backbone features of the outputs and of the teacher targets
    backbone                []   str   the backbone that produced the features

and ``predictions.npz``: uint8 sources/targets/outputs of the first few test images per concept,
the only pixels a report draws (a report never runs a model).

Each concept also gets, in ``result.json``: FID∞ (``fid_inf``), the floors and the collapse check.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

SCORES_FILE = "scores.npz"
PREDICTIONS_FILE = "predictions.npz"
SAMPLES_PER_CONCEPT = 4
PSNR_CAP_DB = 100.0  # an unchanged image (MSE 0) would be +inf


def scores_name(label: str = "last") -> str:
    return SCORES_FILE if label == "last" else f"scores-{label}.npz"


def predictions_name(label: str = "last") -> str:
    return PREDICTIONS_FILE if label == "last" else f"predictions-{label}.npz"


def per_image_mse(outputs: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    o, t = outputs.double() / 255.0, targets.double() / 255.0
    return ((o - t) ** 2).flatten(1).mean(1).numpy()


def _psnr(mse: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.minimum(10.0 * np.log10(1.0 / np.maximum(mse, 0.0)), PSNR_CAP_DB)


class FeatureCache:
    """Backbone features of image sets that every run of a concept shares (its targets and sources).

    Keyed by the images' bytes and the backbone's description (name, weights hash, resize), so a
    changed image or backbone never hits a stale entry; stored as float64 .npy, so a cached value
    is the computed one. Evaluation then runs the backbone once per run (its outputs), not three times.
    The weights file's path is left out of the key (its hash is in): the same weights installed
    elsewhere (another checkout or environment) still hit.
    """

    def __init__(self, folder: str | Path | None):
        self.folder = Path(folder) if folder else None

    def __call__(self, images: torch.Tensor, extractor) -> np.ndarray:
        import hashlib
        import json

        if self.folder is None:
            return np.asarray(extractor(images), np.float64)
        desc = {k: v for k, v in extractor.describe().items() if k != "weights"}
        h = hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode())
        h.update(str(tuple(images.shape)).encode())
        h.update(images.contiguous().cpu().numpy().tobytes())
        path = self.folder / f"{h.hexdigest()[:32]}.npy"
        if path.is_file():
            try:
                return np.load(path, allow_pickle=False)
            except (OSError, ValueError):  # a damaged entry is recomputed
                pass
        feats = np.asarray(extractor(images), np.float64)
        from e2gan.io import atomic_write_bytes

        buf = io.BytesIO()
        np.save(buf, feats)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, buf.getvalue())
        except OSError:
            # A cache is only a saving: a full or read-only disk must not end an evaluation here.
            # The run's own writes (scores, result.json) then report the disk, naming the run.
            pass
        return feats


# The floors depend on a concept's targets and sources only, which every run of the concept shares:
# they are kept per process (a few floats each) instead of recomputed per run.
_FLOORS: dict[str, dict] = {}


def floors(fb: np.ndarray, fs: np.ndarray | None, seed: int = 0) -> dict:
    """The metric floors of one concept from its targets' (``fb``) and sources' (``fs``) features:
    two disjoint halves of the targets against each other (``floor_halves_fid/_kid``, at N/2 each:
    what "perfect" scores at this N) and the unedited sources against the targets
    (``floor_identity_fid/_kid``; None: no sources' features, no identity floor)."""
    import hashlib

    from e2gan.metrics.frechet import frechet_distance
    from e2gan.metrics.quality import kid_from_features

    h = hashlib.sha256(f"{seed} {fb.shape} {fb.dtype}".encode())
    h.update(np.ascontiguousarray(fb).tobytes())
    if fs is not None:
        h.update(f"{fs.shape} {fs.dtype}".encode())
        h.update(np.ascontiguousarray(fs).tobytes())
    key = h.hexdigest()
    if key in _FLOORS:
        return dict(_FLOORS[key])
    n, out = len(fb), {}
    if n >= 4:
        half = np.random.default_rng(seed).permutation(n)
        a, b = half[: n // 2], half[n // 2: 2 * (n // 2)]
        out["floor_halves_fid"] = frechet_distance(fb[a], fb[b])
        out["floor_halves_kid"] = kid_from_features(fb[a], fb[b], num_subsets=1, subset_size=n)[0]
    if fs is not None:
        out["floor_identity_fid"] = frechet_distance(fs, fb)
        out["floor_identity_kid"] = kid_from_features(fs, fb, num_subsets=1, subset_size=n)[0]
    if len(_FLOORS) >= 256:  # a long-lived process over many data sets: keep the memo small
        _FLOORS.clear()
    _FLOORS[key] = dict(out)
    return out


def concept_extras(outputs: torch.Tensor, targets: torch.Tensor, sources: torch.Tensor, keep: dict,
                   extractor=None, seed: int = 0, cache: FeatureCache | None = None) -> tuple[dict, dict]:
    """(metrics for result.json, per-image arrays) for one concept's paired uint8 images.

    metrics: fid_inf and its slope (FID∞, Chong & Forsyth); floors: the unedited sources against
    the targets (``floor_identity_fid/_kid``; PSNR's is ``identity_psnr``) and two disjoint halves
    of the targets against each other (``floor_halves_fid/_kid``, at N/2 each: what "perfect"
    scores at this N; ``floors``, kept per process); ``collapse``: the near-constant /
    same-for-every-input check.
    """
    from e2gan.metrics.collapse import detect_collapse
    from e2gan.metrics.fid_inf import fid_infinity

    fa = np.asarray(keep["features_outputs"], np.float64)
    fb = np.asarray(keep["features_targets"], np.float64)
    n = len(fa)
    out: dict = {"collapse": detect_collapse(outputs, targets)}
    if n >= 40:  # FID∞ needs subsets of at least 20 images
        inf = fid_infinity(fa, fb, seed=seed)
        out.update(fid_inf=inf["fid_inf"], fid_inf_slope=inf["slope"], fid_inf_residual_sd=inf["residual_sd"])
    fs = (cache or FeatureCache(None))(sources, extractor) if extractor is not None else None
    out.update(floors(fb, fs, seed))
    mse = per_image_mse(outputs, targets)
    perc = keep.get("perceptual")
    arrays = {"mse": mse, "psnr": _psnr(mse),
              "perceptual": (np.asarray(perc, np.float64) if perc is not None else np.full(n, np.nan)),
              "feat_out": fa.astype(np.float16), "feat_tgt": fb.astype(np.float16)}
    return out, arrays


def save_scores(path: str | Path, concepts: list[str], source_ids: list[str], arrays: dict, backbone: str) -> Path:
    """Write the per-image arrays (rows in ``concepts``/``source_ids`` order) atomically."""
    from e2gan.io import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, concept=np.asarray(concepts, dtype=str), source_id=np.asarray(source_ids, dtype=str),
             backbone=np.asarray(backbone), **arrays)
    return atomic_write_bytes(Path(path), buf.getvalue())


def load_scores(path: str | Path) -> dict | None:
    """The per-image arrays of a run (None when the run has none: evaluated before they were saved)."""
    path = Path(path)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    out["backbone"] = str(out.get("backbone", ""))
    for k in ("feat_out", "feat_tgt"):
        if k in out:
            out[k] = out[k].astype(np.float64)
    return out


def sample_indices(concepts: list[str], per_concept: int = SAMPLES_PER_CONCEPT) -> list[int]:
    seen: dict[str, int] = {}
    out = []
    for i, c in enumerate(concepts):
        if seen.get(c, 0) < per_concept:
            seen[c] = seen.get(c, 0) + 1
            out.append(i)
    return out


def save_predictions(path: str | Path, pred: dict, per_concept: int = SAMPLES_PER_CONCEPT) -> Path:
    """The first ``per_concept`` test images of each concept: sources, targets, outputs (uint8)."""
    from e2gan.io import atomic_write_bytes

    ix = sample_indices(pred["concepts"], per_concept)
    t = torch.tensor(ix, dtype=torch.long)
    buf = io.BytesIO()
    np.savez_compressed(buf, concept=np.asarray([pred["concepts"][i] for i in ix], dtype=str),
                        source_id=np.asarray([pred["source_ids"][i] for i in ix], dtype=str),
                        sources=pred["sources"][t].numpy(), targets=pred["targets"][t].numpy(),
                        outputs=pred["outputs"][t].numpy())
    return atomic_write_bytes(Path(path), buf.getvalue())


def load_predictions(path: str | Path) -> dict | None:
    path = Path(path)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}

