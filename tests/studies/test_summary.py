"""The table a study prints at its end, for every kind of axis."""
import optuna

from studies.spec import StudySpec
from studies.summary import summary_table


def test_a_list_valued_axis_is_grouped_by_its_label(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", study_name="layers")
    for groups, seed, fid in ((["down"], 0, 210.0), (["down"], 1, 230.0), (["tb", "up"], 0, 250.0)):
        trial = study.ask()
        trial.set_user_attr("cell", {"adapt.groups": groups, "concept": "hue-60", "seed": seed})
        trial.set_user_attr("fid", fid)
        study.tell(trial, fid)
    spec = StudySpec(name="layers", path="layers.toml", metric="fid", axes={"adapt.groups": [["down"], ["tb", "up"]]})
    table = summary_table(study, spec)
    rows = [line for line in table.splitlines() if line.startswith("| down") or line.startswith("| tb+up")]
    assert len(rows) == 2 and "220" in rows[0] and "250" in rows[1]


def test_runs_recorded_relative_to_another_directory_are_found_in_the_runs_folder(tmp_path, monkeypatch):
    """A study run from one directory with `--runs runs` records `runs/adapt-...`; a report written
    from elsewhere with `--runs <that folder>` must still open those runs (and not call them moved)."""
    from e2gan.results import located
    from studies.summary import trials_frame

    runs = tmp_path / "project" / "runs"
    (runs / "adapt-a").mkdir(parents=True)
    study = optuna.create_study(study_name="main")
    trial = study.ask()
    trial.set_user_attr("cell", {"arm": "e2gan", "concept": "hue-60", "seed": 0})
    trial.set_user_attr("run_dir", "runs/adapt-a")
    trial.set_user_attr("runs", ["runs/adapt-a", "runs/adapt-gone"])
    study.tell(trial, 1.0)
    monkeypatch.chdir(tmp_path)  # not the project folder: "runs/adapt-a" names nothing here
    row = trials_frame(study, runs=runs).iloc[0]
    assert row["run_dir"] == str(runs / "adapt-a")
    assert row["runs"] == [str(runs / "adapt-a"), "runs/adapt-gone"]  # a run that is nowhere stays as recorded
    assert trials_frame(study).iloc[0]["run_dir"] == "runs/adapt-a"  # no runs folder given: as recorded
    monkeypatch.chdir(tmp_path / "project")
    assert located("runs/adapt-a", runs) == "runs/adapt-a"  # resolves here: kept as it is
