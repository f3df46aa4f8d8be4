"""Shared fixtures: a micro configuration and its distilled data, built once per test session."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Lightning binds a stream handler to whichever stderr exists when it is first imported; under
# pytest's capture that stream is closed by later tests, and its INFO lines then print logging
# errors into the stderr that tests read. Its INFO lines carry nothing the tests check.
import lightning.pytorch  # noqa: E402,F401  (it sets its logger's level on import: set ours after)

logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
logging.getLogger("lightning.fabric").setLevel(logging.WARNING)

MICRO = {
    "data": {"resolution": 32, "crops_per_photo": 2, "base_concepts": ["hue-120", "pixelate"],
             "new_concepts": ["hue-60"]},
    "model": {"width": 8, "attn_heads": 2, "n_tokens": 2},
    "disc": {"ndf": 8, "n_layers": 2},
    "train": {"steps": 6, "batch_size": 4, "ckpt_every": 3},
    "eval": {"batch_size": 16, "n_test": 8, "n_val": 4},  # the preset's 500/250 would slow every test
}


def micro_config(**sections):
    """The micro configuration with per-section overrides, e.g. micro_config(train={"steps": 4})."""
    from e2gan.config import apply_overrides
    from e2gan.presets import get_preset

    merged = {k: dict(v) for k, v in MICRO.items()}
    for section, values in sections.items():
        merged.setdefault(section, {}).update(values)
    return apply_overrides(get_preset("tiny"), merged, "test")


def write_micro_toml(path: Path, **sections) -> Path:
    import tomli_w

    merged = {k: dict(v) for k, v in MICRO.items()}
    for section, values in sections.items():
        merged.setdefault(section, {}).update(values)
    path.write_text(tomli_w.dumps({"preset": "tiny", **merged}))
    return path


@pytest.fixture(scope="session")
def micro_runs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="session")
def micro_data(micro_runs) -> Path:
    from e2gan.pipeline.data import ensure_data

    root, _ = ensure_data(micro_config(), micro_runs, progress=False)
    return root
