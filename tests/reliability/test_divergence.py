"""Divergence: NaN/Inf in a loss or a weight stops that run with its reason recorded in train.json and
one CLI line (exit 2); in a study the trial is marked failed with the reason and the study goes on."""
from __future__ import annotations

import json

import lightning as L
import pytest
import torch

from e2gan.cli import main
from tests.conftest import micro_config, write_micro_toml

HUGE_LR = {"lr_g": 1e30, "lr_d": 1e30}  # the first Adam step blows the weights up


def test_diverged_training_stops_with_a_recorded_reason(tmp_path, capsys):
    cfg = write_micro_toml(tmp_path / "micro.toml", train={"steps": 6, "ckpt_every": 3, **HUGE_LR})
    runs = tmp_path / "runs"
    capsys.readouterr()
    assert main(["train-base", "--config", str(cfg), "--runs", str(runs), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    run = next(runs.glob("base-*"))
    assert line.startswith("error: training diverged: non-finite") and str(run) in line
    summary = json.loads((run / "train.json").read_text())
    assert summary["stopped_by"] == "diverged" and summary["reason"].startswith("non-finite")
    assert not (run / "generator.safetensors").exists()  # a diverged run never looks finished
    assert not list(run.rglob("*.tmp"))


class PlantNaNInDiscriminator(L.Callback):
    """After the first epoch's last batch, poisons one discriminator weight (the losses stay finite until
    the next step, so only the end-of-epoch weight check can catch it before the checkpoint is written)."""

    def __init__(self, at_step: int):
        self.at_step = at_step

    def on_train_batch_end(self, trainer, pl_module, *args):
        if pl_module.gan_step == self.at_step:
            with torch.no_grad():
                next(p for p in pl_module.discriminator.parameters() if p.requires_grad).view(-1)[0] = float("nan")


def test_nan_in_a_discriminator_weight_stops_the_run_with_a_recorded_reason(micro_data, tmp_path):
    from e2gan.errors import InputError
    from e2gan.nets.registry import make_discriminator, make_generator
    from lightning_modules.training import fit

    cfg = micro_config(train={"steps": 6, "ckpt_every": 3})
    concepts = ["hue-120", "pixelate"]
    run = tmp_path / "run"
    L.seed_everything(0, verbose=False)
    with pytest.raises(InputError, match=r"training diverged: non-finite discriminator weight \S+ at step 3"):
        fit(cfg, run, micro_data, concepts, {c: i for i, c in enumerate(concepts)}, make_generator(cfg.model, 2),
            make_discriminator(cfg.disc), progress=False, extra_callbacks=[PlantNaNInDiscriminator(at_step=3)])
    summary = json.loads((run / "train.json").read_text())
    assert summary["stopped_by"] == "diverged" and summary["gan_step"] == 3
    assert summary["reason"].startswith("non-finite discriminator weight")
    assert not list((run / "checkpoints").glob("step-*.ckpt"))  # the poisoned epoch was never checkpointed
    assert not list(run.rglob("*.tmp"))


@pytest.mark.slow
def test_study_marks_the_diverged_trial_failed_and_continues(tmp_path, capsys):
    import optuna

    spec = tmp_path / "div.toml"
    spec.write_text(
        'name = "div"\nmetric = "psnr"\nconcepts = ["hue-60"]\nseeds = [0]\n[config]\n'
        'data = { resolution = 32, crops_per_photo = 2, base_concepts = ["hue-120", "pixelate"], '
        'new_concepts = ["hue-60"] }\nmodel = { width = 8, attn_heads = 2, n_tokens = 2 }\n'
        'disc = { ndf = 8, n_layers = 2 }\ntrain = { steps = 4, batch_size = 4, ckpt_every = 2 }\n'
        'adapt = { steps = 2 }\neval = { n_test = 8, n_val = 4 }\n'
        '[arms.diverges]\nadapt = { method = "scratch", lr_d = 1e30 }\ntrain = { lr_g = 1e30 }\n'
        '[arms.fine]\nadapt = { method = "scratch" }\n')
    runs = tmp_path / "runs"
    assert main(["study", "run", str(spec), "--runs", str(runs), "--no-progress"]) == 0
    study = optuna.load_study(study_name="div-tiny", storage=f"sqlite:///{runs.resolve() / 'studies' / 'div-tiny.db'}")
    by_arm = {t.user_attrs["cell"]["arm"]: t for t in study.get_trials(deepcopy=False)}
    assert by_arm["fine"].state.name == "COMPLETE"
    failed = by_arm["diverges"]
    assert failed.state.name == "FAIL"
    assert "training diverged: non-finite" in failed.user_attrs["fail_reason"]
