"""The cached evaluation stage: a run's validation-split scores, beside its test-split result."""
import json

import pytest

from e2gan.pipeline import evaluate
from e2gan.pipeline.evaluate import val_quality, val_result


@pytest.mark.slow
def test_val_result_scores_the_val_split_and_is_cached(micro_data, micro_runs):
    from e2gan.pipeline.adapt import ensure_adapt
    from e2gan.pipeline.base import ensure_base
    from studies.layer_analysis import cell_config
    from tests.conftest import micro_config

    cfg = micro_config(adapt={"steps": 2})
    base, _ = ensure_base(cfg, micro_data, micro_runs, progress=False)
    run_dir, result = ensure_adapt(cell_config(cfg, method="lora"), "hue-60", micro_data, base, micro_runs,
                                   progress=False)
    val = val_result(run_dir, ["hue-60"], micro_data)
    assert val["split"] == "val" and val["protocol"]["reference_set"] == "teacher targets, val split"
    assert val["metrics"]["per_concept"]["hue-60"]["n"] == cfg.eval.n_val
    assert result["protocol"]["n_per_concept"] == {"hue-60": cfg.eval.n_test}
    assert json.loads((run_dir / "result.json").read_text())["protocol"]["split"] == "test"  # untouched
    # cached: a second call reads the file; a changed generator is scored again
    (run_dir / evaluate.VAL_FILE).write_text(json.dumps({**val, "metrics": {"mean_over_concepts": {"psnr": -1.0}}}))
    assert val_quality(run_dir, ["hue-60"], "psnr", micro_data) == -1.0
    weights = run_dir / "generator.safetensors"
    weights.write_bytes(weights.read_bytes() + b"")  # same bytes: still cached
    assert val_quality(run_dir, ["hue-60"], "psnr", micro_data) == -1.0
    cached = json.loads((run_dir / evaluate.VAL_FILE).read_text())
    cached["generator_sha256"] = "0" * 64
    (run_dir / evaluate.VAL_FILE).write_text(json.dumps(cached))
    assert val_quality(run_dir, ["hue-60"], "psnr", micro_data) == pytest.approx(val["metrics"]["mean_over_concepts"]["psnr"])


def test_a_stored_result_is_read_and_a_missing_one_is_evaluated(tmp_path, monkeypatch):
    import e2gan.metrics.evaluation

    calls = []
    monkeypatch.setattr(e2gan.metrics.evaluation, "evaluate_run",
                        lambda run_dir, concepts=None: calls.append((run_dir, concepts)) or {"fresh": True})
    assert evaluate.ensure_result(tmp_path, ["hue-60"]) == {"fresh": True}
    assert calls == [(tmp_path, ["hue-60"])]
    stored = {k: {} for k in ("metrics", "protocol", "cost", "config", "env")}
    stored.update(schema=1, run="run", kind="base", status="complete")
    (tmp_path / "result.json").write_text(json.dumps(stored))
    assert evaluate.ensure_result(tmp_path) == stored and len(calls) == 1
