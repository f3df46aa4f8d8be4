"""Callbacks: training wall time that excludes validation, carried across resumes, its budget, and the
learning curve recorded at each validation."""
from __future__ import annotations

import time

import lightning as L


class TrainClock(L.Callback):
    """Seconds spent in training batches (not validation, not checkpoint writing) and images seen."""

    def __init__(self, max_train_seconds: float = 0.0):
        self.max_train_seconds = max_train_seconds  # 0: no budget
        self.budget_hit = False
        self.train_seconds = 0.0
        self.images_seen = 0
        self._t0: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self._t0 is not None:
            self.train_seconds += time.perf_counter() - self._t0
            self._t0 = None
        self.images_seen += int(batch["source"].shape[0]) * trainer.world_size
        if self.max_train_seconds and self.train_seconds >= self.max_train_seconds:
            # A wall-time budget that excludes evaluation, unlike Trainer(max_time=...).
            self.budget_hit = True
            trainer.should_stop = True

    def state_dict(self) -> dict:
        return {"train_seconds": self.train_seconds, "images_seen": self.images_seen}

    def load_state_dict(self, state_dict: dict) -> None:
        self.train_seconds = float(state_dict.get("train_seconds", 0.0))
        self.images_seen = int(state_dict.get("images_seen", 0))


class LearningCurve(L.Callback):
    """One point per validation: {step, train_seconds, images_seen, val_psnr}, read from ``clock``.

    The points travel in every checkpoint, so a resumed run's curve is the uninterrupted one's.
    """

    def __init__(self, clock: TrainClock, monitor: str = "val_psnr"):
        self.clock, self.monitor = clock, monitor
        self.points: list[dict] = []

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        step = int(getattr(pl_module, "gan_step", trainer.global_step))
        if self.points and self.points[-1]["step"] >= step:  # a stop that lands on a validation step
            return
        self.points.append({"step": step, "train_seconds": self.clock.train_seconds,
                            "images_seen": self.clock.images_seen,
                            self.monitor: float(trainer.callback_metrics[self.monitor])})

    def state_dict(self) -> dict:
        return {"points": [dict(p) for p in self.points]}

    def load_state_dict(self, state_dict: dict) -> None:
        self.points = [dict(p) for p in state_dict.get("points", [])]


class OptunaPruning(L.Callback):
    """Report a validation metric to an Optuna trial after each validation; stop if it should prune."""

    def __init__(self, trial, monitor: str = "val_psnr"):
        self.trial, self.monitor = trial, monitor

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        step = int(getattr(pl_module, "gan_step", trainer.current_epoch))
        self.trial.report(float(trainer.callback_metrics[self.monitor]), step)
        if self.trial.should_prune():
            import optuna

            raise optuna.TrialPruned(f"pruned at step {step} on {self.monitor}")
