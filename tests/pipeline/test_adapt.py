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
