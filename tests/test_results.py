import json

import pytest

from e2gan.errors import InputError
from e2gan.results import make_result, read_result, write_result


def _result(**metrics):
    return make_result(run="r", kind="base", metrics={"mean_over_concepts": metrics, "per_concept": {}},
                       protocol={"n": 3}, cost={}, config={}, env={})


def test_round_trip_and_strict_json(tmp_path):
    write_result(tmp_path, _result(psnr=float("inf"), fid=12.5))
    text = (tmp_path / "result.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    back = read_result(tmp_path)
    assert back["metrics"]["mean_over_concepts"] == {"psnr": None, "fid": 12.5}


def test_rewrite_keeps_export_and_latency(tmp_path):
    write_result(tmp_path, _result(psnr=20.0))
    data = json.loads((tmp_path / "result.json").read_text())
    data["latency"] = {"torch": {"median_ms": 3.0}}
    data["export"] = {"model": {"bytes": 10}}
    (tmp_path / "result.json").write_text(json.dumps(data))
    write_result(tmp_path, _result(psnr=21.0))
    again = read_result(tmp_path)
    assert again["latency"] == {"torch": {"median_ms": 3.0}} and again["export"] == {"model": {"bytes": 10}}
    assert again["metrics"]["mean_over_concepts"]["psnr"] == 21.0


@pytest.mark.parametrize("content,message", [(None, "no result.json"), ("{", "malformed result.json"),
                                             ('{"schema": 1}', "result.json lacks")])
def test_bad_results_are_named(tmp_path, content, message):
    if content is not None:
        (tmp_path / "result.json").write_text(content)
    with pytest.raises(InputError, match=message):
        read_result(tmp_path)


def test_backbone_label_names_what_ran_the_features():
    from e2gan.results import backbone_label

    assert backbone_label({"name": "effnet-lite0", "runtime": "LiteRT 2.3.0 (XNNPACK, float32)"}) == "effnet-lite0 via LiteRT"
    assert backbone_label({"name": "effnet-lite0", "runtime": "torch 2.14.1"}) == "effnet-lite0 via torch"
    assert backbone_label({"name": "inception"}) == "inception via torch"  # measured before there was a choice
    assert backbone_label("effnet-lite0") == "effnet-lite0" and backbone_label(None) == ""
