"""The LoRA/full step benchmark: its sides are set up as adaptation sets them up, and its ratio is the
median of per-round ratios of the steps it timed (nothing here is about speed)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def micro_ctx(tmp_path_factory):
    from benchmarks.common import make_context

    tmp = tmp_path_factory.mktemp("lora_step")
    return make_context("tiny", "micro", tmp / "runs", tmp / "work", threads=1)


def test_sides_train_what_adaptation_trains(micro_ctx):
    from benchmarks.lora_step import _sides
    from e2gan.nets.lora import _MergedWeightForward

    sides = _sides(micro_ctx)
    full, lora, peft = (sides[k][0] for k in ("full", "lora", "lora_peft"))
    assert all(p.requires_grad for p in full.parameters())
    trainable = {n for n, p in lora.named_parameters() if p.requires_grad}
    assert trainable == {n for n, p in peft.named_parameters() if p.requires_grad}
    assert all("lora_" in n or n.startswith("concepts.") for n in trainable)
    merged = [m for m in lora.modules() if isinstance(vars(m).get("forward"), _MergedWeightForward)]
    assert merged and not any(isinstance(vars(m).get("forward"), _MergedWeightForward) for m in peft.modules())
    assert sides["lora"][2] == micro_ctx.cfg.adapt.lr and sides["full"][2] == micro_ctx.cfg.train.lr_g


def test_ratio_is_the_median_of_per_round_ratios(micro_ctx):
    import statistics

    from benchmarks.lora_step import run

    res = run(micro_ctx)
    d = res["data"]
    per = {k: v["per_round"] for k, v in d["steps"].items()}
    assert len(per["lora"]) == micro_ctx.scale.step_rounds
    assert d["lora_over_full"] == pytest.approx(statistics.median(a / b for a, b in zip(per["lora"], per["full"])))
    assert d["lora_peft_over_full"] == pytest.approx(
        statistics.median(a / b for a, b in zip(per["lora_peft"], per["full"])))
    (c,) = res["checks"]
    assert c["key"] == "lora_step.ratio" and c["measured"] == d["lora_over_full"] and c["target"] == 1.0
    assert res["before_after"][0]["after"] == pytest.approx(statistics.median(per["lora"]))
