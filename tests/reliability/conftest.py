"""A trained micro run (data, base generator, last.ckpt, result.json), built once per session.

Tests that change it work on a private copy (``copy_run``).
"""
from __future__ import annotations

import pytest

from e2gan.cli import main
from tests.conftest import write_micro_toml

MICRO_TRAIN = {"steps": 2, "ckpt_every": 2}


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    cfg = write_micro_toml(root / "micro.toml", train=MICRO_TRAIN)
    runs = root / "runs"
    assert main(["train-base", "--config", str(cfg), "--runs", str(runs), "--no-progress"]) == 0
    run = next(runs.glob("base-*"))
    assert main(["evaluate", str(run)]) == 0
    assert (run / "result.json").is_file()
    return {"root": root, "cfg": cfg, "runs": runs, "run": run, "data": next((runs / "data").iterdir())}
