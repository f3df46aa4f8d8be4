import json
import math

import pytest

from studies import validation
from studies.validation import default_delta, val_quality, val_result


def test_default_delta_is_the_one_sided_noise_of_a_difference(monkeypatch):
    monkeypatch.setitem(validation.NOISE_SD, "psnr", 0.5)
    # 1.645 * 0.5 * sqrt(2 / 1): one seed, one concept
    assert default_delta("psnr", 1, 1) == pytest.approx(1.645 * 0.5 * math.sqrt(2))
    # four times the runs halves it
    assert default_delta("psnr", 2, 2) == pytest.approx(default_delta("psnr", 1, 1) / 2)


def test_noise_floor_is_measured_for_every_search_metric():
    from studies.layer_analysis import METRICS

    assert set(validation.NOISE_SD) == set(METRICS)
    assert all(v > 0 for v in validation.NOISE_SD.values())


@pytest.mark.slow
def test_val_result_scores_the_val_split_and_is_cached(micro_data, micro_runs):
    from studies.layer_analysis import cell_config
    from studies.prerequisites import ensure_adapt, ensure_base
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
    (run_dir / validation.VAL_FILE).write_text(json.dumps({**val, "metrics": {"mean_over_concepts": {"psnr": -1.0}}}))
    assert val_quality(run_dir, ["hue-60"], "psnr", micro_data) == -1.0
    weights = run_dir / "generator.safetensors"
    weights.write_bytes(weights.read_bytes() + b"")  # same bytes: still cached
    assert val_quality(run_dir, ["hue-60"], "psnr", micro_data) == -1.0
    cached = json.loads((run_dir / validation.VAL_FILE).read_text())
    cached["generator_sha256"] = "0" * 64
    (run_dir / validation.VAL_FILE).write_text(json.dumps(cached))
    assert val_quality(run_dir, ["hue-60"], "psnr", micro_data) == pytest.approx(val["metrics"]["mean_over_concepts"]["psnr"])


def test_a_search_trial_is_told_the_val_value_and_keeps_the_test_value(tmp_path, monkeypatch):
    from studies import runner
    from studies.spec import load_spec

    path = tmp_path / "search.toml"
    path.write_text('name = "search"\nmetric = "psnr"\nconcepts = ["hue-60"]\nsampler = "tpe"\nn_trials = 1\n'
                    '[search]\n"adapt.rank" = [1, 2]\n')
    spec = load_spec(path)
    storage = f"sqlite:///{tmp_path / 'search.db'}"
    runner.load_study(spec, storage, "tiny", create=True)
    monkeypatch.setattr(runner, "evaluate_cell", lambda spec, cell, *a, **k: {
        "run_dir": str(tmp_path / "run"), "value": 30.0, "params_trainable": 10})
    seen = []
    monkeypatch.setattr(validation, "val_quality",
                        lambda run_dir, concepts, metric, data_root=None: seen.append((run_dir, concepts, metric)) or 20.0)
    assert runner.work(spec, storage, "tiny", tmp_path / "runs", max_trials=1)["complete"] == 1
    import optuna

    (trial,) = optuna.load_study(study_name="search-tiny", storage=storage).get_trials()
    assert trial.value == 20.0 and trial.user_attrs["value_test"] == 30.0
    assert seen == [(str(tmp_path / "run"), ["hue-60"], "psnr")]
