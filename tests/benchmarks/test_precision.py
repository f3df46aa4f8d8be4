"""The bf16/float32 step benchmark: each bf16 side trains its own copy of the arm's modules inside
CPU autocast, and each ratio is the median of per-round ratios (nothing here is about speed)."""
from __future__ import annotations

import statistics

import pytest
import torch


@pytest.fixture(scope="module")
def micro_ctx(tmp_path_factory):
    from benchmarks.common import make_context

    tmp = tmp_path_factory.mktemp("precision")
    return make_context("tiny", "micro", tmp / "runs", tmp / "work", threads=1)


def test_autocast_side_runs_the_step_in_bf16_and_the_other_does_not():
    from benchmarks.precision import _autocast

    seen = []
    step = lambda: seen.append(torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype)  # noqa: E731
    _autocast(step, True)()
    _autocast(step, False)()
    assert seen == [torch.bfloat16, torch.float32]


@pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="this CPU has no native bf16")
def test_ratios_are_medians_of_per_round_ratios(micro_ctx):
    from benchmarks.precision import run

    res = run(micro_ctx)
    per = {k: v["per_round"] for k, v in res["data"]["steps"].items()}
    assert set(per) == {f"{a}-{p}" for a in ("e2gan", "full", "pix2pix", "base") for p in ("fp32", "bf16")}
    for arm, ratio in res["data"]["bf16_over_fp32"].items():
        assert ratio == pytest.approx(statistics.median(a / b for a, b in zip(per[f"{arm}-bf16"], per[f"{arm}-fp32"])))
    assert [c["key"] for c in res["checks"]] == [f"precision.{a}" for a in ("e2gan", "full", "pix2pix", "base")]


def test_a_cpu_without_bf16_is_reported_not_measured(micro_ctx, monkeypatch):
    from benchmarks.precision import run

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    res = run(micro_ctx)
    assert res["checks"][0]["measured"] is None and "no native bf16" in res["checks"][0]["note"]
