import math

import pytest

from e2gan.pipeline import evaluate
from studies import validation
from studies.validation import default_delta


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
    monkeypatch.setattr(evaluate, "val_quality",
                        lambda run_dir, concepts, metric, data_root=None: seen.append((run_dir, concepts, metric)) or 20.0)
    assert runner.work(spec, storage, "tiny", tmp_path / "runs", max_trials=1)["complete"] == 1
    import optuna

    (trial,) = optuna.load_study(study_name="search-tiny", storage=storage).get_trials()
    assert trial.value == 20.0 and trial.user_attrs["value_test"] == 30.0
    assert seen == [(str(tmp_path / "run"), ["hue-60"], "psnr")]
