"""FLOPs of one GAN training step (D on real and fake, G through D and L1), counted, not estimated."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from e2gan.metrics.cost import training_step_flops


def gan_step_flops(generator: nn.Module, discriminator: nn.Module | None, batch_size: int,
                   resolution: int, lambda_l1: float = 100.0) -> int:
    """FLOPs of one batch of the pix2pix objective, on throwaway copies (weights stay untouched).

    Only parameters that require gradients get weight gradients, so a frozen base with LoRA is
    counted as cheaper in its backward pass, as it is. The copies live on the meta device: the
    counter reads shapes only, so the count is the same as on real tensors without the compute;
    a network that cannot run there (data-dependent code) is counted on copies on its own device.
    """
    try:
        return _step_flops(generator, discriminator, batch_size, resolution, lambda_l1, torch.device("meta"))
    except (NotImplementedError, RuntimeError):
        device = next(generator.parameters()).device
        return _step_flops(generator, discriminator, batch_size, resolution, lambda_l1, device)


def _step_flops(generator: nn.Module, discriminator: nn.Module | None, batch_size: int, resolution: int,
                lambda_l1: float, device: torch.device) -> int:
    g = copy.deepcopy(generator).to(device).train()  # .to keeps each parameter's requires_grad
    d = copy.deepcopy(discriminator).to(device).train() if discriminator is not None else None
    src = torch.zeros(batch_size, 3, resolution, resolution, device=device)
    tgt = torch.zeros_like(src)
    cid = torch.zeros(batch_size, dtype=torch.long, device=device)

    # As the training step: D's own update only when some of its weights train (adapt.disc="frozen").
    d_trains = d is not None and any(p.requires_grad for p in d.parameters())

    def step():
        fake = g(src, cid)
        if d_trains:
            real_logits, fake_logits = d(src, tgt), d(src, fake.detach())
            loss_d = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits)) + \
                F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
            loss_d.backward()
        loss_g = lambda_l1 * F.l1_loss(fake, tgt)
        if d is not None:
            adv = d(src, fake)
            loss_g = loss_g + F.binary_cross_entropy_with_logits(adv, torch.ones_like(adv))
        loss_g.backward()

    return training_step_flops(step)
