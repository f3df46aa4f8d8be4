"""LoRA layers run on their merged weight (one conv instead of peft's three): the same function of x,
A and B up to float rounding, in outputs, gradients and a few training steps; peft's path otherwise."""
import copy
import pickle

import pytest
import torch

from e2gan.nets.lora import LoraSpec, add_lora, merge_lora, use_merged_weight_forward
from e2gan.nets.factory import build_generator

CRUCIAL = ("down", "ds", "tb", "us", "up")
# Tolerances: fp32 rounding of conv(x, W + s·B·A) against conv(x, W) + s·conv(conv(x, A), B).
OUT_ATOL, GRAD_RTOL, STEPS_ATOL = 1e-5, 1e-4, 5e-5   # steps: 3 SGD steps at lr 0.01 move weights ~3e-3


def _pair(ranks=None, dropout=0.0):
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        g = build_generator("e2gan", n_concepts=3, width=8, attn_heads=2, n_tokens=2)
        g.concepts.add_concepts(1, "mean")
        m = add_lora(g, LoraSpec(ranks or {k: 2 for k in CRUCIAL}, dropout=dropout))
        m.concepts.tables[-1].requires_grad_(True)
        with torch.no_grad():   # B starts at zero: give the low-rank update a value to compare
            for name, p in m.named_parameters():
                if "lora_B" in name:
                    p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(len(name))) * 0.05)
        models.append(m)
    return models


def _batch():
    gen = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1, torch.tensor([3, 3])


def test_outputs_and_gradients_match_peft_within_float_tolerance():
    peft_model, merged = _pair({"down": 2, "ds": 1, "tb": 3, "us": 1, "up": 4})
    assert use_merged_weight_forward(merged) == 18
    x, c = _batch()
    a, b = peft_model(x, c), merged(x, c)
    assert torch.allclose(a, b, atol=OUT_ATOL)
    a.square().mean().backward()
    b.square().mean().backward()
    grads = {n: p.grad for n, p in peft_model.named_parameters() if p.requires_grad}
    for n, p in merged.named_parameters():
        if p.requires_grad:
            assert torch.allclose(p.grad, grads[n], rtol=GRAD_RTOL, atol=1e-7), n
    assert all(not p.requires_grad for n, p in merged.named_parameters() if "base_layer" in n)


def test_a_few_training_steps_stay_within_tolerance():
    # SGD on a smooth loss: Adam divides by the gradient's own scale, so on entries whose gradient is
    # ~0 it turns rounding noise into lr-sized steps, and an L1 loss flips sign(y) where |y| is below
    # the rounding; any change of summation order (or of thread count) does the same to either.
    models = _pair()
    use_merged_weight_forward(models[1])
    x, c = _batch()
    target = torch.zeros_like(x)
    for m in models:
        opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.01)
        for _ in range(3):
            loss = (m(x, c) - target).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    ref = dict(models[0].named_parameters())
    for n, p in models[1].named_parameters():
        assert torch.allclose(p, ref[n], atol=STEPS_ATOL), n


def test_disabled_merged_or_dropout_take_peft_forward_and_copies_keep_working():
    peft_model, merged = _pair()
    use_merged_weight_forward(merged)
    x, c = _batch()
    with torch.no_grad():
        with merged.disable_adapter() if hasattr(merged, "disable_adapter") else _disabled(merged):
            off = merged(x, c)
        base = _base_output(x, c)
        assert torch.allclose(off, base, atol=1e-6)   # disabled: the base alone, through peft's path
        expected = peft_model(x, c)
        for m in (copy.deepcopy(merged), pickle.loads(pickle.dumps(merged))):
            assert torch.allclose(m(x, c), expected, atol=OUT_ATOL)
        assert torch.allclose(merge_lora(copy.deepcopy(merged))(x, c), expected, atol=OUT_ATOL)
    drop_peft, drop = _pair(dropout=0.5)
    use_merged_weight_forward(drop)
    drop_peft.eval(), drop.eval()   # eval: dropout off, but it is not an Identity, so peft's path runs
    with torch.no_grad():
        assert torch.equal(drop(x, c), drop_peft(x, c))
    assert use_merged_weight_forward(merged, enable=False) == 18 and "forward" not in vars(merged.ds[0])


class _disabled:
    def __init__(self, model):
        from peft.tuners.lora import LoraLayer

        self.layers = [m for m in model.modules() if isinstance(m, LoraLayer)]

    def __enter__(self):
        for m in self.layers:
            m.enable_adapters(False)

    def __exit__(self, *exc):
        for m in self.layers:
            m.enable_adapters(True)


def _base_output(x, c):
    torch.manual_seed(0)
    g = build_generator("e2gan", n_concepts=3, width=8, attn_heads=2, n_tokens=2)
    g.concepts.add_concepts(1, "mean")
    return g(x, c)
