"""reproduce's grid on several worker processes: the same cells, bit for bit, as one process."""
import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from e2gan.cli.grid_workers import run_grid_in_workers
from e2gan.cli.run_plan import pending_runs
from e2gan.io import sha256_file
from e2gan.progress import RunDisplay
from tests.studies.test_runner import _env, trials, write_spec


def _cells(storage: str, name: str) -> dict:
    """cell -> (value, sha256 of its generator) for every COMPLETE trial."""
    out = {}
    for t in trials(storage, name):
        assert t.state.name == "COMPLETE", (t.state, t.user_attrs.get("fail_reason"))
        cell = tuple(sorted(t.user_attrs["cell"].items()))
        out[cell] = (t.value, sha256_file(Path(t.user_attrs["run_dir"]) / "generator.safetensors"))
    return out


@pytest.mark.slow
def test_two_workers_give_every_cell_bit_identical_to_one_process_with_the_same_threads(tmp_path):
    from studies import runner
    from studies.spec import load_spec

    spec_path = write_spec(tmp_path, seeds=(0, 1))  # 2 arms x 2 seeds
    seq = tmp_path / "seq"
    proc = subprocess.run([sys.executable, "-m", "e2gan.cli", "study", "run", str(spec_path), "--runs", str(seq),
                           "--no-progress"], env=_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The same data and base model (built once, one thread): only the cells run again, side by side.
    par = tmp_path / "par"
    shutil.copytree(seq, par, ignore=lambda d, names: [n for n in names if n.startswith("adapt-") or n == "studies"])
    spec = load_spec(spec_path)
    url = runner.default_storage(spec, par, "tiny")
    study = runner.load_study(spec, url, "tiny", create=True)
    runner.reconcile(study, spec, "tiny")
    log = io.StringIO()
    with RunDisplay(1, stream=log, tty=False) as display:
        display.stage(1, "study micro")
        codes = run_grid_in_workers(spec, url, study, "tiny", par, display, 2,
                                    lambda: pending_runs(spec, study, "tiny", par).count(par), threads=1, poll_s=0.2)
    assert codes == [0, 0]
    parallel = _cells(url, "micro-tiny")
    sequential = _cells(runner.default_storage(spec, seq, "tiny"), "micro-tiny")
    assert len(parallel) == 4 and parallel == sequential
    lines = [line for line in log.getvalue().splitlines() if " complete in " in line]
    assert len(lines) == 4 and "4/4 done" in lines[-1]
    # Both workers' output is kept in their logs, not on the display.
    assert sorted(p.name for p in (par / "logs").glob("micro-tiny-worker-*.log")) == \
        ["micro-tiny-worker-0.log", "micro-tiny-worker-1.log"]


def test_workers_must_be_auto_or_a_positive_number(tmp_path, capsys):
    from e2gan.cli import main

    assert main(["reproduce", "--workers", "0", "--specs", "none", "--runs", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "--workers 0" in err and "a whole number of processes" in err and not (tmp_path / "runs").exists()
