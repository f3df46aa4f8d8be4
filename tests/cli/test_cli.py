"""The CLI: one-line errors with exit 2, and the end-to-end reproduce on a micro configuration."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from e2gan.cli import main
from tests.conftest import write_micro_toml


def _error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize("argv,pattern", [
    (["describe", "--preset", "huge"], "error: unknown preset 'huge' (--preset)"),
    (["distill", "--steps", "0"], "error: 'train.steps' = 0 (command line): a positive number"),
    (["distill", "--resolution", "-8"], "error: 'data.resolution' = -8 (command line): a positive number"),
    (["distill", "--config", "/no/such.toml"], "error: config file not found (/no/such.toml)"),
    (["distill", "--teacher", "nosuchteacher"], "error:"),
    (["evaluate", "/no/such/run"], "error: no run or checkpoint (/no/such/run)"),
    # a flag would reach reproduce's base but not its study cells: only --config reaches both
    (["reproduce", "--precision", "bf16-mixed", "--specs", "none"], "error: --precision with reproduce (--precision): "
     "the setting in a --config TOML file"),
    (["reproduce", "--steps", "10", "--specs", "none"], "error: --steps with reproduce (--steps)"),
])
def test_bad_input_is_one_line_and_exit_2(argv, pattern, capsys, tmp_path):
    assert main([*argv, *(["--runs", str(tmp_path)] if argv[0] in ("distill", "reproduce") else [])]) == 2
    assert _error_line(capsys).startswith(pattern)


def test_missing_and_empty_source_folders(tmp_path, capsys):
    assert main(["distill", "--sources", str(tmp_path / "absent"), "--runs", str(tmp_path)]) == 2
    assert str(tmp_path / "absent") in _error_line(capsys)
    (tmp_path / "empty").mkdir()
    assert main(["distill", "--sources", str(tmp_path / "empty"), "--runs", str(tmp_path)]) == 2
    assert str(tmp_path / "empty") in _error_line(capsys)
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*.png"))


def test_corrupt_image_is_named(tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("RGB", (40, 40), "red").save(folder / "good.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    assert main(["distill", "--sources", str(folder), "--runs", str(tmp_path)]) == 2
    assert "broken.jpg" in _error_line(capsys)


def test_describe_prints_groups(capsys):
    assert main(["describe", "--resolution", "64", "--discriminator"]) == 0
    out = capsys.readouterr().out
    for group in ("down", "rb1", "rb2", "ds", "tb", "us", "rb3", "up", "total", "PatchGAN"):
        assert group in out


def test_help_does_not_import_torch():
    code = "import sys; from e2gan.cli.parser import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.slow
def test_reproduce_end_to_end_and_resume(tmp_path, capsys):
    cfg = write_micro_toml(tmp_path / "micro.toml", train={"steps": 8, "ckpt_every": 4})
    spec = tmp_path / "mini.toml"
    spec.write_text('name = "mini"\ntitle = "mini"\ntable = "main"\nmetric = "psnr"\nconcepts = ["hue-60"]\n'
                    'seeds = [0]\n[config]\nadapt = { steps = 2 }\n[arms.e2gan]\nadapt = { method = "lora" }\n'
                    '[arms.scratch]\nadapt = { method = "scratch" }\n')
    argv = ["reproduce", "--config", str(cfg), "--runs", str(tmp_path / "runs"), "--specs", str(spec),
            "--reports", str(tmp_path / "reports"), "--no-progress"]
    assert main(argv) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("reproduce tiny: base PSNR")
    assert "1 studies" in line
    results = list((tmp_path / "runs").glob("base-*/result.json"))
    assert len(results) == 1
    result = json.loads(results[0].read_text())
    assert result["status"] == "complete" and result["cost"]["steps"] == 8
    assert {"backbone", "reference_set", "n", "resolution", "fid_mode", "perceptual"} <= set(result["protocol"])
    assert result["protocol"]["backbone"]["name"] == "effnet-lite0"
    assert set(result["metrics"]["per_concept"]) == {"hue-120", "pixelate"}
    assert {"torch", "lightning"} <= set(result["env"]["versions"])
    report = tmp_path / "reports" / "tiny"
    assert {"index.html", "index.md", "base", "mini"} <= {p.name for p in report.iterdir()}
    assert {"index.html", "base_quality.csv", "base_samples.png"} <= {p.name for p in (report / "base").iterdir()}
    assert "effnet-lite0" in (report / "base" / "index.md").read_text()
    assert (report / "mini" / "index.html").exists() and "mini/index.html" in (report / "index.html").read_text()
    assert len(list((tmp_path / "runs").glob("adapt-*/result.json"))) == 2

    # `report` rebuilds the pages from storage alone.
    (report / "index.html").unlink()
    assert main(["report", "--config", str(cfg), "--runs", str(tmp_path / "runs"), "--specs", str(spec),
                 "--reports", str(tmp_path / "reports")]) == 0
    assert "mini/index.html" in (report / "index.html").read_text()

    # A second run reuses the data and the finished base model: no new checkpoint is written, and
    # each stage says in one line that it was found complete.
    ckpts = sorted(results[0].parent.glob("checkpoints/*.ckpt"))
    mtimes = [p.stat().st_mtime for p in ckpts]
    capsys.readouterr()
    assert main(argv) == 0
    assert [p.stat().st_mtime for p in sorted(results[0].parent.glob("checkpoints/*.ckpt"))] == mtimes
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in err] == ["[1/4] data", "[2/4] base model", "[3/4] study mini",
                                                    "[4/4] writing the reports"]
    assert all("found complete" in line for line in err[:3])


MICRO_SPEC = ('name = "mini"\ntitle = "mini"\ntable = "main"\nmetric = "psnr"\nconcepts = ["hue-60"]\n'
              'seeds = [0]\n[config]\nadapt = { steps = 2 }\n[arms.e2gan]\nadapt = { method = "lora" }\n'
              '[arms.scratch]\nadapt = { method = "scratch" }\n')
# What each cell of a reproduce used to print: Lightning's banner, tips, model summary and "fit
# stopped" line, its pytree deprecation, Optuna's ExperimentalWarning, torch's pytree notices and
# Lightning's and distil's progress bars ("0pair" for data already on disk).
BANNERS = ["GPU available", "TPU available", "Tip:", "litlogger", "| Name", "Trainable params", "max_epochs",
           "LeafSpec", "ExperimentalWarning", "experimental", "register_constant", "0pair", "pair/s", "it/s", "Epoch "]


def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.mark.slow
def test_reproduce_log_is_quiet_and_leaves_the_reference_report_alone(tmp_path):
    """As `make reproduce` runs it in CI: a subprocess writing to a log, from a checkout whose
    reports/tiny/ is the committed reference."""
    import shutil

    committed = Path(__file__).resolve().parents[2] / "reports" / "tiny"
    reference = tmp_path / "reports" / "tiny"
    for part in ("base", "main/tables"):
        shutil.copytree(committed / part, reference / part)
    before = _tree(tmp_path / "reports")
    write_micro_toml(tmp_path / "micro.toml", train={"steps": 4, "ckpt_every": 2})
    (tmp_path / "mini.toml").write_text(MICRO_SPEC)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]), HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "e2gan.cli", "reproduce", "--config", "micro.toml", "--specs",
                           "mini.toml", "--reference", "reports"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = proc.stdout + proc.stderr
    assert [b for b in BANNERS if b in printed] == [], printed[-4000:]
    cell_lines = [line for line in proc.stderr.splitlines() if " complete in " in line]
    assert len(cell_lines) == 2 and all("ETA" in line and "elapsed" in line for line in cell_lines), proc.stderr[-4000:]
    assert "2/2 done" in cell_lines[-1]
    assert "[2/4] base model: 4/4 steps |" in proc.stderr  # training steps reach the display, not a bar

    assert _tree(tmp_path / "reports") == before  # the reference: not a byte or a timestamp changed
    assert (tmp_path / "runs" / "reports" / "tiny" / "index.html").is_file()
    out = proc.stdout.splitlines()
    assert any(line.startswith("your run beside the reference report (reports/tiny)") for line in out)
    assert any(line.split()[:3] == ["base", "PSNR", "dB"] and line.endswith("no CI)") for line in out)
    assert f"report: {Path('runs') / 'reports' / 'tiny' / 'index.html'}" in out


@pytest.mark.slow
def test_two_process_ddp_trains_and_checkpoints(tmp_path):
    cfg = write_micro_toml(tmp_path / "micro.toml", train={"steps": 4, "ckpt_every": 2})
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "e2gan.cli", "train-base", "--config", str(cfg),
                           "--runs", str(tmp_path / "runs"), "--devices", "2", "--strategy", "ddp",
                           "--accelerator", "cpu", "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = next((tmp_path / "runs").glob("base-*"))
    summary = json.loads((run / "train.json").read_text())
    assert summary["world_size"] == 2 and summary["gan_step"] == 4
    assert summary["images_seen"] == 4 * 4 * 2
    assert (run / "checkpoints" / "last.ckpt").exists() and (run / "generator.safetensors").exists()
    assert proc.stdout.count("base model:") == 1  # only rank 0 reports


@pytest.fixture(scope="module")
def micro_adapt_run(micro_data, micro_runs, tmp_path_factory):
    """A micro base (shared by the session) and a real LoRA adapter trained on it through `e2gan adapt`."""
    from e2gan.pipeline.base import ensure_base
    from tests.conftest import micro_config

    base, _ = ensure_base(micro_config(), micro_data, micro_runs, progress=False)
    root = tmp_path_factory.mktemp("cli-adapt")
    cfg = write_micro_toml(root / "micro.toml")
    run = root / "adapt"
    assert main(["adapt", "--config", str(cfg), "--base", str(base), "--concept", "hue-60", "--ranks",
                 "down=1,ds=2,tb=4,us=2,up=1", "--steps", "3", "--runs", str(micro_runs), "--run-dir", str(run),
                 "--no-progress"]) == 0
    return base, run


def test_merge_equals_the_adapt_runs_own_merged_generator(micro_adapt_run, tmp_path, capsys):
    import torch

    from e2gan.nets.lora import load_adapter
    from e2gan.nets.registry import load_generator

    base, run = micro_adapt_run
    base_before = {p.name: p.read_bytes() for p in base.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main(["merge", "--base", str(base), "--adapter", str(run)]) == 0
    line = capsys.readouterr().out.strip().splitlines()
    assert len(line) == 1 and line[0].startswith("merged adapter 'hue-60'")
    assert line[0].endswith(str(run / "merged" / "generator.safetensors"))  # the documented default --out
    merged, meta = load_generator(run / "merged")
    own, own_meta = load_generator(run)
    assert meta["concepts"] == own_meta["concepts"] == ["hue-120", "pixelate", "hue-60"]
    # kind 'adapt': `e2gan export` bakes in the last (new) concept by default, as for the adapt run.
    assert meta["kind"] == "adapt" and meta["n_base_concepts"] == 2 and meta["merge_max_abs_diff"] < 1e-5
    assert not any("lora" in k for k in merged.state_dict())  # a plain generator
    assert merged.state_dict().keys() == own.state_dict().keys()
    adapted, adapter_meta = load_adapter(base, run)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    cid = torch.tensor(adapter_meta["concept_ids"] * 3)
    with torch.no_grad():
        got = merged(x, cid)
        assert (got - own(x, cid)).abs().max() < 1e-5
        assert (got - adapted(x, cid)).abs().max() < 1e-5
        base_out = load_generator(base)[0](x, torch.zeros(3, dtype=torch.long))
        assert (merged(x, torch.zeros(3, dtype=torch.long)) - base_out).abs().max() > 0  # LoRA changed the weights
    # --out elsewhere, and the base run is left as it was.
    assert main(["merge", "--base", str(base), "--adapter", str(run / "adapter.json"), "--out",
                 str(tmp_path / "m")]) == 0
    assert ((tmp_path / "m" / "generator.safetensors").read_bytes()
            == (run / "merged" / "generator.safetensors").read_bytes())
    assert {p.name: p.read_bytes() for p in base.iterdir() if p.is_file()} == base_before


@pytest.mark.parametrize("out", ["base", "adapter"])
def test_merge_refuses_to_overwrite_its_inputs(out, micro_adapt_run, capsys):
    base, run = micro_adapt_run
    target = base if out == "base" else run
    before = (target / "generator.safetensors").read_bytes()
    capsys.readouterr()
    assert main(["merge", "--base", str(base), "--adapter", str(run), "--out", str(target)]) == 2
    assert _error_line(capsys).startswith(f"error: output folder {target} (--out)")
    assert (target / "generator.safetensors").read_bytes() == before


@pytest.mark.parametrize("argv,pattern", [
    (["describe", "--resolution", "-8"], "error: resolution -8 (--resolution): a positive multiple of 8"),
    (["describe", "--resolution", "0"], "error: resolution 0 (--resolution): a positive multiple of 8"),
    (["describe", "--resolution", "20"], "error: resolution 20 (--resolution): a positive multiple of 8"),
])
def test_describe_resolution_is_checked(argv, pattern, capsys):
    assert main(argv) == 2
    assert _error_line(capsys).startswith(pattern)


def test_max_time_alone_lifts_the_step_budget():
    """--max-time without --steps: the time budget stops training, not the preset's step count."""
    from types import SimpleNamespace

    from e2gan.cli.options import config_from_args

    timed = config_from_args(SimpleNamespace(preset="tiny", config=None, max_time=30.0, steps=None), budget_section="adapt")
    assert timed.adapt.max_time_s == 30.0 and timed.adapt.steps == 10 ** 9
    both = config_from_args(SimpleNamespace(preset="tiny", config=None, max_time=30.0, steps=50), budget_section="adapt")
    assert both.adapt.steps == 50
    assert config_from_args(SimpleNamespace(preset="tiny", config=None), budget_section="adapt").adapt.steps == 100
