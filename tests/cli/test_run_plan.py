"""The ETA's count of work left: a run two studies share counted once, one on disk not at all,
a greedy search's runs counted before it starts."""
from e2gan.cli.run_plan import Pending, pending_runs
from e2gan.pipeline.adapt import adapt_dir
from studies import runner
from studies.spec import load_spec

SPEC = """name = "{name}"
table = "main"
metric = "psnr"
concepts = ["hue-60", "sketch"]
seeds = [0, 1]
[config]
adapt = {{ steps = 2 }}
[arms.e2gan]
adapt = {{ method = "lora" }}
{extra}
"""


def _spec(tmp_path, name, extra=""):
    path = tmp_path / f"{name}.toml"
    path.write_text(SPEC.format(name=name, extra=extra))
    return load_spec(path)


def _queued(spec, runs):
    study = runner.load_study(spec, runner.default_storage(spec, runs, "tiny"), "tiny", create=True)
    runner.reconcile(study, spec, "tiny")
    return study


def _finish(runs, spec, cell):
    run = adapt_dir(spec.cell_config(cell), cell["concept"], runs)
    run.mkdir(parents=True)
    (run / "result.json").write_text("{}")
    (run / "generator.safetensors").write_bytes(b"")


def test_shared_runs_count_once_and_finished_ones_not_at_all(tmp_path):
    runs = tmp_path / "runs"
    a = _spec(tmp_path, "a")
    b = _spec(tmp_path, "b", '[arms.full]\nadapt = { method = "full" }\n')  # e2gan: a's runs
    pa, pb = (pending_runs(s, _queued(s, runs), "tiny", runs) for s in (a, b))
    assert len(pa.names) == 4 and len(pb.names) == 8 and pa.names < pb.names
    assert (pa | pb).count(runs) == 8  # not 12: b's e2gan cells are a's
    _finish(runs, a, {"arm": "e2gan", "concept": "hue-60", "seed": 0})
    assert (pa | pb).count(runs) == 7  # trained by a meanwhile: left for neither
    assert len(pending_runs(a, _queued(a, runs), "tiny", runs).names) == 3


def test_a_greedy_search_counts_its_runs_before_it_starts(tmp_path):
    runs = tmp_path / "runs"
    spec = _spec(tmp_path, "g", '[greedy]\nseeds = [0, 1, 2]\nconcepts = ["hue-60"]\nmax_rounds = 1\n')
    p = pending_runs(spec, _queued(spec, runs), "tiny", runs)
    groups = len(spec.base_config().adapt.groups)
    # start, one doubling per group, uniform 4x: named; the random allocation at the searched budget: counted
    assert len(p.names) == 4 + (groups + 2) * 3 and p.unnamed == 3
    assert Pending({"x"}, 2).count(runs) == 3


def test_the_greedy_searchs_runs_reach_the_display_as_cells(tmp_path):
    """A greedy search trains for minutes after its grid: each of its runs is a line in a log, with
    counts and an ETA, and a run found done is not part of the ETA's sample."""
    import io

    from e2gan.cli.reproduce import _greedy_cells
    from e2gan.progress import RunDisplay

    runs = tmp_path / "runs"
    spec = _spec(tmp_path, "g", '[greedy]\nseeds = [0, 1, 2]\nconcepts = ["hue-60"]\nmax_rounds = 1\n')
    out = io.StringIO()
    with RunDisplay(4, stream=out, tty=False) as display:
        display.stage(3, "study g")
        on_run = _greedy_cells(display, spec, "tiny", runs, lambda: 5)
        on_run("down=1,tb=1 hue-60 seed 0", 30.0, False)
        on_run("down=1,tb=1 hue-60 seed 1", 0.0, True)
    lines = out.getvalue().splitlines()[1:]
    groups = len(spec.base_config().adapt.groups)
    assert lines[0].startswith(f"[3/4] study g: greedy down=1,tb=1 hue-60 seed 0 complete in 0:30 | 1/{(groups + 3) * 3} done")
    assert lines[0].endswith("ETA 2:30")  # 5 runs left x 30 s
    assert "seed 1 found done in 0:00" in lines[1] and lines[1].endswith("ETA 2:30")
    assert display.finished == [30.0]
