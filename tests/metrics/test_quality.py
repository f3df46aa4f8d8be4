"""Quality metrics on real photo crops with the offline EfficientNet-Lite0 backbone."""
import math

import numpy as np
import pytest
import skimage.data
import torch
import torchvision.transforms.functional as TF

from e2gan.errors import InputError
from e2gan.metrics import quality as q
from e2gan.metrics.features import get_backbone

N = 40  # images per set: enough for stable orderings, small enough for a fast test
BLURS = (0.75, 1.5, 3.0)  # Gaussian sigmas, increasingly far from the reference distribution


def _crops(n: int, seed: int) -> torch.Tensor:
    """n 64² crops (downsampled 2×) of four scikit-image photos."""
    rng = np.random.default_rng(seed)
    photos = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee(), skimage.data.rocket()]
    out = []
    for i in range(n):
        p = photos[i % 4]
        y, x = rng.integers(0, p.shape[0] - 128), rng.integers(0, p.shape[1] - 128)
        out.append(p[y:y + 128:2, x:x + 128:2])
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    return TF.gaussian_blur(x, 9, sigma)


@pytest.fixture(scope="module")
def feats():
    """Features of a reference set, an independent set from the same photos, and blurred copies of it."""
    bb = get_backbone("effnet-lite0")
    ref, other = _crops(N, seed=0), _crops(N, seed=1)
    return {"ref": bb(ref), "other": bb(other), **{s: bb(_blur(other, s)) for s in BLURS}}


def test_fid_of_a_set_with_itself_is_zero_and_shifts_are_not(feats):
    shifted = q.fid_from_features(feats["ref"], feats[BLURS[0]])
    assert shifted > 10
    assert q.fid_from_features(feats["ref"], feats["ref"]) < 1e-3 * shifted


def test_fid_and_kid_agree_in_sign_and_order_on_increasing_shifts(feats):
    fids = [q.fid_from_features(feats["ref"], feats[s]) for s in BLURS]
    kids = [q.kid_from_features(feats["ref"], feats[s])[0] for s in BLURS]
    assert fids == sorted(fids) and len(set(fids)) == 3 and fids[0] > 0
    assert kids == sorted(kids) and len(set(kids)) == 3 and kids[0] > 0
    # Same-distribution sets sit below every shifted one on both metrics.
    assert q.fid_from_features(feats["ref"], feats["other"]) < fids[0]
    assert q.kid_from_features(feats["ref"], feats["other"])[0] < kids[0]


def test_fast_fid_equals_clean_fids_frechet_distance():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((80, 256)) ** 2, rng.standard_normal((80, 256)) ** 2 * 1.2 + 0.1
    exact = q.fid_from_features(a, b, method="cleanfid")
    assert exact > 1
    assert q.fid_from_features(a, b) == pytest.approx(exact, rel=1e-7)
    with pytest.raises(InputError):
        q.fid_from_features(a, b, method="pytorch-fid")


def test_fid_with_fewer_images_than_dimensions_equals_the_full_eigendecomposition():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((12, 300)) ** 2, rng.standard_normal((9, 300)) * 1.5 + 0.3
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    d = a.mean(0) - b.mean(0)
    eig = np.linalg.eigvals(s1 @ s2).real
    eig = eig[eig > 1e-9 * eig.max()]  # rank <= 8: the other 292 are round-off whose square roots add up
    full = d @ d + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(eig).sum()
    assert len(eig) == len(b) - 1
    assert q.fid_from_features(a, b) == pytest.approx(full, rel=1e-9)


def test_kid_subset_size_is_clamped_and_seeded(feats):
    a, b = feats["ref"], feats[BLURS[1]]
    assert q.effective_kid_subset_size(N, N, 1000) == N
    mean, std = q.kid_from_features(a, b, num_subsets=20, subset_size=1000)
    assert std is None and mean > 0  # clamped to N: every subset is the whole set, no spread measured
    state = np.random.get_state()
    m32, s32 = q.kid_from_features(a, b, num_subsets=20, subset_size=32, seed=3)
    assert s32 > 0 and q.kid_from_features(a, b, num_subsets=20, subset_size=32, seed=3) == (m32, s32)
    assert np.array_equal(np.random.get_state()[1], state[1])  # global RNG left alone
    with pytest.raises(InputError):
        q.kid_from_features(a[:1], b)


def test_set_psnr_by_hand():
    out = torch.zeros(1, 1, 2, 2)
    tgt = out.clone()
    tgt[0, 0, 0, 0] = 0.5  # MSE = 0.25 / 4 = 1/16 -> 10*log10(16)
    assert q.set_psnr(out, tgt) == pytest.approx(10 * math.log10(16))
    # Set level: one unchanged image does not make the set PSNR infinite (per-image mean would).
    pair_out, pair_tgt = torch.cat([out, out]), torch.cat([out, tgt])
    assert q.set_psnr(pair_out, pair_tgt) == pytest.approx(10 * math.log10(32))
    assert q.set_psnr(out, out) == math.inf
    u8 = torch.tensor([[[[0, 255]]]], dtype=torch.uint8)
    assert q.set_psnr(u8, torch.zeros_like(u8)) == pytest.approx(10 * math.log10(2))
    with pytest.raises(InputError):
        q.set_psnr(out, torch.zeros(2, 1, 2, 2))


def test_ssim_and_proxy_perceptual_are_zero_distance_for_identical_and_grow_with_blur():
    x = _crops(8, seed=2)
    assert q.mean_ssim(x, x) == pytest.approx(1.0, abs=1e-6)
    assert q.proxy_perceptual_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    ssims = [q.mean_ssim(x, _blur(x, s)) for s in BLURS]
    proxies = [q.proxy_perceptual_distance(x, _blur(x, s)) for s in BLURS]
    assert ssims == sorted(ssims, reverse=True) and ssims[0] < 1
    assert proxies == sorted(proxies) and proxies[0] > 0.01


def test_evaluate_images_reports_metrics_and_protocol(monkeypatch, tmp_path):
    monkeypatch.setenv("E2GAN_WEIGHTS", str(tmp_path))
    monkeypatch.setattr(q, "lpips_available", lambda net="alex": False)
    targets = _crops(16, seed=3)
    outputs = _blur(targets, 1.5)
    r = q.evaluate_images(outputs, targets, reference="teacher/test")
    m, p = r["metrics"], r["protocol"]
    assert set(m) == {"fid", "kid_mean", "kid_std", "psnr", "ssim", "perceptual"}
    assert m["fid"] > 0 and m["kid_mean"] > 0 and 10 < m["psnr"] < 40 and 0 < m["ssim"] < 1
    assert m["psnr"] == pytest.approx(q.set_psnr(outputs, targets))
    assert p["perceptual"] == "effnet-lite0-perceptual (proxy)"
    assert p["backbone"]["name"] == "effnet-lite0" and p["fid_mode"] == "clean"
    assert (p["n"], p["resolution"], p["reference_set"]) == (16, 64, "teacher/test")
    assert (p["kid_subset_size"], p["kid_subset_size_requested"], p["kid_subsets"]) == (16, 1000, 1)
    with pytest.raises(InputError, match="uint8"):
        q.evaluate_images(outputs.float(), targets)
    with pytest.raises(InputError, match="perceptual"):
        q.evaluate_images(outputs, targets, perceptual="dists")


def _fake_alexnet_features(folder):
    """Random-init AlexNet conv weights under torchvision's file name (LPIPS only uses `features`)."""
    import torchvision

    torch.manual_seed(0)
    state = {k: v for k, v in torchvision.models.alexnet(weights=None).state_dict().items()
             if k.startswith("features.")}
    torch.save(state, folder / "alexnet-owt-7be5be79.pth")
    return state


def test_lpips_loads_trunk_from_found_file_and_linear_layers_from_package(monkeypatch, tmp_path):
    monkeypatch.setenv("E2GAN_WEIGHTS", str(tmp_path))
    state = _fake_alexnet_features(tmp_path)
    x = _crops(4, seed=4)
    assert q.lpips_available("alex")
    assert q.lpips_distance(x, x) == pytest.approx(0.0, abs=1e-7)
    assert q.lpips_distance(x, _blur(x, 3.0)) > q.lpips_distance(x, _blur(x, 0.75)) > 0
    model = q._lpips_model("alex", str(tmp_path / "alexnet-owt-7be5be79.pth"), "cpu")
    assert torch.equal(model.net.slice1[0].weight, state["features.0.weight"])
    assert torch.equal(getattr(model.net.slice5, "10").weight, state["features.10.weight"])
    shipped = torch.load(q.lpips_linear_weights("alex"), map_location="cpu", weights_only=True)
    assert torch.equal(model.lin0.model[1].weight, shipped["lin0.model.1.weight"])
    r = q.evaluate_images(x, _blur(x, 1.5))  # 'auto' now picks LPIPS
    assert r["protocol"]["perceptual"] == "lpips-alex" and r["metrics"]["perceptual"] > 0


def test_proxy_reuses_the_targets_taps_bit_for_bit_and_only_for_the_same_targets(monkeypatch):
    """The targets' taps are remembered per process: a second scoring against the same targets runs
    the backbone on the outputs only, and gives the very same per-image distances."""
    monkeypatch.setattr(q, "_TAP_MEMO", type(q._TAP_MEMO)())
    targets = _crops(40, seed=4)  # two chunks of 32 and 8
    outputs = _blur(targets, 1.5)
    net = q.load_effnet_lite0("cpu")
    calls = []
    real = type(net).taps
    monkeypatch.setattr(type(net), "taps", lambda self, x, *a: calls.append(len(x)) or real(self, x, *a))
    cold = q.proxy_per_image(outputs, targets)
    assert sorted(calls) == [8, 8, 32, 32]
    warm = q.proxy_per_image(outputs, targets)
    assert torch.equal(cold, warm) and sorted(calls[4:]) == [8, 32]  # outputs only
    edited = targets.clone()
    edited[0, 0, 0, 0] ^= 1  # one pixel of one target
    q.proxy_per_image(outputs, edited)
    assert sorted(calls[6:]) == [8, 32, 32]  # its chunk is new, the other chunk is remembered
    monkeypatch.setattr(q, "TAP_MEMO_BYTES", 0)  # past the bound a new entry drops every older one
    q.proxy_per_image(outputs[:8], edited[:8] ^ 1)
    assert len(q._TAP_MEMO) == 1
