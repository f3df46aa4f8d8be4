"""`evaluate` on a Lightning checkpoint of a micro base run: its own result file, never result.json."""
import json
import shutil

import pytest
import torch

from e2gan.errors import InputError
from e2gan.metrics.evaluation import evaluate_run, result_path
from e2gan.pipeline.base import ensure_base
from tests.conftest import micro_config


@pytest.fixture(autouse=True)
def no_clip_env(monkeypatch):
    monkeypatch.delenv("E2GAN_CLIP", raising=False)
    monkeypatch.delenv("E2GAN_WEIGHTS", raising=False)


@pytest.fixture(scope="module")
def evaluated(micro_data, micro_runs):
    """The micro base (6 steps, checkpoints at 3 and 6) evaluated on its final weights."""
    run, _ = ensure_base(micro_config(), micro_data, micro_runs, progress=False)
    return run, evaluate_run(run, progress=False)


def _psnrs(result):
    return {c: m["psnr"] for c, m in result["metrics"]["per_concept"].items()}


def test_checkpoint_gets_its_own_result_file(evaluated):
    run, last = evaluated
    assert last["protocol"]["checkpoint"] == "last" and result_path(run, last) == run / "result.json"
    main_bytes = (run / "result.json").read_bytes()
    ckpt = run / "checkpoints" / "step-000003.ckpt"
    res = evaluate_run(ckpt, progress=False)
    p = res["protocol"]
    assert p["checkpoint"] == "step-000003" and p["checkpoint_step"] == 3
    assert p["checkpoint_file"] == "checkpoints/step-000003.ckpt"
    assert p["clip"] == "absent ($E2GAN_CLIP and $E2GAN_WEIGHTS unset)"
    out = run / "result-step-000003.json"
    assert result_path(ckpt, res) == out and json.loads(out.read_text())["protocol"]["checkpoint"] == "step-000003"
    assert (run / "samples-step-000003.png").is_file()
    assert (run / "result.json").read_bytes() == main_bytes  # the run's own result is untouched
    assert res["cost"]["steps"] == 3 and last["cost"]["steps"] == 6
    assert res["cost"]["images_seen"] == 3 * micro_config().train.batch_size
    assert res["run"] == last["run"] and set(res["metrics"]["per_concept"]) == set(last["metrics"]["per_concept"])
    assert _psnrs(res) != _psnrs(last)  # three more steps of training changed the weights


def test_last_ckpt_reproduces_the_final_weights(evaluated):
    run, last = evaluated
    res = evaluate_run(run / "checkpoints" / "last.ckpt", progress=False)
    assert res["protocol"]["checkpoint"] == "step-000006"  # named by its step, not "last"
    assert _psnrs(res) == pytest.approx(_psnrs(last), abs=1e-9)
    assert (run / "result-step-000006.json").is_file()


def test_unfinished_base_run_rebuilds_from_config(evaluated, micro_runs):
    """A base still training has checkpoints and config.json but no model.json yet."""
    run, _ = evaluated
    partial = micro_runs / "partial-base"
    partial.mkdir(exist_ok=True)
    shutil.copy2(run / "config.json", partial / "config.json")
    shutil.copytree(run / "checkpoints", partial / "checkpoints", dirs_exist_ok=True)
    res = evaluate_run(partial / "checkpoints" / "step-000003.ckpt", progress=False)
    ref = json.loads((run / "result-step-000003.json").read_text()) if (run / "result-step-000003.json").exists() \
        else evaluate_run(run / "checkpoints" / "step-000003.ckpt", progress=False)
    assert res["protocol"]["checkpoint"] == "step-000003" and res["kind"] == "base"
    assert _psnrs(res) == pytest.approx(_psnrs(ref), abs=1e-9)
    assert (partial / "result-step-000003.json").is_file() and not (partial / "result.json").exists()


def test_bad_checkpoints_are_one_line_errors(evaluated, tmp_path):
    run, _ = evaluated
    target = tmp_path / "run"
    shutil.copytree(run, target, ignore=shutil.ignore_patterns("*.ckpt"))
    (target / "checkpoints").mkdir(exist_ok=True)

    class Boom:
        def __reduce__(self):
            return (print, ("executed",))

    unsafe = target / "checkpoints" / "step-000001.ckpt"
    torch.save({"state_dict": {}, "x": Boom()}, unsafe)
    with pytest.raises(InputError, match="unloadable or unsafe checkpoint"):
        evaluate_run(unsafe, progress=False)
    no_gen = target / "checkpoints" / "step-000002.ckpt"
    torch.save({"state_dict": {"discriminator.w": torch.zeros(1)}, "gan_step": 2}, no_gen)
    with pytest.raises(InputError, match="without generator weights"):
        evaluate_run(no_gen, progress=False)
    wrong = target / "checkpoints" / "step-000004.ckpt"
    torch.save({"state_dict": {"generator.w": torch.zeros(1)}, "gan_step": 4}, wrong)
    with pytest.raises(InputError, match="does not fit"):
        evaluate_run(wrong, progress=False)
    with pytest.raises(InputError, match="no run or checkpoint"):
        evaluate_run(target / "checkpoints" / "missing.ckpt", progress=False)


def test_clip_metrics_land_in_result_json(evaluated, tmp_path, monkeypatch):
    from tests.metrics.tiny_clip import save_tiny_clip

    run, _ = evaluated
    monkeypatch.setenv("E2GAN_WEIGHTS", str(tmp_path))
    save_tiny_clip(tmp_path / "clip")
    res = evaluate_run(run / "checkpoints" / "step-000003.ckpt", progress=False)
    saved = json.loads((run / "result-step-000003.json").read_text())
    for m in [*saved["metrics"]["per_concept"].values(), saved["metrics"]["mean_over_concepts"]]:
        assert -1 <= m["clip_score"] <= 1 and -1 <= m["clip_directional"] <= 1
    clip = saved["protocol"]["clip"]
    assert clip["found_by"] == "$E2GAN_WEIGHTS/clip" and len(clip["fingerprint"]) == 64
    instructions = {c: t["edited"] for c, t in clip["texts"].items()}
    assert set(instructions) == set(res["metrics"]["per_concept"]) and all(instructions.values())


@pytest.mark.parametrize("method", ["lora", "full"])
def test_adapted_run_checkpoint_matches_its_final_weights(method, evaluated, micro_data, tmp_path):
    """LoRA checkpoints hold unmerged adapters: rebuilt, loaded and merged like the final weights."""
    from e2gan.pipeline.adapt import ensure_adapt

    base, _ = evaluated
    cfg = micro_config(adapt={"method": method, "steps": 3, "rank": 2})
    run, final = ensure_adapt(cfg, "hue-60", micro_data, base, tmp_path, progress=False)
    res = evaluate_run(run / "checkpoints" / "step-000003.ckpt", concepts=["hue-60"], progress=False)
    assert res["kind"] == "adapt" and res["method"] == method and res["protocol"]["checkpoint"] == "step-000003"
    assert list(res["metrics"]["per_concept"]) == ["hue-60"]
    assert _psnrs(res) == pytest.approx(_psnrs(final), abs=1e-6)
    assert res["cost"]["bytes_stored"] == final["cost"]["bytes_stored"]


def test_clip_conditioned_generator_checkpoint(micro_data, tmp_path):
    """A generator whose concept tokens come from a CLIP text model: its tokens are in the checkpoint."""
    from e2gan.io import atomic_write_json
    from e2gan.nets.registry import concept_instructions, make_generator, save_generator
    from tests.tiny_pipelines import text_model_dir

    cfg = micro_config(model={"n_tokens": 16, "concept_encoder": f"clip:{text_model_dir()}"})
    base = ["hue-120", "pixelate"]
    torch.manual_seed(0)
    g = make_generator(cfg.model, len(base), instructions=concept_instructions(cfg.data.concepts_file, base))
    run = tmp_path / "clip-base"
    save_generator(run, g, cfg.model, base, extra={"kind": "base", "data": str(micro_data), "gan_step": 2})
    atomic_write_json(run / "config.json", cfg.to_dict())
    (run / "checkpoints").mkdir()
    torch.save({"state_dict": {f"generator.{k}": v for k, v in g.state_dict().items()}, "gan_step": 2},
               run / "checkpoints" / "step-000002.ckpt")
    final = evaluate_run(run, progress=False)
    res = evaluate_run(run / "checkpoints" / "step-000002.ckpt", progress=False)
    assert res["protocol"]["checkpoint"] == "step-000002"
    assert _psnrs(res) == pytest.approx(_psnrs(final), abs=1e-9)
    (run / "model.json").unlink()  # still training: rebuilt from config.json and the concepts' instructions
    (run / "generator.safetensors").unlink()
    assert _psnrs(evaluate_run(run / "checkpoints" / "step-000002.ckpt", data_root=micro_data,
                               progress=False)) == pytest.approx(_psnrs(final), abs=1e-6)


def test_per_image_scores_pair_and_reproduce_the_set_metrics(evaluated):
    """scores.npz rows are the test images in order; set PSNR and the perceptual mean follow from them."""
    import math

    import numpy as np

    from e2gan.metrics.per_image import load_predictions, load_scores

    run, last = evaluated
    z = load_scores(run / "scores.npz")
    assert last["protocol"]["per_image_file"] == "scores.npz"
    n_per = last["protocol"]["n_per_concept"]
    assert len(z["mse"]) == sum(n_per.values()) == len(z["source_id"]) == len(z["feat_out"])
    assert z["feat_out"].shape == z["feat_tgt"].shape and z["backbone"] == "effnet-lite0"
    for concept, m in last["metrics"]["per_concept"].items():
        rows = z["concept"] == concept
        assert rows.sum() == n_per[concept]
        assert 10 * math.log10(1 / z["mse"][rows].mean()) == pytest.approx(m["psnr"], rel=1e-7)
        assert z["perceptual"][rows].mean() == pytest.approx(m["perceptual"], rel=1e-6)
        assert m["floor_halves_fid"] >= 0 and m["floor_identity_fid"] >= 0
    col = last["collapsed"]
    assert isinstance(col["collapsed"], bool) and set(col["per_concept"]) == set(n_per)
    assert all(v["pixel_std_ratio"] >= 0 for v in col["per_concept"].values())
    pred = load_predictions(run / "predictions.npz")
    assert pred["outputs"].dtype == np.uint8 and pred["outputs"].shape == pred["targets"].shape
    assert set(pred["concept"]) == set(n_per)


def test_second_evaluation_runs_the_backbone_on_the_outputs_only(evaluated, monkeypatch):
    """The targets' and sources' features of a concept come from feature-cache/ after its first run."""
    from e2gan.metrics import features

    run, last = evaluated
    cache = run.parent / "feature-cache"
    entries = sorted(cache.glob("*.npy"))
    calls = []
    real = features.FeatureExtractor.__call__
    monkeypatch.setattr(features.FeatureExtractor, "__call__", lambda self, x: calls.append(len(x)) or real(self, x))
    res = evaluate_run(run / "checkpoints" / "last.ckpt", progress=False)
    n_per = res["protocol"]["n_per_concept"]
    assert sorted(calls) == sorted(n_per.values())  # one pass per concept: its outputs
    assert sorted(cache.glob("*.npy")) == entries  # nothing new computed or written
    for c, m in last["metrics"]["per_concept"].items():  # same weights: the same numbers
        for k in ("fid", "kid_mean", "floor_identity_fid", "floor_halves_fid"):
            assert res["metrics"]["per_concept"][c][k] == pytest.approx(m[k], rel=1e-9, abs=1e-12), (c, k)
