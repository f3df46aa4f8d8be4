"""evaluate_run's per-process memos (manifest check, targets' taps) leave every number as it was."""
import json
import shutil

import numpy as np
import pytest

import e2gan.data.manifest as manifest
from e2gan.metrics import quality
from e2gan.metrics.evaluation import evaluate_run
from e2gan.pipeline.base import ensure_base
from tests.conftest import micro_config


@pytest.fixture(autouse=True)
def no_clip_env(monkeypatch):
    monkeypatch.delenv("E2GAN_CLIP", raising=False)
    monkeypatch.delenv("E2GAN_WEIGHTS", raising=False)


def _outputs(run):
    result = json.loads((run / "result.json").read_text())
    with np.load(run / "scores.npz", allow_pickle=False) as z:
        scores = {k: z[k] for k in z.files}
    return result, scores


def test_warm_memos_give_the_same_result_and_scores_bit_for_bit(micro_data, micro_runs, tmp_path, monkeypatch):
    base, _ = ensure_base(micro_config(), micro_data, micro_runs, progress=False)
    run = tmp_path / base.name
    shutil.copytree(base, run)  # evaluated here, so the shared run's result files stay as they are
    monkeypatch.setattr(manifest, "_HASHES", {})
    monkeypatch.setattr(manifest, "_MANIFESTS", {})
    monkeypatch.setattr(quality, "_TAP_MEMO", type(quality._TAP_MEMO)())
    monkeypatch.setattr(quality, "lpips_available", lambda net="alex": False)  # the proxy, whose taps are kept
    evaluate_run(run, progress=False)  # every memo empty: what evaluation computed before they existed
    cold_result, cold_scores = _outputs(run)
    assert manifest._HASHES and quality._TAP_MEMO
    evaluate_run(run, progress=False)
    warm_result, warm_scores = _outputs(run)
    assert cold_result["protocol"]["perceptual"] == "effnet-lite0-perceptual (proxy)"
    assert warm_result["metrics"] == cold_result["metrics"] and warm_result["protocol"] == cold_result["protocol"]
    assert warm_result["collapsed"] == cold_result["collapsed"]
    assert warm_scores.keys() == cold_scores.keys()
    for k, v in cold_scores.items():
        assert warm_scores[k].dtype == v.dtype and np.array_equal(warm_scores[k], v, equal_nan=v.dtype.kind == "f"), k
