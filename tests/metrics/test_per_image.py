"""Per-image scores and the shared feature cache: cached features give exactly the uncached numbers."""
import numpy as np
import pytest
import torch

from e2gan.metrics.evaluation import score
from e2gan.metrics.per_image import load_scores, save_scores


def _pred(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    tg = (torch.rand(n, 3, 32, 32, generator=g) * 255).to(torch.uint8)
    out = (tg.float() * 0.7 + 30).clamp(0, 255).to(torch.uint8)
    return {"sources": tg.flip(0), "targets": tg, "outputs": out, "concepts": ["a"] * (n - 8) + ["b"] * 8,  # FID∞ needs 40+ images: only "a" has it
            "source_ids": [f"s{i}" for i in range(n)], "instructions": {}}


def test_cached_features_give_the_same_scores(tmp_path):
    pred = _pred()
    plain = score(pred, clip=None, perceptual="proxy", per_image=True)
    first = score(pred, clip=None, perceptual="proxy", per_image=True, feature_cache=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 4  # targets and sources of two concepts
    again = score(pred, clip=None, perceptual="proxy", per_image=True, feature_cache=tmp_path / "cache")
    for res in (first, again):
        for c in ("a", "b"):
            for k, v in plain["per_concept"][c].items():
                want = v if v is None else pytest.approx(v, rel=1e-12, abs=1e-12)  # None: not measured
                assert res["per_concept"][c][k] == want, (c, k)
    m = plain["per_concept"]["a"]
    assert {"fid_inf", "fid_inf_slope", "floor_identity_fid", "floor_halves_fid", "floor_identity_kid"} <= set(m)
    assert "fid_inf" not in plain["per_concept"]["b"] and "floor_halves_fid" in plain["per_concept"]["b"]
    assert not plain["collapse"]["collapsed"]
    assert plain["per_image"]["source_id"][:2] == ["s0", "s1"] and len(plain["per_image"]["mse"]) == 48


def test_scores_file_round_trip(tmp_path):
    arr = {"mse": np.array([0.1, 0.2]), "psnr": np.array([10.0, 7.0]), "perceptual": np.array([np.nan, 0.1]),
           "feat_out": np.ones((2, 3), np.float16), "feat_tgt": np.zeros((2, 3), np.float16)}
    save_scores(tmp_path / "scores.npz", ["a", "a"], ["x", "y"], arr, "effnet-lite0")
    z = load_scores(tmp_path / "scores.npz")
    assert z["source_id"].tolist() == ["x", "y"] and z["backbone"] == "effnet-lite0"
    assert z["feat_out"].dtype == np.float64 and np.isnan(z["perceptual"][0])
    assert load_scores(tmp_path / "missing.npz") is None


class _Counting:
    """An extractor stand-in: mean colour features, counts its calls."""

    def __init__(self, sha="abc", path="/a/w.pth"):
        self.calls, self.sha, self.path = 0, sha, path

    def describe(self):
        return {"name": "fake", "weights": self.path, "weights_sha256": self.sha, "resolution": 8}

    def __call__(self, images):
        self.calls += 1
        return images.double().mean((2, 3))


def test_feature_cache_hits_on_equal_images_and_weights_only(tmp_path):
    from e2gan.metrics.per_image import FeatureCache

    cache = FeatureCache(tmp_path)
    imgs = _pred()["targets"]
    ex = _Counting()
    first = cache(imgs, ex)
    again = FeatureCache(tmp_path)(imgs.clone(), ex)  # a new process's cache, an equal tensor
    assert ex.calls == 1 and np.array_equal(first, again)
    moved = _Counting(path="/elsewhere/w.pth")  # the same weights file installed elsewhere
    cache(imgs, moved)
    assert moved.calls == 0
    other = _Counting(sha="def")  # other weights: never a stale hit
    cache(imgs, other)
    changed = imgs.clone()
    changed[0, 0, 0, 0] ^= 1  # one pixel
    cache(changed, ex)
    assert other.calls == 1 and ex.calls == 2 and len(list(tmp_path.glob("*.npy"))) == 3


def test_feature_cache_that_cannot_be_written_still_returns_the_features(tmp_path, monkeypatch):
    import errno

    import e2gan.io
    from e2gan.metrics.per_image import FeatureCache

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(e2gan.io.os, "replace", full)
    imgs = _pred()["targets"]
    ex = _Counting()
    feats = FeatureCache(tmp_path / "cache")(imgs, ex)
    assert ex.calls == 1 and np.array_equal(feats, np.asarray(ex(imgs), np.float64))
    assert not list((tmp_path / "cache").glob("*.npy"))  # nothing half-written left behind


def test_floors_are_computed_once_per_concept_and_equal_a_fresh_computation(monkeypatch):
    """Every run of a concept shares its targets and sources, so their floors are kept per process;
    a hit must be the very numbers a fresh computation gives, and other features must miss."""
    from e2gan.metrics import per_image

    rng = np.random.default_rng(0)
    fb, fs = rng.normal(size=(40, 8)), rng.normal(size=(40, 8)) + 0.5
    per_image._FLOORS.clear()
    first = per_image.floors(fb, fs)
    assert set(first) == {"floor_halves_fid", "floor_halves_kid", "floor_identity_fid", "floor_identity_kid"}
    assert first["floor_identity_fid"] > first["floor_halves_fid"]  # shifted sources: farther than halves
    monkeypatch.setattr("e2gan.metrics.frechet.frechet_distance", lambda *a: pytest.fail("recomputed"))
    assert per_image.floors(fb.copy(), fs.copy()) == first
    monkeypatch.undo()
    other = per_image.floors(fb, fs + 1.0)
    assert other["floor_identity_fid"] != first["floor_identity_fid"]
    assert other["floor_halves_fid"] == first["floor_halves_fid"]  # the same targets
    per_image._FLOORS.clear()
    assert per_image.floors(fb, fs) == first and "floor_identity_fid" not in per_image.floors(fb, None)
