"""LoRA adapters: which parameters train, merge parity, save/load round trip, rank parsing."""
import pytest
import torch

from e2gan.adapt import LoraSpec, add_lora, lora_param_count, merge_lora, parse_ranks, random_ranks
from e2gan.errors import InputError
from e2gan.nets import build_generator

CRUCIAL = ("down", "ds", "tb", "us", "up")
GROUPS = ("down", "rb1", "rb2", "ds", "tb", "us", "rb3", "up")


def _generator(seed=0):
    torch.manual_seed(seed)
    return build_generator("e2gan", n_concepts=3, width=8, attn_heads=2, n_tokens=2)


def _perturb_lora(model, std=0.05):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, std)


def test_lora_trains_only_adapter_and_new_embedding():
    g = _generator()
    before = {k: v.clone() for k, v in g.state_dict().items()}
    g.concepts.add_concepts(1, "mean")
    model = add_lora(g, LoraSpec({k: 2 for k in CRUCIAL}))
    model.concepts.tables[-1].requires_grad_(True)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    x = torch.randn(2, 3, 32, 32)
    for _ in range(3):
        loss = model(x, torch.tensor([3, 3])).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = model.state_dict()
    for key, value in before.items():
        peft_key = key if key in after else key.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        assert torch.equal(after[peft_key], value), f"base weight {key} changed"
    changed = {k for k, v in after.items() if "lora_B" in k and v.abs().sum() > 0}
    assert changed, "LoRA B matrices should have moved"
    assert not torch.equal(after["concepts.tables.1"], before["concepts.tables.0"].mean(0, keepdim=True))


def test_trainable_count_matches_shapes():
    g = _generator()
    ranks = {"down": 1, "tb": 4, "up": 2}
    model = add_lora(g, LoraSpec(ranks))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == lora_param_count(_generator(), ranks) > 0


def test_rank_pattern_gives_each_group_its_rank():
    model = add_lora(_generator(), LoraSpec({"down": 1, "tb": 4}))
    assert model.get_submodule("down.1").lora_A["default"].weight.shape[0] == 1
    assert model.get_submodule("tb.self_attn.to_q").lora_A["default"].weight.shape[0] == 4


def test_merge_matches_unmerged_within_1e_5():
    g = _generator()
    model = add_lora(g, LoraSpec({k: 4 for k in CRUCIAL}))
    _perturb_lora(model)
    x, c = torch.randn(2, 3, 32, 32), torch.tensor([0, 2])
    with torch.no_grad():
        expected = model.eval()(x, c)
        merged = merge_lora(model)
        got = merged(x, c)
    assert (expected - got).abs().max() < 1e-5
    assert not any("lora" in k for k in merged.state_dict())


@pytest.mark.parametrize("ranks,expected", [
    ("4", {"down": 4, "tb": 4}),
    ("1,8", {"down": 1, "tb": 8}),
    ("down=2,tb=16", {"down": 2, "tb": 16}),
    (3, {"down": 3, "tb": 3}),
])
def test_parse_ranks(ranks, expected):
    assert parse_ranks(["down", "tb"], ranks, GROUPS) == expected


@pytest.mark.parametrize("groups,ranks,message", [
    (["down", "neck"], 4, r"unknown layer group\(s\) \['neck'\]"),
    (["down"], "0", r"rank 0 \(--ranks\): a positive integer"),
    (["down"], "-2", r"a positive integer"),
    (["down", "tb"], "1,2,3", r"3 ranks for 2 groups"),
    (["down"], "x", r"rank 'x'"),
])
def test_parse_ranks_rejects(groups, ranks, message):
    with pytest.raises(InputError, match=message):
        parse_ranks(groups, ranks, GROUPS)


def test_random_ranks_is_seeded_and_near_budget():
    g = _generator()
    budget = lora_param_count(g, {k: 4 for k in CRUCIAL})
    a, b = random_ranks(list(CRUCIAL), budget, g, seed=1), random_ranks(list(CRUCIAL), budget, g, seed=1)
    assert a == b and set(a) == set(CRUCIAL)
    assert abs(lora_param_count(g, a) - budget) < 0.5 * budget
