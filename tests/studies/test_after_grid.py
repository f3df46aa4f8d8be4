"""What a spec runs beyond its grid: the greedy rank search ([greedy]) and host latency per arm."""
import json

import pytest

from e2gan.cli import main

SPEC = """
name = "micro-ranks"
table = "ranks"
metric = "psnr"
concepts = ["hue-60"]
seeds = [0]
latency = ["torch"]

[greedy]
seeds = [0]
max_rounds = 1

[config]
data = { resolution = 32, crops_per_photo = 2, base_concepts = ["hue-120", "pixelate"], new_concepts = ["hue-60"] }
model = { width = 8, attn_heads = 2, n_tokens = 2 }
disc = { ndf = 8, n_layers = 2 }
train = { steps = 4, batch_size = 4, ckpt_every = 2 }
adapt = { steps = 2, method = "lora", groups = ["ds", "tb"] }
eval = { n_test = 8, n_val = 4 }

[arms.uniform-1x]
adapt = { rank = 1 }

[arms.uniform-2x]
adapt = { rank = 2 }
"""


@pytest.mark.slow
def test_study_runs_the_greedy_search_and_latency_and_reports_both(tmp_path, capsys):
    spec = tmp_path / "micro-ranks.toml"
    spec.write_text(SPEC)
    runs, reports = tmp_path / "runs", tmp_path / "reports"
    assert main(["study", "run", str(spec), "--runs", str(runs), "--no-progress"]) == 0
    search = json.loads((runs / "studies" / "micro-ranks-tiny-greedy" / "search.json").read_text())
    assert search["protocol"]["groups"] == ["ds", "tb"] and search["protocol"]["max_rounds"] == 1
    schemes = {r["scheme"] for r in search["table"]}
    assert {"searched", "uniform 1x", "uniform 4x", "random"} <= schemes
    timed = [json.loads(p.read_text()) for p in runs.glob("adapt-*/result.json")]
    timed = [r for r in timed if "torch" in (r.get("latency") or {})]
    assert len(timed) == 2  # one run per arm
    assert all(r["latency"]["torch"]["median_ms"] > 0 for r in timed)
    # A second run measures and searches nothing new.
    before = sorted(p.name for p in runs.glob("adapt-*"))
    assert main(["study", "run", str(spec), "--runs", str(runs), "--no-progress"]) == 0
    assert sorted(p.name for p in runs.glob("adapt-*")) == before
    capsys.readouterr()
    assert main(["report", "--config", str(_micro_config(tmp_path)), "--specs", str(spec), "--runs", str(runs),
                 "--reports", str(reports)]) == 0
    page = (reports / "tiny" / "micro-ranks" / "index.md").read_text()
    assert "Greedy rank search" in page and "uniform 4x" in page
    assert "Latency and MACs" in page


def _micro_config(tmp_path):
    from tests.conftest import write_micro_toml

    return write_micro_toml(tmp_path / "micro.toml")
