"""Short fits on CPU: the module learns, checkpoints, and resumes exactly."""
import json

import lightning as L
import pytest
import torch

from e2gan.data.dataset import PairedDataset
from e2gan.nets.registry import make_discriminator, make_generator
from lightning_modules.training import fit
from tests.conftest import micro_config

CONCEPTS = ["hue-120", "pixelate"]
INDEX = {c: i for i, c in enumerate(CONCEPTS)}


def _fit(cfg, run_dir, data, **kw):
    g = _fresh_generator(cfg)
    summary = fit(cfg, run_dir, data, CONCEPTS, INDEX, g, make_discriminator(cfg.disc), progress=False, **kw)
    return g, summary


def _fresh_generator(cfg):
    L.seed_everything(cfg.train.seed, verbose=False)
    return make_generator(cfg.model, len(CONCEPTS))


@torch.no_grad()
def _train_l1(generator, data):
    ds = PairedDataset(data, CONCEPTS, "train", INDEX)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=len(ds))))
    return float((generator.eval()(batch["source"], batch["concept_id"]) - batch["target"]).abs().mean())


class StopAfterFirstEpoch(L.Callback):
    """Ends training at the first checkpoint, as a killed process would have left it."""

    def on_train_epoch_end(self, trainer, pl_module):
        trainer.should_stop = True


def test_short_fit_learns_and_checkpoints(micro_data, tmp_path):
    # 60 steps: on the photo-disjoint micro split 30 steps cut the L1 error by 16%, 60 by 41%.
    cfg = micro_config(train={"steps": 60, "ckpt_every": 30, "lr_g": 2e-3})
    before = _train_l1(_fresh_generator(cfg), micro_data)
    g, summary = _fit(cfg, tmp_path / "run", micro_data)
    assert summary["gan_step"] == 60 and summary["stopped_by"] == "steps"
    assert summary["train_seconds"] > 0 and summary["images_seen"] == 60 * 4
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("*.ckpt"))
    assert ckpts == ["last.ckpt", "step-000030.ckpt", "step-000060.ckpt"]
    assert _train_l1(g, micro_data) < 0.8 * before, "60 steps should cut the training L1 error"
    header = (tmp_path / "run" / "logs" / "attempt-0" / "metrics.csv").read_text().splitlines()[0]
    assert {"loss_d", "loss_g", "loss_l1", "val_psnr"} <= set(header.split(","))
    assert (tmp_path / "run" / "val" / "step-000060.png").exists()
    assert json.loads((tmp_path / "run" / "train.json").read_text())["gan_step"] == 60


def test_resume_from_last_equals_uninterrupted(micro_data, tmp_path):
    cfg = micro_config(train={"steps": 6, "ckpt_every": 3})
    g_full, _ = _fit(cfg, tmp_path / "full", micro_data)

    _, first = _fit(cfg, tmp_path / "resumed", micro_data, extra_callbacks=[StopAfterFirstEpoch()])
    assert first["gan_step"] == 3 and first["stopped_by"] == "interrupted"
    g_resumed, second = _fit(cfg, tmp_path / "resumed", micro_data)
    assert second["gan_step"] == 6
    full, resumed = g_full.state_dict(), g_resumed.state_dict()
    assert full.keys() == resumed.keys()
    for k in full:
        assert torch.equal(full[k], resumed[k]), k
    assert second["images_seen"] == 6 * 4  # the clock's state survives the restart


def test_wall_time_budget_stops_training(micro_data, tmp_path):
    cfg = micro_config(train={"steps": 10_000, "ckpt_every": 5000, "max_time_s": 0.5})
    _, summary = _fit(cfg, tmp_path / "timed", micro_data)
    assert summary["stopped_by"] == "time"
    assert 0 < summary["gan_step"] < 10_000
    assert summary["train_seconds"] >= 0.5


def test_resume_point_prefers_a_step_file_newer_than_last(tmp_path):
    """A kill after Lightning wrote step-N.ckpt but before last.ckpt: resume from the step file."""
    from lightning_modules.training import resume_point

    assert resume_point(tmp_path) is None
    torch.save({"gan_step": 3}, tmp_path / "step-000003.ckpt")
    assert resume_point(tmp_path) == tmp_path / "step-000003.ckpt"  # killed before the first last.ckpt
    torch.save({"gan_step": 3}, tmp_path / "last.ckpt")
    assert resume_point(tmp_path) == tmp_path / "last.ckpt"
    torch.save({"gan_step": 6}, tmp_path / "step-000006.ckpt")
    assert resume_point(tmp_path) == tmp_path / "step-000006.ckpt"
    torch.save({"gan_step": 6}, tmp_path / "last.ckpt")
    assert resume_point(tmp_path) == tmp_path / "last.ckpt"


def test_checkpoints_are_written_atomically_beside_their_name(tmp_path, monkeypatch):
    """No staging in $TMPDIR: the temp file sits in the checkpoint folder and is renamed."""
    from lightning_modules.training import AtomicCheckpointIO

    seen = []
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f: (seen.append(str(f)), real_save(obj, f)))
    AtomicCheckpointIO().save_checkpoint({"gan_step": 1}, tmp_path / "c" / "last.ckpt")
    assert len(seen) == 1 and seen[0].startswith(str(tmp_path / "c" / ".last.ckpt.")) and seen[0].endswith(".tmp")
    assert torch.load(tmp_path / "c" / "last.ckpt", weights_only=True) == {"gan_step": 1}
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["last.ckpt"]


def test_fit_hands_frozen_objects_back_to_the_collector(micro_data, tmp_path):
    """Objects older than the fit are kept out of full GC passes during it, and only during it."""
    import gc

    cfg = micro_config(train={"steps": 2, "ckpt_every": 2})
    seen = []

    class FreezeCount(L.Callback):
        def on_train_batch_end(self, *args):
            seen.append(gc.get_freeze_count())

    _fit(cfg, tmp_path / "run", micro_data, extra_callbacks=[FreezeCount()])
    assert seen and all(n > 0 for n in seen) and gc.get_freeze_count() == 0
    gc.freeze()  # a caller's own freeze stays as it was
    try:
        _fit(cfg, tmp_path / "again", micro_data)
        assert gc.get_freeze_count() > 0  # not unfrozen by fit
    finally:
        gc.unfreeze()


def test_cpu_precision_honours_bf16_only_where_the_cpu_has_it(monkeypatch):
    from lightning_modules.training import cpu_precision

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert cpu_precision("bf16-mixed") == "bf16-mixed"
    assert cpu_precision("16-mixed") == "32-true" and cpu_precision("32-true") == "32-true"  # no fast fp16 CPU path
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert cpu_precision("bf16-mixed") == "32-true"  # emulated bf16 would be slower than float32


@pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="this CPU has no native bf16")
def test_a_bf16_fit_on_the_cpu_learns_and_records_its_precision(micro_data, tmp_path):
    cfg = micro_config(train={"steps": 60, "ckpt_every": 30, "lr_g": 2e-3, "precision": "bf16-mixed"})
    before = _train_l1(_fresh_generator(cfg), micro_data)
    g, summary = _fit(cfg, tmp_path / "run", micro_data)
    assert summary["precision"] == "bf16-mixed"
    assert all(p.dtype == torch.float32 for p in g.parameters())  # mixed: the weights stay float32
    assert _train_l1(g, micro_data) < 0.8 * before, "60 bf16 steps should cut the training L1 error as float32's do"
