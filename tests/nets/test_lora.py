"""LoRA adapters: which parameters train, merge parity, save/load round trip, rank parsing."""
import dataclasses
import json

import pytest
import torch

from e2gan.nets.lora import LoraSpec, add_lora, lora_param_count, merge_lora, parse_ranks, random_ranks
from e2gan.errors import InputError
from e2gan.nets.factory import build_generator

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


# ---------- a new concept on a CLIP-conditioned base (model.concept_encoder = "clip:...") ----------

def _clip_base(tmp_path):
    """A base run (untrained) whose concept tokens come from the tiny random CLIP text model."""
    from e2gan.nets.registry import concept_instructions, make_generator, save_generator
    from tests.conftest import micro_config
    from tests.tiny_pipelines import text_model_dir

    cfg = micro_config(model={"n_tokens": 16, "concept_encoder": f"clip:{text_model_dir()}"},
                       adapt={"method": "lora", "steps": 2, "rank": 2})
    base = ["hue-120", "pixelate"]
    torch.manual_seed(0)
    g = make_generator(cfg.model, len(base), instructions=concept_instructions(cfg.data.concepts_file, base))
    run = tmp_path / "base"
    save_generator(run, g, cfg.model, base, extra={"kind": "base"})
    return cfg, run


def test_clip_base_new_concept_gets_tokens_from_its_instruction(tmp_path):
    from e2gan.nets.registry import concept_instructions
    from e2gan.nets.text_encoder import CLIPConceptEncoder
    from lightning_modules.adaptation import build

    cfg, base_run = _clip_base(tmp_path)
    parts = build(cfg, base_run, tmp_path, "hue-60")
    g, enc = parts["generator"], parts["generator"].concepts
    [instruction] = concept_instructions(cfg.data.concepts_file, ["hue-60"])
    assert isinstance(enc, CLIPConceptEncoder) and parts["concept_id"] == 2 and parts["embedding_init"] == "clip"
    assert enc.instructions[-1] == instruction == "shift every colour's hue by 60 degrees"
    reference = CLIPConceptEncoder(enc.model_name, [instruction], n_tokens=16)
    assert torch.equal(enc.tokens[2], reference.tokens[0])
    # Only LoRA trains: the frozen CLIP concept adds no parameter, learnt or not.
    trainable = {n for n, p in g.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable) and list(enc.parameters()) == []


def test_clip_scratch_encodes_the_new_concept_and_table_base_still_learns_a_row(tmp_path):
    from lightning_modules.adaptation import build

    cfg, _ = _clip_base(tmp_path)
    scratch = build(dataclasses.replace(cfg, adapt=dataclasses.replace(cfg.adapt, method="scratch")),
                    None, tmp_path, "hue-60")
    assert scratch["generator"].concepts.instructions == ["shift every colour's hue by 60 degrees"]
    assert list(scratch["generator"].concepts.parameters()) == []

    from e2gan.nets.registry import make_generator, save_generator

    table_model = dataclasses.replace(cfg.model, concept_encoder="table")
    save_generator(tmp_path / "table-base", make_generator(table_model, 2), table_model, ["hue-120", "pixelate"])
    parts = build(dataclasses.replace(cfg, model=table_model), tmp_path / "table-base", tmp_path, "hue-60")
    g = parts["generator"]
    assert parts["concept_id"] == 2 and len(g.concepts.tables) == 2 and g.concepts.tables[-1].requires_grad
    assert "concept_encoder" not in json.loads((tmp_path / "table-base" / "model.json").read_text())


def test_clip_adapter_stores_its_tokens_and_loads_without_clip(tmp_path, monkeypatch):
    import e2gan.nets.text_encoder as te
    from e2gan.nets.lora import load_adapter, save_adapter
    from lightning_modules.adaptation import build

    cfg, base_run = _clip_base(tmp_path)
    parts = build(cfg, base_run, tmp_path, "hue-60")
    model = parts["generator"]
    _perturb_lora(model)
    meta = save_adapter(tmp_path / "adapter", model, parts["spec"], "hue-60", [parts["concept_id"]],
                        base_run / "generator.safetensors")
    lora = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    assert meta["params"] == lora and meta["cached_values"] == 16 * 32 and meta["concept_encoder"] == "clip"
    assert meta["bytes_fp32"] == 4 * (lora + 16 * 32)
    assert json.loads((tmp_path / "adapter" / "adapter.json").read_text())["instructions"] == [
        "shift every colour's hue by 60 degrees"]
    monkeypatch.setattr(te, "load_clip_text", lambda *a, **k: pytest.fail("CLIP loaded to apply an adapter"))
    adapted, _ = load_adapter(base_run, tmp_path / "adapter")
    x, cid = torch.randn(2, 3, 32, 32), torch.tensor([2, 0])
    with torch.no_grad():
        assert torch.allclose(adapted(x, cid), model.eval()(x, cid), atol=1e-6)
    assert adapted.concepts.instructions[-1] == "shift every colour's hue by 60 degrees"


@pytest.mark.slow
def test_clip_base_adapts_end_to_end(tmp_path, micro_data):

    from e2gan.nets.registry import load_generator
    from lightning_modules.adaptation import adapt

    cfg, base_run = _clip_base(tmp_path)
    summary = adapt(cfg, base_run, micro_data, "hue-60", tmp_path / "adapt", progress=False)
    adapter = json.loads((tmp_path / "adapt" / "adapter.json").read_text())
    assert summary["params_trainable"] == adapter["params"] and summary["embedding_init"] == "clip"
    assert summary["bytes_stored"] == adapter["bytes_fp32"] == 4 * (adapter["params"] + adapter["cached_values"])
    merged, meta = load_generator(tmp_path / "adapt")
    assert meta["concepts"] == ["hue-120", "pixelate", "hue-60"] and merged.concepts.n_concepts == 3
    assert meta["concept_encoder"]["instructions"][-1] == "shift every colour's hue by 60 degrees"


# ---------- merge_adapter: base run + saved adapter -> a plain generator on disk ----------

def _saved_adapter(tmp_path, clip: bool):
    """A base run (untrained, with a config.json at 32 px) and a LoRA adapter for hue-60 saved against it."""
    from e2gan.nets.lora import save_adapter
    from e2gan.nets.registry import make_generator, save_generator
    from lightning_modules.adaptation import build
    from tests.conftest import micro_config

    if clip:
        cfg, base_run = _clip_base(tmp_path)
    else:
        cfg = micro_config(adapt={"method": "lora", "rank": 2})
        torch.manual_seed(0)
        base_run = tmp_path / "base"
        save_generator(base_run, make_generator(cfg.model, 2), cfg.model, ["hue-120", "pixelate"],
                       extra={"kind": "base", "data": "some/data"})
    (base_run / "config.json").write_text(json.dumps({"data": {"resolution": 32}}))
    cfg = dataclasses.replace(cfg, adapt=dataclasses.replace(cfg.adapt, embedding_init="random", disc="fresh"))
    parts = build(cfg, base_run, tmp_path, "hue-60")
    _perturb_lora(parts["generator"])
    save_adapter(tmp_path / "adapter", parts["generator"], parts["spec"], "hue-60", [parts["concept_id"]],
                 base_run / "generator.safetensors")
    return base_run, tmp_path / "adapter"


@pytest.mark.parametrize("clip", [False, True], ids=["table", "clip"])
def test_merge_adapter_writes_a_plain_generator_equal_to_the_adapted_one(clip, tmp_path):
    from e2gan.nets.lora import load_adapter, merge_adapter
    from e2gan.nets.params import count_params
    from e2gan.nets.registry import load_generator

    base, adapter = _saved_adapter(tmp_path, clip)
    base_before = {p.name: p.read_bytes() for p in base.iterdir()}
    r = merge_adapter(base, adapter / "adapter.json")  # the adapter.json file names its folder
    adapter_meta = json.loads((adapter / "adapter.json").read_text())
    assert r["out"] == adapter / "merged" and r["weights"] == adapter / "merged" / "generator.safetensors"
    assert r["concept"] == "hue-60" and r["ranks"] == adapter_meta["ranks"]
    assert r["adapter_params"] == adapter_meta["params"] and r["merge_max_abs_diff"] < 1e-5
    merged, meta = load_generator(r["out"])
    assert r["params"] == count_params(merged) and not any("lora" in k for k in merged.state_dict())
    assert meta["concepts"] == ["hue-120", "pixelate", "hue-60"] and meta["n_base_concepts"] == 2
    assert meta["kind"] == "adapt" and meta["merged"] and meta["method"] == "lora"
    assert meta["base"] == str(base) and meta["adapter"] == str(adapter) and meta["adapter_ranks"] == r["ranks"]
    assert meta["merge_max_abs_diff"] == r["merge_max_abs_diff"]
    assert meta.get("data") == (None if clip else "some/data")
    if clip:
        assert merged.concepts.instructions[-1] == "shift every colour's hue by 60 degrees"
    adapted, _ = load_adapter(base, adapter)
    x, cid = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3)), torch.tensor([2, 1])
    with torch.no_grad():
        assert (merged(x, cid) - adapted(x, cid)).abs().max() < 1e-5
    assert {p.name: p.read_bytes() for p in base.iterdir()} == base_before
    other = merge_adapter(str(base), str(adapter), str(tmp_path / "elsewhere"))  # str paths and --out
    assert other["weights"].read_bytes() == r["weights"].read_bytes()


def test_merge_adapter_refuses_bad_folders_in_one_line(tmp_path):
    from e2gan.nets.lora import merge_adapter

    base, adapter = _saved_adapter(tmp_path, clip=False)
    with pytest.raises(InputError) as e:
        merge_adapter(tmp_path / "nowhere", adapter)
    assert str(e.value).startswith(f"no trained generator ({tmp_path / 'nowhere'}): a base run holding model.json")
    with pytest.raises(InputError) as e:
        merge_adapter(base, base)
    assert str(e.value).startswith(f"no adapter ({base}): a LoRA adapt run (or folder) holding adapter.json")
    for target in (base, adapter):
        with pytest.raises(InputError) as e:
            merge_adapter(base, adapter, target)
        assert str(e.value) == f"output folder {target} (--out): a folder other than the base and adapter runs"
    assert not (adapter / "merged").exists()
