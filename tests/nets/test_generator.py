import pytest
import torch
from torch import nn

from e2gan.errors import InputError
from e2gan.metrics.cost import count_macs
from e2gan.nets.params import count_params
from e2gan.nets.conditioning import ConceptEmbedding
from e2gan.nets.factory import GENERATOR_ARCHS, build_generator, init_weights
from e2gan.nets.generator import CRUCIAL_GROUPS, LAYER_GROUPS, PARAM_GROUPS, E2GANGenerator
from e2gan.nets.pix2pix import ResnetGenerator


def tiny(**kw):
    torch.manual_seed(0)
    return build_generator("e2gan", **{"n_concepts": 3, "width": 8, **kw})


@pytest.mark.parametrize("size", [32, 64])
def test_output_shape_and_range(size):
    g = tiny()
    y = g(torch.randn(2, 3, size, size).clamp(-1, 1), torch.tensor([0, 2]))
    assert y.shape == (2, 3, size, size)
    assert torch.isfinite(y).all() and y.abs().max() <= 1


def test_non_square_input():
    y = tiny()(torch.zeros(1, 3, 32, 48), torch.tensor([1]))
    assert y.shape == (1, 3, 32, 48)


@pytest.mark.parametrize("norm", ["instance", "batch", "group", "none"])
def test_every_norm_runs(norm):
    g = tiny(norm=norm)
    y = g(torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))
    assert y.shape == (2, 3, 32, 32)
    norm_types = {type(m) for m in g.modules()} & {nn.InstanceNorm2d, nn.BatchNorm2d, nn.GroupNorm}
    expected = {"instance": {nn.InstanceNorm2d}, "batch": {nn.BatchNorm2d}, "group": {nn.GroupNorm}}
    assert norm_types == expected.get(norm, set())


def test_unknown_norm_lists_choices():
    with pytest.raises(InputError, match="instance, batch, group, none"):
        E2GANGenerator(n_concepts=2, width=8, norm="layer")


def test_heads_must_divide_transformer_width():
    with pytest.raises(InputError, match="divisor of the transformer width 32"):
        E2GANGenerator(n_concepts=2, width=8, attn_heads=5)


def test_size_not_divisible_by_8():
    with pytest.raises(InputError, match="divisible by 8") as info:
        tiny()(torch.zeros(1, 3, 60, 64), torch.tensor([0]))
    assert "60x64" in str(info.value)


def test_concept_changes_output():
    g = tiny().eval()
    x = torch.randn(1, 3, 32, 32).repeat(2, 1, 1, 1)
    y = g(x, torch.tensor([0, 1]))
    assert (y[0] - y[1]).abs().max() > 1e-4
    assert torch.allclose(g(x[:1], torch.tensor([0])), y[:1], atol=1e-5)  # batch-independent


def test_no_transposed_convs():
    g = tiny()
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in g.modules())
    assert sum(isinstance(m, nn.Upsample) for m in g.modules()) == 3  # us + two in up


def test_groups_cover_every_parameter_once():
    g = tiny()
    names = [n for n, _ in g.named_parameters()]
    by_group = {grp: [n for n in names if g.group_of(n) == grp] for grp in PARAM_GROUPS}
    assert sorted(sum(by_group.values(), [])) == sorted(names)
    assert by_group["concepts"] == ["concepts.tables.0"]
    assert [n for n, _ in g.named_children()] == list(LAYER_GROUPS) + ["concepts"]
    assert sum(count_params(getattr(g, grp)) for grp in PARAM_GROUPS) == count_params(g)


def test_group_modules_are_existing_conv_or_linear_leaves():
    g = tiny()
    modules = dict(g.named_modules())
    targets = [n for grp in LAYER_GROUPS for n in g.group_modules(grp)]
    assert len(targets) == len(set(targets))
    assert all(isinstance(modules[n], (nn.Conv2d, nn.Linear)) for n in targets)
    every = {n for n, m in modules.items() if isinstance(m, (nn.Conv2d, nn.Linear))}
    assert set(targets) == every
    # peft matches a target by name suffix: no target may be the tail of another module's name
    assert not [(t, n) for t in targets for n in modules if n != t and n.endswith("." + t)]
    assert set(CRUCIAL_GROUPS) < set(LAYER_GROUPS)
    assert g.group_modules("tb")[:4] == [f"tb.self_attn.to_{p}" for p in ("q", "k", "v", "out")]
    with pytest.raises(InputError, match="down, rb1"):
        g.group_modules("concepts")


def test_block_counts_rename_resnet_groups():
    g = tiny(n_blocks_before=1, n_blocks_after=2)
    assert g.layer_groups == ("down", "rb1", "ds", "tb", "us", "rb2", "rb3", "up")
    assert g(torch.zeros(1, 3, 32, 32), torch.tensor([0])).shape == (1, 3, 32, 32)


def test_param_counts_match_calibration():
    assert 0.38e6 < count_params(build_generator("e2gan", n_concepts=8, width=16)) < 0.45e6
    assert 6.0e6 < count_params(E2GANGenerator(n_concepts=8, width=64)) < 7.0e6


def test_w64_macs_at_256():
    with torch.device("meta"):
        g = E2GANGenerator(n_concepts=8, width=64)
        macs = count_macs(g, (torch.zeros(1, 3, 256, 256), torch.zeros(1, dtype=torch.long)))
    assert 30e9 < macs["total"] < 34e9
    assert macs["by_module"]["rb1"] == 256 * 256 * 9 * 2 * 64 * 64  # two 3x3 256->256 convs at 64²
    assert sum(macs["by_module"].values()) == macs["total"]


def test_custom_concept_encoder_sets_context_width():
    enc = ConceptEmbedding(5, n_tokens=2, dim=24)
    g = E2GANGenerator(n_concepts=5, width=8, concept_encoder=enc)
    assert g.concepts is enc and g.tb.cross_attn.to_k.in_features == 24
    assert g(torch.zeros(2, 3, 16, 16), torch.tensor([3, 4])).shape == (2, 3, 16, 16)


def test_concept_embedding_add_concepts():
    torch.manual_seed(0)
    emb = ConceptEmbedding(3, n_tokens=2, dim=5)
    assert emb(torch.tensor([0, 2, 2])).shape == (3, 2, 5)
    old = emb.table().detach().clone()
    assert emb.add_concepts(2, init="mean") == [3, 4]
    assert torch.allclose(emb.table()[3], old.mean(0)) and torch.allclose(emb.table()[4], old.mean(0))
    assert emb.add_concepts(1, init=1) == [5]
    assert torch.equal(emb.table()[5], old[1])
    assert emb.add_concepts(1) == [6] and emb.n_concepts == 7
    assert torch.equal(emb.table()[:3], old)
    with pytest.raises(InputError, match="'random', 'mean'"):
        emb.add_concepts(1, init="nearest")
    with pytest.raises(InputError):
        emb.add_concepts(1, init=99)


def test_new_concept_trains_alone_when_base_is_frozen():
    g = tiny()
    [new] = g.concepts.add_concepts(1, init="mean")
    g.requires_grad_(False)
    g.concepts.tables[-1].requires_grad_(True)
    g(torch.randn(1, 3, 16, 16), torch.tensor([new])).square().mean().backward()
    assert new == 3 and g.concepts.tables[-1].grad.abs().sum() > 0
    assert [n for n, p in g.named_parameters() if p.requires_grad] == ["concepts.tables.1"]


def test_checkpoint_with_added_concepts_loads_into_base_model():
    g = tiny()
    g.concepts.add_concepts(2, init=0)
    fresh = tiny()
    fresh.load_state_dict(g.state_dict())
    assert fresh.concepts.n_concepts == 5
    assert torch.equal(fresh.concepts.table(), g.concepts.table())
    x = torch.randn(1, 3, 16, 16)
    assert torch.equal(fresh(x, torch.tensor([4])), g(x, torch.tensor([4])))


def test_init_weights_is_deterministic_and_pix2pix_scaled():
    a, b = tiny(), tiny()
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    w = init_weights(nn.Conv2d(64, 64, 3), gain=0.02).weight
    assert abs(w.std().item() - 0.02) < 0.002


def test_build_generator_archs():
    kw = {"n_concepts": 4, "width": 8, "n_blocks": 2}
    assert isinstance(build_generator("pix2pix", **kw), ResnetGenerator)
    up = build_generator("pix2pix-resize", **kw).up
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in up.modules())
    assert GENERATOR_ARCHS == ("e2gan", "pix2pix", "pix2pix-resize")
    with pytest.raises(InputError, match="e2gan, pix2pix, pix2pix-resize"):
        build_generator("unet", n_concepts=2)
