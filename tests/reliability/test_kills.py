"""SIGKILL at seeded random points of distillation and training, then resume: nothing lost, nothing
duplicated, no truncated file anywhere, and the final artefacts byte-for-byte equal to an
uninterrupted run (training on CPU is deterministic; a kill resumes from the newest checkpoint, an
epoch boundary, which gives the same weights; a kill between a step file and ``last.ckpt`` neither
replays into a "-v1" duplicate nor loses the step file's state).

A study killed mid-trial is covered by
``tests/studies/test_runner.py::test_sigkill_mid_trial_then_resume_loses_and_duplicates_nothing``.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from e2gan.cli import main
from tests.conftest import write_micro_toml
from tests.reliability.common import assert_nothing_partial, snapshot

ROOT = Path(__file__).resolve().parents[2]


def _env():
    import torch

    # The same thread count as this process, which trains the reference and the resumed half:
    # float reductions split across a different number of threads round differently.
    return dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()), HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))


def _start(argv):
    return subprocess.Popen([sys.executable, "-m", "e2gan.cli", *argv], cwd=ROOT, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _kill_when(proc, ready, timeout=120.0) -> bool:
    """SIGKILL the process group once ``ready()``; False if the process finished first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    raise AssertionError("the kill point never came")


def _manifest_keys(data: Path) -> list[tuple[str, str]]:
    return [(r["concept"], r["source_id"]) for r in map(json.loads, (data / "manifest.jsonl").read_text().splitlines())]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_sigkill_during_distillation_then_resume_equals_uninterrupted(seed, trained, tmp_path):
    ref = trained["data"]
    n_targets = sum(1 for _ in (ref / "targets").rglob("*.png"))
    rng = random.Random(seed)
    runs = tmp_path / "runs"
    argv = ["distill", "--config", str(trained["cfg"]), "--runs", str(runs), "--no-progress"]
    kills = 0
    for _ in range(2):  # two kills at seeded points, then a clean finish
        target_count = rng.randint(1, n_targets - 1)
        out = runs / "data" / ref.name / "targets"
        proc = _start(argv)
        kills += _kill_when(proc, lambda: out.is_dir() and sum(1 for _ in out.rglob("*.png")) >= target_count)
        if runs.exists():  # never a truncated file under a real name (temp files are removed on resume)
            assert_nothing_partial(runs, allow_temps=True)
    assert kills >= 1, "no kill landed mid-distillation"
    assert main(argv) == 0
    data = runs / "data" / ref.name
    assert_nothing_partial(runs)
    keys = _manifest_keys(data)
    assert len(keys) == len(set(keys)) == n_targets  # nothing lost, nothing duplicated
    got, want = snapshot(data), snapshot(ref)
    same = ["manifest.jsonl", "teacher.json", *[k for k in want if k.endswith(".png")]]
    assert {k: got.get(k) for k in same} == {k: want[k] for k in same}
    assert sorted(k for k in got if k.endswith(".png")) == sorted(k for k in want if k.endswith(".png"))


@pytest.fixture(scope="module")
def uninterrupted(trained, tmp_path_factory):
    """A base run trained in one go (12 steps, a checkpoint every 3) on the shared micro data."""
    root = tmp_path_factory.mktemp("uninterrupted")
    cfg = write_micro_toml(root / "micro.toml", train={"steps": 12, "ckpt_every": 3})
    runs = root / "runs"
    shutil.copytree(trained["data"], runs / "data" / trained["data"].name)
    assert main(["train-base", "--config", str(cfg), "--runs", str(runs), "--no-progress"]) == 0
    return cfg, next(runs.glob("base-*"))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_sigkill_during_training_then_resume_is_bit_identical(seed, trained, uninterrupted, tmp_path):
    cfg, ref_run = uninterrupted
    rng = random.Random(seed)
    runs = tmp_path / "runs"
    shutil.copytree(trained["data"], runs / "data" / trained["data"].name)
    argv = ["train-base", "--config", str(cfg), "--runs", str(runs), "--no-progress"]
    ckpts = lambda: list(runs.glob("base-*/checkpoints/step-*.ckpt"))  # noqa: E731
    # Kill after a seeded number of checkpoints (1..3 of 4) plus a seeded delay: often between two.
    after, delay = rng.randint(1, 2), rng.uniform(0.0, 0.3)
    proc = _start(argv)
    state = {"since": None}

    def ready():
        if len(ckpts()) >= after and state["since"] is None:
            state["since"] = time.monotonic()
        return state["since"] is not None and time.monotonic() - state["since"] >= delay

    assert _kill_when(proc, ready), "the run finished before the kill"
    run = next(runs.glob("base-*"))
    assert not (run / "train.json").exists()  # killed before the end
    assert main(argv) == 0
    assert_nothing_partial(run)
    assert (run / "generator.safetensors").read_bytes() == (ref_run / "generator.safetensors").read_bytes()
    summary = json.loads((run / "train.json").read_text())
    assert summary["gan_step"] == 12 and summary["stopped_by"] == "steps"
    steps = sorted(p.name for p in (run / "checkpoints").glob("step-*.ckpt"))
    assert steps == sorted(p.name for p in (ref_run / "checkpoints").glob("step-*.ckpt"))  # none twice, none lost
