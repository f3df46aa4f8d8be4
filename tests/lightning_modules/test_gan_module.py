"""The GAN step's speed-ups change no maths: the discriminator without weight gradients in the
generator's term, and image batches in channels_last."""
import torch

from e2gan.config import DiscConfig, ModelConfig
from e2gan.nets.registry import make_discriminator, make_generator
from lightning_modules.gan_module import gan_loss, nhwc, no_weight_grads


def _nets():
    torch.manual_seed(0)
    return make_generator(ModelConfig(width=8, attn_heads=2, n_tokens=2), 2), make_discriminator(DiscConfig(ndf=8, n_layers=2))


def _batch():
    gen = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1, torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1


def _generator_grads(g, d, src, tgt, frozen: bool):
    fake = g(src, torch.zeros(2, dtype=torch.long))
    g.zero_grad(set_to_none=True)
    d.zero_grad(set_to_none=True)
    if frozen:
        with no_weight_grads(d):
            (100 * (fake - tgt).abs().mean() + gan_loss(d(src, fake), True, "vanilla")).backward()
    else:
        (100 * (fake - tgt).abs().mean() + gan_loss(d(src, fake), True, "vanilla")).backward()
    return [p.grad.clone() for p in g.parameters() if p.grad is not None], [p.grad for p in d.parameters()]


def test_the_generator_gets_the_same_gradients_bit_for_bit_and_the_discriminator_none():
    g, d = _nets()
    src, tgt = _batch()
    d_state = {k: v.clone() for k, v in d.state_dict().items()}
    plain, d_grads = _generator_grads(g, d, src, tgt, frozen=False)
    d.load_state_dict(d_state)  # the batch-norm running stats moved: start the second pass alike
    frozen, d_none = _generator_grads(g, d, src, tgt, frozen=True)
    assert len(plain) == len(frozen) > 0 and all(torch.equal(a, b) for a, b in zip(plain, frozen))
    assert any(x is not None for x in d_grads) and all(x is None for x in d_none)
    # Trainable again afterwards; a weight frozen before (a frozen discriminator) stays frozen.
    assert all(p.requires_grad for p in d.parameters())
    first = next(d.parameters())
    first.requires_grad_(False)
    with no_weight_grads(d):
        assert not any(p.requires_grad for p in d.parameters())
    assert not first.requires_grad and all(p.requires_grad for p in list(d.parameters())[1:])


def test_channels_last_batches_give_the_same_outputs_to_round_off():
    g, d = _nets()
    src, tgt = _batch()
    cid = torch.zeros(2, dtype=torch.long)
    with torch.no_grad():
        a, b = g(src, cid), g(nhwc(src), cid)
        assert nhwc(src).is_contiguous(memory_format=torch.channels_last)
        assert torch.allclose(a, b, atol=1e-5) and torch.allclose(d(src, tgt), d(nhwc(src), nhwc(tgt)), atol=1e-5)
    assert nhwc(cid) is cid  # not an image batch: untouched
