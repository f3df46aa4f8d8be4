"""Train one run: build the Trainer from the config, resume from ``last`` when it exists."""
from __future__ import annotations

import contextlib
import gc
import json
import math
from pathlib import Path
from typing import Callable

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from e2gan.config import Config
from e2gan.errors import InputError
from e2gan.io import atomic_write, atomic_write_json, remove_stale_temps
from e2gan.metrics.cost import peak_memory_bytes
from e2gan.nets.registry import read_checkpoint
from lightning_modules.callbacks import LearningCurve, TrainClock
from lightning_modules.data_module import PairedDataModule
from lightning_modules.gan_module import NonFiniteLoss, PairedGANModule


def _trainer_device_args(cfg: Config) -> dict:
    acc = {"cuda": "gpu"}.get(cfg.train.accelerator, cfg.train.accelerator)
    if acc == "auto":
        acc = "gpu" if torch.cuda.is_available() else "cpu"
    precision = cfg.train.precision if acc == "gpu" else cpu_precision(cfg.train.precision)
    strategy: object = "auto"
    if cfg.train.strategy == "ddp":
        from lightning.pytorch.strategies import DDPStrategy
        # A GAN step leaves some parameters without gradients in one of the two backward passes.
        strategy = DDPStrategy(find_unused_parameters=True)
    return {"accelerator": acc, "devices": cfg.train.devices, "precision": precision, "strategy": strategy}


def cpu_precision(requested: str) -> str:
    """The precision a CPU run trains in: bf16-mixed where the CPU has native bf16 (AVX512-BF16 or
    AMX, oneDNN's bf16 convolutions: a tiny-preset step ran 1.4x faster on 2 cores), else float32.
    fp16 autocast has no fast CPU kernels here, so 16-mixed trains in float32 (train.json records
    what ran); so does bf16-mixed on a CPU without native bf16, where emulation would be slower."""
    from e2gan.env import cpu_has_native_bf16

    return "bf16-mixed" if requested == "bf16-mixed" and cpu_has_native_bf16() else "32-true"


def check_checkpoint(path: str | Path) -> dict:
    """The checkpoint at ``path``, refused in one line if truncated or holding anything but tensors
    and plain data (loaded with ``weights_only=True``)."""
    return read_checkpoint(path, hint="delete it to restart from scratch")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written beside their final name, fsynced, then renamed.

    Lightning's own save stages the file in $TMPDIR and moves it: across filesystems that move is
    a copy a kill can cut short, and the staged file is left where no resume cleans it up.
    """

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))


def _step_of(path: Path) -> int:
    try:
        return int(path.stem.split("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def resume_point(ckpt_dir: Path) -> Path | None:
    """The newest checkpoint to resume from: ``last.ckpt`` or a later ``step-N.ckpt``, checked.

    Lightning writes ``step-N.ckpt`` before ``last.ckpt``; a kill between the two leaves the
    newer state only in the step file. Resuming from it means no epoch is replayed.
    """
    last = ckpt_dir / "last.ckpt"
    steps = sorted((p for p in ckpt_dir.glob("step-*.ckpt") if _step_of(p) >= 0), key=_step_of)
    newest = steps[-1] if steps else None
    if last.exists() and (newest is None or _step_of(newest) <= int(check_checkpoint(last).get("gan_step", 0))):
        return last
    if newest is not None:
        check_checkpoint(newest)  # refused here, in one line, before Lightning unpickles it
    return newest


@contextlib.contextmanager
def long_lived_objects_frozen():
    """Keep what exists before training (imports, models, a study's storage) out of the cyclic
    collector's full passes while it trains; hand it back afterwards.

    Every step promotes short-lived autograd objects, so a full pass comes every hundred steps or
    so, and each walks the whole heap: up to ~0.5 s on 2 CPU cores for the ~650k objects a study
    worker holds (torch, Lightning, peft, transformers, optuna). Garbage cycles among the frozen
    objects wait until training ends. A caller that froze objects itself keeps its choice.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class StepReport(L.Callback):
    """Training progress for a caller's own display, in place of Lightning's bar."""

    def __init__(self, report: Callable[[int, int, str], None], total: int):
        self.report, self.total = report, total

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        if trainer.is_global_zero:
            self.report(pl_module.gan_step, self.total, "steps")


def val_check_interval(steps_per_epoch: int, epochs: int, curve_points: int) -> int | float:
    """Lightning's ``val_check_interval`` for at least ``curve_points`` validations per run.

    Extra validations fall inside the existing epochs (epochs, and so the per-epoch seeding of the
    sampler, stay as they are); the interval divides the epoch, so every epoch still ends with one.
    1.0 (once per epoch, as without curve points) when the epochs already give enough.
    """
    per_epoch = math.ceil(curve_points / max(1, epochs))
    if per_epoch <= 1:
        return 1.0
    k = next(k for k in range(min(per_epoch, steps_per_epoch), steps_per_epoch + 1) if steps_per_epoch % k == 0)
    return steps_per_epoch // k if k > 1 else 1.0


def fit(cfg: Config, run_dir: str | Path, data_root: str | Path, concepts: list[str],
        concept_index: dict[str, int], generator: torch.nn.Module, discriminator: torch.nn.Module | None,
        *, progress: bool | Callable[[int, int, str], None] = True, train_indices: list[int] | None = None,
        extra_callbacks: list | None = None, curve_points: int = 0) -> dict | None:
    """Train ``generator`` (and ``discriminator``) on ``concepts``; returns a summary on rank 0.

    Re-running with the same ``run_dir`` resumes from its newest checkpoint (see ``resume_point``).
    ``progress``: Lightning's bar (True), nothing (False), or a callable (step, total, "steps").
    ``curve_points``: validate at least this many times per run (0: once per epoch); every
    validation adds a point to the summary's ``curve``.
    """
    run_dir = Path(run_dir)
    if run_dir.is_dir():
        remove_stale_temps(run_dir)
    t = cfg.train
    steps_per_epoch = min(t.ckpt_every, t.steps)
    epochs = math.ceil(t.steps / steps_per_epoch)
    module = PairedGANModule(generator, discriminator, total_steps=t.steps, lr_g=t.lr_g, lr_d=t.lr_d,
                             betas=(t.beta1, t.beta2), lambda_l1=t.lambda_l1, gan_mode=t.gan_mode,
                             run_dir=run_dir)
    data = PairedDataModule(data_root, concepts, concept_index, batch_size=t.batch_size,
                            steps_per_epoch=steps_per_epoch, seed=t.seed, num_workers=t.num_workers,
                            train_indices=train_indices)
    clock = TrainClock(max_train_seconds=t.max_time_s)
    curve = LearningCurve(clock)
    ckpt_dir = run_dir / "checkpoints"
    # No version counter: an epoch replayed after a kill overwrites its step file, never adds a "-v1".
    checkpoints = ModelCheckpoint(dirpath=ckpt_dir, filename="step-{gan_step:06.0f}", auto_insert_metric_name=False,
                                  save_top_k=-1, save_last=True, every_n_epochs=1, save_on_train_epoch_end=True,
                                  enable_version_counter=False)
    attempt = len(list((run_dir / "logs").glob("attempt-*"))) if (run_dir / "logs").exists() else 0
    trainer = L.Trainer(max_epochs=epochs, logger=CSVLogger(run_dir, name="logs", version=f"attempt-{attempt}"),
                        callbacks=[clock, curve, checkpoints, *(extra_callbacks or []),
                                   *([StepReport(progress, t.steps)] if callable(progress) else [])],
                        enable_progress_bar=bool(progress) and not callable(progress),
                        enable_model_summary=False, num_sanity_val_steps=0, log_every_n_steps=min(10, steps_per_epoch),
                        use_distributed_sampler=False, check_val_every_n_epoch=1,
                        val_check_interval=val_check_interval(steps_per_epoch, epochs, curve_points),
                        plugins=[AtomicCheckpointIO()], **_trainer_device_args(cfg))
    resume = resume_point(ckpt_dir) if ckpt_dir.is_dir() else None
    try:
        with long_lived_objects_frozen():
            trainer.fit(module, datamodule=data, ckpt_path=str(resume) if resume else None, weights_only=True)
    except NonFiniteLoss as exc:  # diverged: record why, then stop this run with one line
        if trainer.is_global_zero:
            atomic_write_json(run_dir / "train.json", {"gan_step": module.gan_step, "stopped_by": "diverged",
                                                       "reason": str(exc), "train_seconds": clock.train_seconds,
                                                       "curve": curve.points})
        raise InputError(f"training diverged: {exc}", str(run_dir),
                         "finite losses and weights (lower the learning rate)") from None
    if not trainer.is_global_zero:
        return None
    stopped_by = "steps" if module.gan_step >= t.steps else ("time" if clock.budget_hit else "interrupted")
    summary = {
        "gan_step": module.gan_step,
        "train_seconds": clock.train_seconds,
        "images_seen": clock.images_seen,
        "stopped_by": stopped_by,
        "val_psnr_last": float(trainer.callback_metrics.get("val_psnr", float("nan"))),
        "device": str(trainer.strategy.root_device),
        "world_size": trainer.world_size,
        "precision": str(trainer.precision),
        "peak_memory": peak_memory_bytes(trainer.strategy.root_device),
        "curve": curve.points,   # one point per validation (val split), training seconds exclude validation
    }
    atomic_write_json(run_dir / "train.json", summary)
    return summary


def read_train_summary(run_dir: str | Path) -> dict | None:
    path = Path(run_dir) / "train.json"
    return json.loads(path.read_text()) if path.exists() else None
