import time

import pytest
import torch
from torch import nn

from e2gan.metrics import cost
from e2gan.metrics.cost import (Stopwatch, analytic_conv_macs, bytes_of_tensors, count_macs, describe_model,
                                peak_memory_bytes, reset_peak_memory, training_step_flops)
from e2gan.nets.factory import build_discriminator, build_generator
from e2gan.nets.generator import LAYER_GROUPS
from e2gan.nets.params import count_params


@pytest.mark.parametrize("stride, groups", [(1, 1), (2, 1), (2, 4)])
def test_conv_macs_match_formula(stride, groups):
    conv = nn.Conv2d(8, 16, 3, stride, 1, groups=groups)
    x = torch.randn(2, 8, 16, 16)
    out_hw = (16 // stride) ** 2
    expected = 2 * out_hw * 16 * (8 // groups) * 9
    assert count_macs(conv, (x,))["total"] == expected == analytic_conv_macs(conv, (x,))


def test_linear_and_transposed_conv_conventions():
    lin, x = nn.Linear(10, 7), torch.randn(3, 5, 10)
    assert count_macs(lin, (x,))["total"] == 3 * 5 * 10 * 7 == analytic_conv_macs(lin, (x,))
    up, x = nn.ConvTranspose2d(4, 6, 3, 2, 1, output_padding=1), torch.randn(1, 4, 8, 8)
    at_input = 8 * 8 * 4 * 6 * 9
    assert count_macs(up, (x,))["total"] == at_input
    assert analytic_conv_macs(up, (x,)) == 4 * at_input  # textbook: at the 16x16 output


def test_count_macs_on_meta_matches_real_and_leaves_model_alone():
    g = build_generator("e2gan", n_concepts=2, width=8)
    args = (torch.randn(1, 3, 32, 32), torch.tensor([1]))
    real, meta = count_macs(g, args), count_macs(g, args, on_meta=True)
    assert real == meta and real["total"] > 0
    assert next(g.parameters()).device.type == "cpu"


def test_describe_e2gan_rows_add_up():
    g = build_generator("e2gan", n_concepts=3, width=16)
    rows = describe_model(g, 64)
    assert [r["group"] for r in rows] == list(LAYER_GROUPS) + ["concepts", "total"]
    *parts, total = rows
    assert sum(r["params"] for r in parts) == total["params"] == count_params(g)
    assert sum(r["macs"] for r in parts) == total["macs"]
    assert rows[-2] == {"group": "concepts", "params": 3 * 4 * 64, "macs": 0}
    assert 0.12e9 < total["macs"] < 0.16e9  # 0.139 GMACs at 64²


def test_describe_pix2pix_and_discriminator():
    p = describe_model(build_generator("pix2pix", ngf=8, n_blocks=2), (32, 48))
    assert [r["group"] for r in p] == ["down", "blocks", "up", "total"]
    assert p[1]["macs"] == 2 * 2 * (32 * 32 * 9) * (8 * 12)  # 2 blocks x 2 convs 32->32 at 8x12
    d = describe_model(build_discriminator(ndf=8, n_layers=2), 32)
    assert [r["group"] for r in d] == ["stem", "down", "mid", "head", "total"]
    assert d[0]["macs"] == 16 * 16 * 8 * 6 * 16  # 6-channel input, k4 s2 to 16x16


def test_training_step_flops_counts_forward_and_backward():
    lin, x = nn.Linear(10, 5), torch.randn(3, 10)
    # forward 2*B*I*O, backward the weight gradient 2*B*I*O (no input gradient needed)
    assert training_step_flops(lambda: lin(x).sum().backward()) == 4 * 3 * 10 * 5


def test_bytes_of_tensors():
    sd = nn.Linear(10, 5).state_dict()
    assert bytes_of_tensors(sd) == 55 * 4
    assert bytes_of_tensors(sd, dtype_bytes=2) == 55 * 2
    assert bytes_of_tensors([torch.zeros(3, dtype=torch.float16)]) == 6


def test_stopwatch_excludes_paused_sections(monkeypatch):
    clock = iter([0.0, 1.0, 4.0, 6.0, 10.0, 12.0])
    monkeypatch.setattr(cost.time, "perf_counter", lambda: next(clock))
    sw = Stopwatch()
    with sw:                      # starts at 0
        with sw.paused():         # paused at 1, resumed at 4
            pass
        assert sw.elapsed == 3.0  # read at 6: 1 + 2
    assert sw.elapsed == 7.0      # stopped at 10: 1 + 6
    with sw.paused():             # pausing a stopped watch keeps it stopped
        pass
    assert not sw.running and sw.elapsed == 7.0


def test_stopwatch_real_clock():
    sw = Stopwatch().start()
    with sw.paused():
        time.sleep(0.05)
    assert sw.stop() < 0.04


def test_peak_memory_cpu_sees_a_large_allocation():
    reset_peak_memory("cpu")
    before = peak_memory_bytes("cpu")
    assert before["device"] == "cpu" and before["kind"].startswith("process_peak_rss")
    big = torch.ones(64 * 2**20)  # 256 MiB, touched
    after = peak_memory_bytes("cpu")["bytes"]
    del big
    assert after - before["bytes"] >= 200 * 2**20
