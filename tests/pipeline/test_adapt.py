"""The adapt stage's cache: one folder per concept, method, seed and settings; a finished run is reused."""
import json

import pytest

from e2gan.pipeline.adapt import adapt_dir, ensure_adapt
from tests.conftest import micro_config


def test_the_adapt_folder_names_concept_method_and_seed_and_keys_the_settings(tmp_path):
    cfg = micro_config(adapt={"method": "lora", "seed": 1})
    run = adapt_dir(cfg, "hue-60", tmp_path)
    assert run.parent == tmp_path and run.name.startswith(f"adapt-{cfg.preset}-hue-60-lora-s1-")
    assert adapt_dir(micro_config(adapt={"method": "lora", "seed": 1, "rank": 8}), "hue-60", tmp_path) != run
    assert adapt_dir(micro_config(adapt={"method": "lora", "seed": 1}, train={"steps": 99}), "hue-60", tmp_path) != run
    assert adapt_dir(cfg, "sketch", tmp_path) != run


@pytest.mark.parametrize("method", ["scratch", "pix2pix"])
def test_a_run_without_a_base_is_named_without_the_bases_budget(tmp_path, method):
    """base-model's no-base arm (bases of 600 steps) is data-count's scratch run: one run, not two copies."""
    from e2gan.presets import get_preset

    preset = get_preset("tiny")
    at_preset = micro_config(adapt={"method": method})
    shorter_base = micro_config(adapt={"method": method}, train={"steps": 600, "seed": 5, "lr_d": 1e-4, "max_time_s": 9.0})
    assert adapt_dir(shorter_base, "hue-60", tmp_path) == adapt_dir(at_preset, "hue-60", tmp_path)
    # a field that reaches the run itself still names a new one (the batch, the base rate scratch falls back on)
    assert adapt_dir(micro_config(adapt={"method": method}, train={"batch_size": 6}), "hue-60", tmp_path) != \
        adapt_dir(at_preset, "hue-60", tmp_path)
    assert adapt_dir(micro_config(adapt={"method": method}, train={"lr_g": 5e-3}), "hue-60", tmp_path) != \
        adapt_dir(at_preset, "hue-60", tmp_path)
    # at the preset's budget the name is hashed from the config as it was before this rule: earlier runs are found
    tiny = micro_config(adapt={"method": method}, train={f: getattr(preset.train, f) for f in ("steps", "seed", "lr_d", "max_time_s")})
    assert adapt_dir(tiny, "hue-60", tmp_path).name.endswith(tiny.key("data", "model", "disc", "train", "adapt"))


def test_a_finished_run_is_read_back_without_training(tmp_path, monkeypatch):
    import lightning_modules.adaptation

    def no_training(*a, **k):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(lightning_modules.adaptation, "adapt", no_training)
    run = tmp_path / "run"
    run.mkdir()
    (run / "generator.safetensors").write_bytes(b"weights")
    stored = {k: {} for k in ("metrics", "protocol", "cost", "config", "env")}
    stored.update(schema=1, run="run", kind="adapt", status="complete")
    (run / "result.json").write_text(json.dumps(stored))
    assert ensure_adapt(micro_config(), "hue-60", tmp_path, None, tmp_path, progress=False, run_dir=run) == (run, stored)
    (run / "generator.safetensors").unlink()  # result without weights: not finished, so it trains
    with pytest.raises(AssertionError, match="trained again"):
        ensure_adapt(micro_config(), "hue-60", tmp_path, None, tmp_path, progress=False, run_dir=run)
