"""gan_step_flops counts on meta copies: the same FLOPs as one real step, the networks untouched."""
import copy

import pytest
import torch
from torch import nn

from e2gan.nets.lora import LoraSpec, add_lora
from e2gan.config import CRUCIAL
from e2gan.metrics.train_cost import _step_flops, gan_step_flops
from e2gan.nets.factory import build_discriminator, build_generator
from e2gan.nets.text_encoder import CLIPConceptEncoder


def real_step_flops(generator, discriminator, batch_size, resolution, lambda_l1=100.0):
    """The count on real CPU tensors: the same objective, run for real on CPU copies."""
    return _step_flops(generator, discriminator, batch_size, resolution, lambda_l1, torch.device("cpu"))


def e2gan(**kw):
    torch.manual_seed(0)
    return build_generator("e2gan", n_concepts=2, width=8, attn_heads=2, n_tokens=2, **kw)


def lora_e2gan():
    g = e2gan(norm="none", lowres_skip=True)
    g.concepts.add_concepts(1, "mean")
    g = add_lora(g, LoraSpec({group: 2 for group in CRUCIAL}))
    g.concepts.tables[-1].requires_grad_(True)
    return g


def clip_e2gan():
    shell = CLIPConceptEncoder.cached(3, n_tokens=4, hidden_size=12, token_dim=16)
    torch.manual_seed(0)
    return build_generator("e2gan", n_concepts=3, width=8, attn_heads=2, n_tokens=4, concept_encoder=shell)


def disc():
    return build_discriminator(in_channels=6, ndf=8, n_layers=2)


CASES = {
    "lora, fresh D": (lora_e2gan, disc),
    "full fine-tune, fresh D": (e2gan, disc),
    "full fine-tune, no D": (e2gan, lambda: None),
    "clip tokens, no D": (clip_e2gan, lambda: None),
    "pix2pix, fresh D": (lambda: build_generator("pix2pix", ngf=8, n_blocks=2), disc),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("batch_size, resolution", [(2, 32), (3, 64)])
def test_meta_count_equals_a_real_step(case, batch_size, resolution):
    make_g, make_d = CASES[case]
    g, d = make_g(), make_d()
    assert gan_step_flops(g, d, batch_size, resolution, 10.0) == real_step_flops(g, d, batch_size, resolution, 10.0)


def test_networks_are_left_alone():
    g, d = lora_e2gan(), disc()
    before = [copy.deepcopy(m.state_dict()) for m in (g, d)]
    g.eval()
    gan_step_flops(g, d, 2, 32)
    assert not g.training and d.training
    for m, state in zip((g, d), before):
        assert all(p.grad is None for p in m.parameters())
        assert all(p.device.type == "cpu" for p in m.parameters())
        assert all(torch.equal(state[k], v) for k, v in m.state_dict().items())


class DataDependent(nn.Module):
    """A generator whose forward reads a value (cannot run on meta tensors)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x, concept_ids):
        return self.conv(x) * (1.0 + float(concept_ids.max()))


def test_a_network_that_needs_values_is_counted_on_real_copies():
    g, d = DataDependent(), disc()
    assert gan_step_flops(g, d, 2, 32) == real_step_flops(g, d, 2, 32) > 0


def test_a_frozen_discriminator_counts_no_update_of_its_own():
    """adapt.disc = "frozen": D still scores G's output (its forward and the backward into G count),
    but it takes no update step, as in the training step."""
    g, d = lora_e2gan(), disc()
    fresh = gan_step_flops(g, d, 2, 32, 10.0)
    d.requires_grad_(False)
    frozen = gan_step_flops(g, d, 2, 32, 10.0)
    without = gan_step_flops(g, None, 2, 32, 10.0)
    assert without < frozen < fresh
