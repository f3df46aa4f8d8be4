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
