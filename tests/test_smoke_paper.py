"""`make smoke-paper` and the README guide it stands behind.

The slow test is the smoke run itself (the same ``tests.smoke_paper.run`` the make target calls);
the fast ones hold the guide and the smoke run's commands together.
"""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tests import smoke_paper as sp

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- smoke-paper:guide:start -->", "<!-- smoke-paper:guide:end -->"


def test_readme_guide_is_the_rendered_smoke_run():
    text = README.read_text()
    assert START in text and END in text, "README lacks the smoke-paper guide markers"
    block = text[text.index(START) + len(START):text.index(END)].strip("\n")
    assert block == sp.render_guide(), "README guide drifted from tests/smoke_paper.py: paste render_guide()"


def test_each_smoke_command_is_the_guide_command_plus_only_runs_and_length_flags(tmp_path):
    (tmp_path / "runs" / "base-paper-abc").mkdir(parents=True)
    values = dict(sp.GUIDE_VALUES, RUNS=str(tmp_path / "runs"), REPORTS="out/reports")
    allowed = {"--runs", "--no-progress", "--warmup", "--reports"}  # latency's --runs is a count
    for step in sp.STEPS:
        guide = shlex.split(step.args.format(**values))
        smoke = sp.smoke_argv(step, values)
        assert [a.replace("*", "abc") for a in guide] == smoke[:len(guide)], step.name
        extra = [a for a in smoke[len(guide):] if a.startswith("--")]
        assert set(extra) <= allowed, (step.name, extra)


def test_reduced_lengths_leave_the_paper_architecture_alone():
    cfg = sp.smoke_config(dict(sp.GUIDE_VALUES))
    assert cfg["preset"] == "paper" and not {"model", "disc"} & set(cfg)
    assert "resolution" not in cfg["data"] and cfg["data"]["concepts_file"] == "ffhq"


def test_smoke_refuses_to_clear_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "precious.txt").write_text("keep")
    with pytest.raises(RuntimeError, match="not a smoke-paper folder"):
        sp.run(tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep"


@pytest.mark.slow
def test_smoke_paper_runs_every_stage_of_the_paper_preset(tmp_path):
    summary = sp.run(tmp_path / "smoke", log=lambda line: None)
    names = [s["stage"] for s in summary["stages"]][1:]
    assert names == [s.name for s in sp.STEPS]
    # check() raised on the first failure; these are the checks that held, one per stage group.
    joined = "\n".join(summary["checks"])
    for expected in ("two shards", "2 gloo processes", "LoRA on down,ds,tb,us,up", "exported at 256²",
                     "latency at 256²", "report written"):
        assert expected in joined, (expected, joined)
    assert (tmp_path / "smoke" / "smoke-paper.json").is_file()
