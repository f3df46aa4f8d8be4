"""The learning curve: extra validations inside the epochs change no weight, survive a resume, and
reach result.json with counted FLOPs."""
import json

import pytest
import torch

from e2gan.pipeline.adapt import ensure_adapt
from e2gan.pipeline.base import ensure_base
from lightning_modules.training import val_check_interval
from tests.conftest import micro_config
from tests.lightning_modules.test_training import StopAfterFirstEpoch, _fit


def test_val_check_interval_divides_the_epoch():
    assert val_check_interval(100, 1, 0) == 1.0      # off: once per epoch, as before
    assert val_check_interval(100, 1, 5) == 20
    assert val_check_interval(100, 1, 3) == 25       # the next divisor: at least 3 points, evenly spaced
    assert val_check_interval(3, 2, 4) == 1
    assert val_check_interval(200, 6, 5) == 1.0      # six epochs already validate six times


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_curve_points_change_no_weight_and_survive_a_resume(micro_data, tmp_path):
    cfg = micro_config(train={"steps": 6, "ckpt_every": 3})
    g_plain, plain = _fit(cfg, tmp_path / "plain", micro_data)
    g_curve, curve = _fit(cfg, tmp_path / "curve", micro_data, curve_points=4)
    _same_weights(g_plain, g_curve)
    assert plain["val_psnr_last"] == curve["val_psnr_last"]
    assert [p["step"] for p in plain["curve"]] == [3, 6]
    assert [p["step"] for p in curve["curve"]] == [1, 2, 3, 4, 5, 6]
    by_step = {p["step"]: p["val_psnr"] for p in curve["curve"]}
    assert [by_step[p["step"]] == p["val_psnr"] for p in plain["curve"]] == [True, True]
    seconds = [p["train_seconds"] for p in curve["curve"]]
    assert seconds == sorted(seconds) and seconds[0] > 0
    assert [p["images_seen"] for p in curve["curve"]] == [4 * s for s in range(1, 7)]

    _, first = _fit(cfg, tmp_path / "resumed", micro_data, curve_points=4, extra_callbacks=[StopAfterFirstEpoch()])
    assert [p["step"] for p in first["curve"]] == [1, 2, 3]
    g_resumed, second = _fit(cfg, tmp_path / "resumed", micro_data, curve_points=4)
    _same_weights(g_curve, g_resumed)
    assert [(p["step"], p["val_psnr"]) for p in second["curve"]] == [(p["step"], p["val_psnr"]) for p in curve["curve"]]


@pytest.mark.slow
def test_adaptation_curve_reaches_result_json_with_flops(micro_data, micro_runs, tmp_path):
    base, _ = ensure_base(micro_config(), micro_data, micro_runs, progress=False)
    cfg = micro_config(adapt={"method": "lora", "steps": 3, "curve_points": 3})
    run, result = ensure_adapt(cfg, "hue-60", micro_data, base, tmp_path, progress=False)
    cost = result["cost"]
    assert [p["step"] for p in cost["curve"]] == [1, 2, 3]   # one epoch of 3 steps, validated after each
    assert [p["flops"] for p in cost["curve"]] == [s * cost["flops_per_step"] for s in (1, 2, 3)]
    assert cost["curve"][-1]["flops"] == cost["train_flops"]
    assert json.loads((run / "train.json").read_text())["curve"] == cost["curve"]
    # The same LoRA adaptation validated once: the stored weights are the same bytes.
    plain_run, plain = ensure_adapt(micro_config(adapt={"method": "lora", "steps": 3}), "hue-60", micro_data, base,
                                    tmp_path, progress=False)
    assert plain_run != run and [p["step"] for p in plain["cost"]["curve"]] == [3]
    for name in ("generator.safetensors", "adapter.safetensors"):
        assert (run / name).read_bytes() == (plain_run / name).read_bytes(), name
    assert plain["metrics"]["mean_over_concepts"] == result["metrics"]["mean_over_concepts"]
