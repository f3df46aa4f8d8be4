"""Each adaptation method end to end on the micro data, and adapters saved and reloaded."""
import dataclasses
import json

import pytest
import torch
from torch import nn

from e2gan.errors import InputError
from e2gan.nets.lora import load_adapter
from e2gan.nets.registry import load_generator, make_generator
from e2gan.pipeline.adapt import ensure_adapt
from e2gan.pipeline.base import ensure_base
from tests.conftest import micro_config, write_micro_toml


def expected_lora_params(generator: nn.Module, ranks: dict[str, int]) -> int:
    """LoRA parameters from the layer shapes alone (peft: A is r x in [x k x k], B is out x r)."""
    total = 0
    for name, m in generator.named_modules():
        r = ranks.get(name.split(".", 1)[0])
        if r is None:
            continue
        if isinstance(m, nn.Linear):
            total += r * m.in_features + m.out_features * r
        elif isinstance(m, nn.Conv2d):
            assert m.groups == 1, name  # the formula below is for dense convolutions
            total += r * m.in_channels * m.kernel_size[0] * m.kernel_size[1] + m.out_channels * r
    return total


def expected_trainable(cfg, base_run) -> int:
    """What ``cfg.adapt`` implies: LoRA + one new concept's embedding rows, the whole base + those rows,
    or a freshly built generator (scratch: the E2GAN architecture, pix2pix: ResNet-9 at its width)."""
    a = cfg.adapt
    if a.method in ("scratch", "pix2pix"):
        model = (dataclasses.replace(cfg.model, arch="pix2pix", width=a.pix2pix_ngf, n_blocks=a.pix2pix_blocks)
                 if a.method == "pix2pix" else cfg.model)
        return sum(p.numel() for p in make_generator(model, n_concepts=1).parameters())
    base, _ = load_generator(base_run)
    # a learnt table grows one trainable chunk; a CLIP encoder's new tokens are frozen text features
    new_rows = base.concepts.n_tokens * base.concepts.dim if hasattr(base.concepts, "table") else 0
    if a.method == "full":
        return sum(p.numel() for p in base.parameters()) + new_rows
    return expected_lora_params(base, {g: a.ranks.get(g, a.rank) for g in a.groups}) + new_rows


@pytest.fixture(scope="module")
def micro_base(micro_data, micro_runs):
    run, _ = ensure_base(micro_config(), micro_data, micro_runs, progress=False)
    return run


@pytest.mark.slow
@pytest.mark.parametrize("method,stores_whole_generator", [
    ("lora", False), ("full", True), ("scratch", True), ("pix2pix", True)])
def test_each_method_adapts_and_reports(method, stores_whole_generator, micro_data, micro_base, tmp_path):
    cfg = micro_config(adapt={"method": method, "steps": 3, "pix2pix_ngf": 8, "pix2pix_blocks": 2})
    run, result = ensure_adapt(cfg, "hue-60", micro_data, micro_base, tmp_path, progress=False)
    assert result["kind"] == "adapt" and result["method"] == method
    assert list(result["metrics"]["per_concept"]) == ["hue-60"]
    cost = result["cost"]
    assert cost["steps"] == 3
    generator, meta = load_generator(run)
    total = sum(p.numel() for p in generator.parameters())
    if stores_whole_generator:
        assert cost["bytes_stored"] == sum(v.numel() * 4 for v in generator.state_dict().values())
    else:
        assert cost["params_trainable"] < 0.2 * total
        adapter = json.loads((run / "adapter.json").read_text())
        assert cost["bytes_stored"] == adapter["bytes_fp32"] == 4 * adapter["params"]
    if method == "full":
        assert cost["params_trainable"] == total
    # Exactly what the configuration implies, computed from module shapes, not from the run.
    assert cost["params_trainable"] == expected_trainable(cfg, micro_base)
    if method in ("scratch", "pix2pix"):
        assert cost["params_trainable"] == total
    # A second call reuses the finished run.
    again, result2 = ensure_adapt(cfg, "hue-60", micro_data, micro_base, tmp_path, progress=False)
    assert again == run and result2["created"] == result["created"]


@pytest.mark.slow
def test_frozen_discriminator_adapts(micro_data, micro_base, tmp_path):
    """adapt.disc = "frozen": the base's D scores G but never updates; only LoRA and the new row train."""
    cfg = micro_config(adapt={"method": "lora", "steps": 3, "rank": 2, "disc": "frozen"})
    run, result = ensure_adapt(cfg, "hue-60", micro_data, micro_base, tmp_path, progress=False)
    train = json.loads((run / "train.json").read_text())
    assert train["params_discriminator_trainable"] == 0 and train["gan_step"] == 3
    fresh, _ = ensure_adapt(micro_config(adapt={"method": "lora", "steps": 3, "rank": 2}), "hue-60", micro_data,
                            micro_base, tmp_path, progress=False)
    assert train["flops_per_step"] < json.loads((fresh / "train.json").read_text())["flops_per_step"]


def test_adapter_round_trip_and_base_checksum(micro_data, micro_base, tmp_path):
    cfg = micro_config(adapt={"method": "lora", "steps": 3, "rank": 2})
    run, _ = ensure_adapt(cfg, "hue-60", micro_data, micro_base, tmp_path, progress=False)
    merged, meta = load_generator(run)
    adapted, adapter_meta = load_adapter(micro_base, run)
    x = torch.randn(2, 3, 32, 32)
    cid = torch.tensor(adapter_meta["concept_ids"] * 2)
    with torch.no_grad():
        assert (merged(x, cid) - adapted(x, cid)).abs().max() < 1e-5
    assert adapter_meta["ranks"] == {g: 2 for g in ("down", "ds", "tb", "us", "up")}

    # The same adapter on a different base is refused.
    other = tmp_path / "other-base"
    other.mkdir()
    for name in ("model.json", "generator.safetensors"):
        (other / name).write_bytes((micro_base / name).read_bytes())
    g, _ = load_generator(other)
    with torch.no_grad():
        next(g.parameters()).add_(1.0)
    from e2gan.nets.registry import save_generator
    from e2gan.config import ModelConfig
    save_generator(other, g, ModelConfig(**meta["model"]), json.loads((micro_base / "model.json").read_text())["concepts"])
    with pytest.raises(InputError, match="adapter was trained on another base"):
        load_adapter(other, run)


def test_concept_already_in_base_is_refused(micro_data, micro_base, tmp_path):
    cfg = micro_config(adapt={"method": "lora", "steps": 2})
    with pytest.raises(InputError, match="already in the base"):
        ensure_adapt(cfg, "hue-120", micro_data, micro_base, tmp_path, progress=False)


@pytest.mark.slow
def test_lora_adapt_changes_only_adapter_and_embedding(micro_data, micro_runs, micro_base, tmp_path, monkeypatch):
    """`e2gan adapt --method lora` with per-group ranks: the trainable count is the LoRA count of those
    groups/ranks plus one concept's rows, and every base weight of the trained, unmerged model is
    bit-identical to the base run's."""
    import lightning_modules.adaptation as adaptation
    from e2gan.cli import main

    seen: dict = {}
    real_merge = adaptation.merge_lora

    def capture_then_merge(model):  # the unmerged model right after training, before merging
        seen["state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        seen["trainable"] = {n for n, p in model.named_parameters() if p.requires_grad}
        return real_merge(model)

    monkeypatch.setattr(adaptation, "merge_lora", capture_then_merge)
    ranks = {"ds": 2, "tb": 4, "up": 1}
    cfg_path = write_micro_toml(tmp_path / "micro.toml")
    run = tmp_path / "run"
    assert main(["adapt", "--config", str(cfg_path), "--base", str(micro_base), "--concept", "hue-60",
                 "--method", "lora", "--groups", "ds,tb,up", "--ranks", "ds=2,tb=4,up=1", "--steps", "4",
                 "--runs", str(micro_runs), "--run-dir", str(run), "--no-progress"]) == 0
    result = json.loads((run / "result.json").read_text())
    base, _ = load_generator(micro_base)
    base_state = base.state_dict()
    new_rows = base.concepts.n_tokens * base.concepts.dim
    assert result["cost"]["params_trainable"] == expected_lora_params(base, ranks) + new_rows
    assert json.loads((run / "adapter.json").read_text())["ranks"] == ranks

    state, trainable = seen["state"], seen["trainable"]
    assert all("lora_" in n or n == "concepts.tables.1" for n in trainable), trainable
    assert {n.split(".", 1)[0] for n in trainable if "lora_" in n} == set(ranks)
    mapped = {}
    for k, v in state.items():
        if "lora_" not in k:
            mapped[k.replace(".base_layer", "")] = v
    assert set(mapped) == set(base_state) | {"concepts.tables.1"}
    for k, v in base_state.items():
        assert torch.equal(mapped[k], v), f"base weight {k} changed during LoRA training"
    # ... while the adapter and the new concept's rows did learn.
    assert not torch.equal(mapped["concepts.tables.1"], base_state["concepts.tables.0"].mean(0, keepdim=True))
    lora_b = [v for k, v in state.items() if "lora_B" in k]
    assert lora_b and any(v.abs().max() > 0 for v in lora_b)  # B starts at zero


def test_training_config_maps_the_adaptation_budget_onto_the_loop_and_leaves_cfg_alone():
    from e2gan.config import apply_overrides
    from e2gan.presets import get_preset
    from lightning_modules.adaptation import training_config

    cfg = apply_overrides(get_preset("tiny"), {"adapt": {"steps": 7, "max_time_s": 3.0, "lr_d": 5e-4, "seed": 11},
                                               "train": {"steps": 900, "ckpt_every": 200}}, "test")
    before = cfg.to_dict()
    t = training_config(cfg, lr_g=2e-3)
    assert (t.train.steps, t.train.max_time_s, t.train.lr_g, t.train.lr_d, t.train.seed, t.train.ckpt_every) == \
        (7, 3.0, 2e-3, 5e-4, 11, 7)
    assert cfg.to_dict() == before and t.adapt == cfg.adapt and t.train.batch_size == cfg.train.batch_size
    assert training_config(apply_overrides(get_preset("tiny"), {"adapt": {"steps": 5000}}, "test"),
                           1e-3).train.ckpt_every == get_preset("tiny").train.ckpt_every
    assert t.train.precision == cfg.train.precision  # no adapt.precision: the base's
    bf16 = apply_overrides(get_preset("tiny"), {"adapt": {"precision": "bf16-mixed"}}, "test")
    assert training_config(bf16, 1e-3).train.precision == "bf16-mixed" and bf16.train.precision == "32-true"


@pytest.mark.parametrize("method", ["scratch", "pix2pix"])
def test_a_method_trained_at_its_own_rate_or_the_bases(method, micro_data):
    """adapt.lr_g (a sweep's choice) sets the rate of full / scratch / pix2pix; 0 keeps train.lr_g."""
    from e2gan.config import apply_overrides
    from lightning_modules.adaptation import build

    cfg = apply_overrides(micro_config(), {"adapt": {"method": method}, "train": {"lr_g": 7e-4}}, "test")
    assert build(cfg, None, micro_data, "hue-60")["lr_g"] == 7e-4
    own = apply_overrides(cfg, {"adapt": {"lr_g": 3e-3}}, "test")
    assert build(own, None, micro_data, "hue-60")["lr_g"] == 3e-3
    with pytest.raises(InputError, match="adapt.lr_g"):
        apply_overrides(cfg, {"adapt": {"lr_g": -1.0}}, "test")
