"""PairedGANModule: conditional GAN training with manual optimisation (pix2pix objective by default).

Lightning's ``global_step`` advances once per optimizer step, i.e. twice per batch here, so the
module keeps its own ``gan_step`` (one per batch) for budgets and schedules and saves it in every
checkpoint.
"""
from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from e2gan.data.dataset import to_uint8


class NonFiniteLoss(RuntimeError):
    """Training diverged: a loss or a weight became NaN/Inf."""


def nhwc(x: torch.Tensor) -> torch.Tensor:
    """An image batch in channels_last: every conv after it then runs NHWC (on 2 CPU cores a tiny
    preset step took 1.18x less time; the 3-channel 7x7 convs gain most). Same maths, float32 round-off."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


@contextmanager
def no_weight_grads(net: nn.Module | None):
    """The generator's adversarial term through a discriminator whose weights need no gradient.

    Its weight gradients would be discarded (the next D update starts from ``zero_grad``), so they
    are not computed: only the input gradients flow back to the generator, as pix2pix does.
    """
    trainable = [p for p in net.parameters() if p.requires_grad] if net is not None else []
    for p in trainable:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in trainable:
            p.requires_grad_(True)


def gan_loss(logits: torch.Tensor, real: bool, mode: str) -> torch.Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    if mode == "lsgan":
        return F.mse_loss(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target)


def gan_batch_step(generator: nn.Module, discriminator: nn.Module | None, src: torch.Tensor,
                   tgt: torch.Tensor, cid: torch.Tensor, opt_g, opt_d, *, lambda_l1: float,
                   gan_mode: str, backward=None, check=None, d_weight_grads: bool = False) -> dict:
    """One batch of the pix2pix objective: D on (real, detached fake), then G on L1 + adversarial.

    The training module and the benchmarks both run this, so a timed step is the trained one.
    ``opt_d`` None: the discriminator is frozen (or absent) and only G steps. ``backward``: Lightning's
    ``manual_backward`` inside the module. ``check(name, loss)`` raises on a non-finite loss.
    ``d_weight_grads=True`` computes D's weight gradients in G's term too (the step before
    2026-12-06, kept for the benchmark's before/after row). Returns the detached losses.
    """
    backward = backward or (lambda loss: loss.backward())
    fake = generator(src, cid)
    logs = {}
    if opt_d is not None:
        pred_real = discriminator(src, tgt)
        pred_fake = discriminator(src, fake.detach())
        loss_d = 0.5 * (gan_loss(pred_real, True, gan_mode) + gan_loss(pred_fake, False, gan_mode))
        if check:
            check("discriminator loss", loss_d)
        opt_d.zero_grad(set_to_none=True)
        backward(loss_d)
        opt_d.step()
        logs["loss_d"] = loss_d.detach()

    loss_l1 = F.l1_loss(fake, tgt)
    loss_g = lambda_l1 * loss_l1
    with nullcontext() if d_weight_grads else no_weight_grads(discriminator):
        if discriminator is not None:
            loss_adv = gan_loss(discriminator(src, fake), True, gan_mode)
            loss_g = loss_g + loss_adv
            logs["loss_g_adv"] = loss_adv.detach()
        if check:
            check("generator loss", loss_g)
        opt_g.zero_grad(set_to_none=True)
        backward(loss_g)
    opt_g.step()
    logs.update(loss_g=loss_g.detach(), loss_l1=loss_l1.detach())
    return logs


class PairedGANModule(L.LightningModule):
    def __init__(self, generator: nn.Module, discriminator: nn.Module | None, *,
                 total_steps: int, lr_g: float = 2e-4, lr_d: float = 2e-4,
                 betas: tuple[float, float] = (0.5, 0.999), lambda_l1: float = 100.0,
                 gan_mode: str = "vanilla", run_dir: str | Path | None = None,
                 grid_count: int = 8):
        super().__init__()
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator  # None: L1 only (no adversarial term)
        self.total_steps = total_steps
        self.lr_g, self.lr_d, self.betas = lr_g, lr_d, tuple(betas)
        self.lambda_l1, self.gan_mode = lambda_l1, gan_mode
        self.run_dir = Path(run_dir) if run_dir else None
        self.grid_count = grid_count
        self.gan_step = 0
        self.stop_reason: str | None = None
        self._val_sq_err = 0.0
        self._val_count = 0
        self._val_grid: list[torch.Tensor] = []

    # -- optimisation -------------------------------------------------------------------------
    def configure_optimizers(self):
        g_params = [p for p in self.generator.parameters() if p.requires_grad]
        opts = [torch.optim.Adam(g_params, lr=self.lr_g, betas=self.betas)]
        if self.discriminator is not None:
            d_params = [p for p in self.discriminator.parameters() if p.requires_grad]
            if d_params:
                opts.append(torch.optim.Adam(d_params, lr=self.lr_d, betas=self.betas))
        return opts

    def forward(self, source: torch.Tensor, concept_id: torch.Tensor) -> torch.Tensor:
        return self.generator(source, concept_id)

    def _check_finite(self, name: str, value: torch.Tensor) -> None:
        if not torch.isfinite(value).all():
            self.stop_reason = f"non-finite {name} at step {self.gan_step}"
            raise NonFiniteLoss(self.stop_reason)

    def training_step(self, batch: dict, batch_idx: int) -> None:
        if self.gan_step >= self.total_steps:  # the last epoch may be longer than the budget
            self.trainer.should_stop = True
            return
        opts = self.optimizers()
        opts = opts if isinstance(opts, list) else [opts]
        src = nhwc(batch["source"])
        logs = gan_batch_step(self.generator, self.discriminator, src, nhwc(batch["target"]),
                              batch["concept_id"], opts[0], opts[1] if len(opts) > 1 else None,
                              lambda_l1=self.lambda_l1, gan_mode=self.gan_mode,
                              backward=self.manual_backward, check=self._check_finite)

        self.gan_step += 1
        self.log_dict(logs, prog_bar=True, on_step=True, on_epoch=False, batch_size=src.shape[0])
        self.log("gan_step", float(self.gan_step), on_step=True, on_epoch=False, batch_size=src.shape[0])
        if self.gan_step >= self.total_steps:
            self.trainer.should_stop = True

    def on_train_epoch_end(self) -> None:
        # Before the epoch's checkpoint is written (Lightning saves it after this hook), so a
        # diverged network never lands in a checkpoint. Frozen weights cannot change, so only
        # trainable ones are checked.
        nets = [("generator", self.generator)]
        if self.discriminator is not None:
            nets.append(("discriminator", self.discriminator))
        for label, net in nets:
            for name, p in net.named_parameters():
                if p.requires_grad:
                    self._check_finite(f"{label} weight {name}", p)

    # -- validation: set-level PSNR and a fixed image grid --------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val_sq_err, self._val_count, self._val_grid = 0.0, 0, []

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        src, tgt, cid = batch["source"], batch["target"], batch["concept_id"]
        fake = self.generator(src, cid)
        # Set-level PSNR: from the mean squared error of the whole set, in [0, 1] units.
        diff = (fake.float() - tgt.float()) / 2.0
        self._val_sq_err += float(diff.pow(2).sum())
        self._val_count += diff.numel()
        need = self.grid_count - sum(len(g) for g in self._val_grid)
        if need > 0:
            self._val_grid.append(torch.stack([src[:need], tgt[:need], fake[:need]], 1).cpu())

    def on_validation_epoch_end(self) -> None:
        if self._val_count == 0:
            return
        sums = torch.tensor([self._val_sq_err, float(self._val_count)], device=self.device)
        sums = self.all_gather(sums)
        sums = sums.reshape(-1, 2).sum(0)
        mse = float(sums[0] / sums[1])
        psnr = 10 * math.log10(1.0 / max(mse, 1e-12))
        self.log("val_psnr", psnr, prog_bar=True, sync_dist=False, batch_size=1)
        if self.run_dir is not None and self.trainer.is_global_zero and self._val_grid and not self.trainer.sanity_checking:
            from e2gan.image_grid import save_triplet_grid
            rows = torch.cat(self._val_grid)[: self.grid_count]
            save_triplet_grid(to_uint8(rows), self.run_dir / "val" / f"step-{self.gan_step:06d}.png",
                              header=("source", "teacher", "model"))

    # -- checkpoints carry the step counter -------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["gan_step"] = self.gan_step

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.gan_step = int(checkpoint.get("gan_step", 0))
