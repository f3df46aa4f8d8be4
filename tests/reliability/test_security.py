"""Security: nothing is unpickled from a checkpoint except tensors and plain data, adapters and
generators load only from safetensors, plug-in teachers only from an explicit ``module:callable``,
storage passwords never reach logs, report HTML escapes user strings, and no file is written outside
the chosen output folder (path traversal in concept names and ids is refused).

adb shell arguments are quoted: ``tests/deploy/test_adb.py::test_injection_in_paths_is_quoted`` and
``::test_benchmark_command_quotes_every_argument`` (a fake device runs the real shell commands).
Concept names with markup in a study report: ``tests/reporting/test_study_report.py::
test_markup_in_a_concept_name_is_escaped``.
"""
from __future__ import annotations

import builtins
import json
import pickle

import pytest
import torch

from e2gan.cli import main
from e2gan.errors import InputError
from tests.reliability.common import copy_run, one_error_line, snapshot


class _Payload:
    """Unpickling this creates a marker file: proof that arbitrary code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def _resume_argv(trained, run, tmp_path):
    return ["train-base", "--config", str(trained["cfg"]), "--runs", str(tmp_path / "runs"), "--run-dir", str(run),
            "--no-progress"]


def test_resume_refuses_a_checkpoint_with_arbitrary_objects(trained, tmp_path, capsys):
    run, _ = copy_run(trained, tmp_path)
    (run / "train.json").unlink()  # unfinished: the next train-base resumes from last.ckpt
    last = run / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    marker = tmp_path / "pwned"
    ckpt["hyper_parameters"] = {"x": _Payload(marker)}
    torch.save(ckpt, last)
    before = snapshot(run)
    capsys.readouterr()
    assert main(_resume_argv(trained, run, tmp_path)) == 2
    line = one_error_line(capsys)
    assert str(last) in line and "weights_only=True" in line
    assert not marker.exists()
    assert snapshot(run) == before


def test_resume_loads_checkpoints_weights_only(trained, tmp_path, monkeypatch, capsys):
    run, _ = copy_run(trained, tmp_path)
    (run / "train.json").unlink()
    calls = []
    real_load = torch.load

    def spy(f, *args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # an explicit True must still win
    assert main(_resume_argv(trained, run, tmp_path)) == 0
    assert len(calls) >= 2 and all(w is True for w in calls), calls  # our check + Lightning's restore
    assert json.loads((run / "train.json").read_text())["gan_step"] == 2


def test_generator_and_adapter_load_only_from_safetensors(trained, tmp_path, monkeypatch):
    from e2gan.nets.lora import ADAPTER_META, ADAPTER_WEIGHTS, load_adapter
    from e2gan.io import sha256_file
    from e2gan.nets.registry import load_generator

    def no_unpickling(*args, **kwargs):
        raise AssertionError("torch.load / pickle used to load weights")

    monkeypatch.setattr(torch, "load", no_unpickling)
    monkeypatch.setattr(pickle, "load", no_unpickling)
    run, _ = copy_run(trained, tmp_path)
    load_generator(run)  # the real file loads without any unpickling
    marker = tmp_path / "pwned"
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / ADAPTER_META).write_text(json.dumps({"base_sha256": sha256_file(run / "generator.safetensors"),
                                                    "ranks": {"up": 1}, "alpha_ratio": 2, "concept_ids": [2]}))
    (adapter / ADAPTER_WEIGHTS).write_bytes(pickle.dumps({"w": _Payload(marker)}))
    with pytest.raises(InputError, match="unreadable adapter weights.*safetensors"):
        load_adapter(run, adapter)
    (run / "generator.safetensors").write_bytes(pickle.dumps({"w": _Payload(marker)}))
    with pytest.raises(InputError, match="unreadable generator weights.*safetensors"):
        load_generator(run)
    assert not marker.exists()


@pytest.mark.parametrize("spec", ["os", "subprocess", "e2gan", "procedural_teacher", "", "  ", ":", "os:", ":system"])
def test_plugin_teacher_needs_explicit_module_and_callable(spec, monkeypatch):
    import importlib

    from e2gan.teachers import load_teacher

    imported = []
    real = importlib.import_module
    monkeypatch.setattr(importlib, "import_module", lambda name, *a: imported.append(name) or real(name, *a))
    with pytest.raises(InputError, match="module:"):
        load_teacher(spec)
    assert imported == []  # a bare name is refused before anything is imported


@pytest.mark.parametrize("url,secret", [
    ("postgresql+psycopg2://alice:hunter2@db.example:5432/studies", "hunter2"),
    ("postgresql://:hunter2@db.example/studies", "hunter2"),
    ("mysql+pymysql://bob:p@ss:w0rd@db.example/x", "ss:w0rd"),  # unescaped '@' and ':' in a password
    ("postgresql://db.example/studies?user=carol&password=hunter2&sslmode=require", "hunter2"),
    ("postgresql://db.example/studies?PASSWORD=hunter2", "hunter2"),
])
def test_storage_passwords_are_redacted(url, secret):
    from studies.runner import redact

    out = redact(url)
    assert secret not in out and "***" in out
    assert out.split("//")[0] == url.split("//")[0]  # still says which database it is


def test_redaction_reaches_the_cli_line(tmp_path, capsys):
    spec = tmp_path / "mini.toml"
    spec.write_text('name = "mini"\nmetric = "psnr"\nconcepts = ["hue-60"]\nseeds = [0]\n'
                    '[arms.e2gan]\nadapt = { method = "lora" }\n')
    url = "postgresql+psycopg2://alice:hunter2@127.0.0.1:1/studies?password=hunter2"
    assert main(["study", "status", str(spec), "--storage", url]) == 2
    captured = capsys.readouterr()
    assert "hunter2" not in captured.err + captured.out
    assert "alice:***@127.0.0.1:1" in one_error_line_from(captured.err)


def one_error_line_from(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


PAYLOAD = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_report_html_escapes_user_strings():
    from e2gan.reporting.html import markdown_table_to_html, page, paragraph

    table = markdown_table_to_html(f"| concept | psnr |\n|---|---|\n| {PAYLOAD} | 20.0 |\n")
    html = page(PAYLOAD, [(PAYLOAD, paragraph(PAYLOAD) + table)])
    assert "<script>" not in html and "<img" not in html
    assert html.count("&lt;script&gt;") == 5  # title, h1, h2, paragraph, table cell


@pytest.mark.parametrize("name", ["../x", "..", "a/b", "a\\b", "/etc", ".hidden", "x\x00y", "Upper", "", "a b"])
def test_concept_names_that_could_escape_a_folder_are_refused(name):
    from e2gan.data.concepts import check_concept_name

    with pytest.raises(InputError, match="concept name"):
        check_concept_name(name, "test")


@pytest.mark.parametrize("source_id", ["../x", "..", "a/b", "/abs", ".x", "-x"])
def test_source_ids_that_could_escape_a_folder_are_refused(source_id, tmp_path):
    from PIL import Image

    from e2gan.data.distill import distill
    from e2gan.data.sources import SourceImage
    from e2gan.data.concepts import load_concepts
    from e2gan.teachers.loading import load_teacher

    src = SourceImage(source_id, "train", Image.new("RGB", (8, 8)))
    concepts = [c for c in load_concepts() if c.name == "warm"]
    with pytest.raises(InputError, match="source id"):
        distill([src], concepts, load_teacher("procedural"), tmp_path / "out", progress=False)
    assert not any((tmp_path / "out").rglob("*.png"))
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("argv_extra,fragment", [
    (["adapt", "--concept", "../../escape", "--method", "scratch"], "concept name '../../escape'"),
])
def test_traversal_on_the_command_line_writes_nothing(argv_extra, fragment, trained, tmp_path, capsys):
    runs = tmp_path / "out" / "runs"
    assert main([*argv_extra, "--config", str(trained["cfg"]), "--runs", str(runs), "--no-progress"]) == 2
    assert fragment in one_error_line(capsys)
    assert snapshot(tmp_path) == {}  # not even the data was distilled


def test_spec_names_that_could_escape_are_refused(tmp_path, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text('name = "../../escape"\nmetric = "psnr"\nconcepts = ["hue-60"]\n[arms.a]\nadapt = { method = "lora" }\n')
    assert main(["study", "run", str(spec), "--runs", str(tmp_path / "runs"), "--no-progress"]) == 2
    assert "'name' = '../../escape'" in one_error_line(capsys)
    assert not (tmp_path / "runs").exists() and not (tmp_path.parent / "escape").exists()


@pytest.mark.slow
def test_no_file_is_written_outside_the_output_folder(tmp_path, monkeypatch):
    """distill, train-base and evaluate from an unrelated working directory write only under --runs."""
    from tests.conftest import write_micro_toml

    (tmp_path / "cfg").mkdir()
    cfg = write_micro_toml(tmp_path / "cfg" / "micro.toml", train={"steps": 2, "ckpt_every": 2})
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    runs = tmp_path / "out"
    before = snapshot(tmp_path)
    assert main(["train-base", "--config", str(cfg), "--runs", str(runs), "--no-progress"]) == 0
    assert main(["evaluate", str(next(runs.glob("base-*")))]) == 0
    after = snapshot(tmp_path)
    outside = sorted(k for k in set(after) - set(before) if not k.startswith("out/"))
    assert outside == []
    assert {k: after[k] for k in before} == before
