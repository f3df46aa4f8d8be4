"""Each adaptation method end to end on the micro data, and adapters saved and reloaded."""
import json

import pytest
import torch

from e2gan.adapt import load_adapter
from e2gan.errors import InputError
from e2gan.models import load_generator
from studies.prerequisites import ensure_adapt, ensure_base
from tests.conftest import micro_config


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
    # A second call reuses the finished run.
    again, result2 = ensure_adapt(cfg, "hue-60", micro_data, micro_base, tmp_path, progress=False)
    assert again == run and result2["created"] == result["created"]


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
    from e2gan.models import save_generator
    from e2gan.config import ModelConfig
    save_generator(other, g, ModelConfig(**meta["model"]), json.loads((micro_base / "model.json").read_text())["concepts"])
    with pytest.raises(InputError, match="adapter was trained on another base"):
        load_adapter(other, run)


def test_concept_already_in_base_is_refused(micro_data, micro_base, tmp_path):
    cfg = micro_config(adapt={"method": "lora", "steps": 2})
    with pytest.raises(InputError, match="already in the base"):
        ensure_adapt(cfg, "hue-120", micro_data, micro_base, tmp_path, progress=False)
