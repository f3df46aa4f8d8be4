from torch import nn

from e2gan.nets.params import count_params


def test_count_params_trainable_only():
    m = nn.Sequential(nn.Linear(10, 5), nn.Linear(5, 2))
    m[0].requires_grad_(False)
    assert count_params(m) == 55 + 12 and count_params(m, trainable_only=True) == 12
