"""The collapse detector on constant, input-independent and normal outputs."""
import numpy as np
import torch

from e2gan.metrics.collapse import detect_collapse, same_across_seeds


def _targets(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, 16, 16, generator=g) * 255).to(torch.uint8)


def test_blank_page_is_near_constant():
    t = _targets()
    res = detect_collapse(torch.full_like(t, 255), t)
    assert res["collapsed"] and res["pixel_std_ratio"] == 0.0
    assert any("near-constant" in b for b in res["by"])


def test_one_textured_picture_for_every_input_is_flagged_as_such():
    t = _targets()
    same = t[:1].expand_as(t).clone()  # textured, so not near-constant, but identical for every input
    res = detect_collapse(same, t)
    assert res["collapsed"] and res["input_std_ratio"] == 0.0
    assert res["pixel_std_ratio"] > 0.5
    assert [b for b in res["by"] if "every input" in b] and not [b for b in res["by"] if "near-constant" in b]


def test_normal_outputs_are_not_flagged():
    t = _targets()
    noisy = (t.float() + torch.randn(t.shape, generator=torch.Generator().manual_seed(1)) * 20).clamp(0, 255)
    res = detect_collapse(noisy.to(torch.uint8), t)
    assert not res["collapsed"] and res["by"] == []
    assert 0.8 < res["pixel_std_ratio"] < 1.2 and 0.8 < res["input_std_ratio"] < 1.2


def test_same_outputs_across_seeds():
    r = np.random.default_rng(0)
    f = r.standard_normal((20, 8))
    feats = {0: f, 1: f + 1e-6, 2: r.standard_normal((20, 8))}
    assert same_across_seeds(feats) == {0: [1], 1: [0]}
    assert same_across_seeds({0: f, 1: r.standard_normal((20, 8))}) == {}
