"""The base stage's cache: where a base lives and when it counts as finished (no training here)."""
import json

from e2gan.pipeline.base import base_dir, base_is_complete
from tests.conftest import micro_config


def _finished(run_dir, **summary):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "generator.safetensors").write_bytes(b"weights")
    (run_dir / "train.json").write_text(json.dumps(summary))
    return run_dir


def test_a_base_is_complete_at_its_step_budget_or_when_time_stopped_it(tmp_path):
    cfg = micro_config(train={"steps": 6})
    assert not base_is_complete(tmp_path / "none", cfg)
    assert base_is_complete(_finished(tmp_path / "done", gan_step=6), cfg)
    assert not base_is_complete(_finished(tmp_path / "short", gan_step=5), cfg)
    assert base_is_complete(_finished(tmp_path / "timed", gan_step=2, stopped_by="time"), cfg)
    (tmp_path / "done" / "generator.safetensors").unlink()
    assert not base_is_complete(tmp_path / "done", cfg)


def test_the_base_folder_follows_training_settings_not_adaptation_ones(tmp_path):
    cfg = micro_config(train={"steps": 6})
    assert base_dir(cfg, tmp_path).parent == tmp_path
    assert base_dir(micro_config(train={"steps": 6}, adapt={"rank": 8}), tmp_path) == base_dir(cfg, tmp_path)
    assert base_dir(micro_config(train={"steps": 7}), tmp_path) != base_dir(cfg, tmp_path)
