import pytest
import torch
from torch import nn

from e2gan.errors import InputError
from e2gan.metrics.cost import analytic_conv_macs, count_macs
from e2gan.nets.params import count_params
from e2gan.nets.pix2pix import ResnetGenerator


@pytest.mark.parametrize("norm, expected", [("instance", 11_378_179), ("batch", 11_383_427)])
def test_resnet9_param_count(norm, expected):
    # pix2pix/CycleGAN report 11.378 M for resnet_9blocks (instance norm, convs with bias)
    assert count_params(ResnetGenerator(ngf=64, n_blocks=9, norm=norm)) == expected
    assert count_params(ResnetGenerator(norm=norm, upsample="resize")) == expected


@pytest.mark.parametrize("upsample, n_transposed", [("transpose", 2), ("resize", 0)])
def test_shapes_and_upsampling_kind(upsample, n_transposed):
    g = ResnetGenerator(ngf=8, n_blocks=2, upsample=upsample)
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in g.modules()) == n_transposed
    x = torch.randn(2, 3, 32, 32)
    y = g(x)
    assert y.shape == (2, 3, 32, 32) and y.abs().max() <= 1
    assert torch.equal(g(x, torch.tensor([0, 5])), y)  # concept ids are ignored


def test_transposed_conv_conventions_at_256():
    """flop_counter counts ConvTranspose2d at input resolution (49.55 G); the textbook count
    at output resolution (56.80 G) equals the resize variant's."""
    with torch.device("meta"):
        x = torch.zeros(1, 3, 256, 256)
        t, r = ResnetGenerator(), ResnetGenerator(upsample="resize")
        counted, textbook = count_macs(t, (x,))["total"], analytic_conv_macs(t, (x,))
        resize = count_macs(r, (x,))["total"]
    assert round(counted / 1e9, 2) == 49.55
    assert round(textbook / 1e9, 2) == 56.80 and resize == textbook
    # the two transposed convs (256->128 to 128², 128->64 to 256²) counted at a quarter of their pixels
    transposed = 9 * (256 * 128 * 128**2 + 128 * 64 * 256**2)
    assert textbook - counted == transposed * 3 // 4


def test_dropout_and_bad_options():
    g = ResnetGenerator(ngf=8, n_blocks=3, use_dropout=True)
    assert sum(isinstance(m, nn.Dropout) for m in g.modules()) == 3
    with pytest.raises(InputError, match="'instance' or 'batch'"):
        ResnetGenerator(norm="group")
    with pytest.raises(InputError, match="transpose, resize"):
        ResnetGenerator(upsample="bilinear")
    with pytest.raises(InputError, match="divisible by 4"):
        g(torch.zeros(1, 3, 30, 32))
