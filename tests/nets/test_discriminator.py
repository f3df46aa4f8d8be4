import pytest
import torch

from e2gan.errors import InputError
from e2gan.nets.params import count_params
from e2gan.nets.discriminator import PatchDiscriminator, receptive_field
from e2gan.nets.factory import build_discriminator


@pytest.mark.parametrize("n_layers, rf", [(1, 16), (2, 34), (3, 70), (4, 142)])
def test_receptive_field_formula(n_layers, rf):
    assert receptive_field(n_layers) == rf
    assert PatchDiscriminator(ndf=4, n_layers=n_layers).receptive_field == rf


def test_receptive_field_measured_by_gradient():
    """The centre logit depends on exactly a 70x70 window of the input."""
    torch.manual_seed(0)
    d = PatchDiscriminator(ndf=4, n_layers=3, norm="none")  # batch norm would couple all pixels
    src = torch.randn(1, 3, 128, 128, requires_grad=True)
    logits = d(src, torch.randn(1, 3, 128, 128))
    logits[0, 0, logits.shape[2] // 2, logits.shape[3] // 2].backward()
    rows, cols = src.grad.abs().sum((0, 1)).nonzero(as_tuple=True)
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70


def test_pix2pix_default_layout():
    d = build_discriminator()
    assert count_params(d) == 2_768_705  # pix2pix reports 2.769 M for the basic D
    with torch.device("meta"):
        out = PatchDiscriminator()(torch.zeros(1, 3, 256, 256), torch.zeros(1, 3, 256, 256))
    assert out.shape == (1, 1, 30, 30)


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_conditional_on_both_inputs(norm):
    torch.manual_seed(0)
    d = PatchDiscriminator(ndf=8, n_layers=2, norm=norm).eval()
    src, img = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    out = d(src, img)
    assert out.shape == (2, 1, 6, 6)
    assert not torch.allclose(d(src, img.flip(-1)), out)
    assert not torch.allclose(d(src.flip(-1), img), out)


def test_bad_options():
    with pytest.raises(InputError, match="instance, batch, group, none"):
        PatchDiscriminator(norm="spectral")
    with pytest.raises(InputError, match="n_layers >= 1"):
        PatchDiscriminator(n_layers=0)
