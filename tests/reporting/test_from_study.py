"""The contract with the study machinery: an Optuna study's trials_frame and a built-in spec in, a report out."""
from __future__ import annotations

from e2gan.reporting.study_report import summary_line, write_study_report
from e2gan.reporting.paper_tables.registry import build_tables
from e2gan.reporting.study_context import study_context

from .conftest import make_trials


def _study(spec, tmp_path, cells, value_fn, sampler="grid", cost_fn=None):
    """An in-memory study whose COMPLETE trials carry the attributes the runner records."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions = ["minimize", "minimize"] if sampler == "nsga2" else ["minimize"]
    study = optuna.create_study(directions=directions)
    df = make_trials(tmp_path / "runs", cells, value_fn, cost_fn=cost_fn)
    for (_, row), cell in zip(df.iterrows(), cells):
        if sampler != "grid":  # fix the searched values to the cell's
            study.enqueue_trial({k: v for k, v in cell.items() if k.startswith("adapt.")})
        trial = study.ask()
        attrs = {k: row[k] for k in ("run_dir", "value", "psnr", "ssim", "fid", "kid_mean", "perceptual",
                                      "identity_psnr", "params_trainable", "train_seconds", "bytes_stored",
                                      "train_flops")}
        if sampler == "grid":
            trial.set_user_attr("cell", cell)
            for k, v in attrs.items():
                trial.set_user_attr(k, v)
            study.tell(trial, float(attrs["value"]))
        else:
            for k, v in cell.items():
                if k.startswith("adapt."):
                    trial.suggest_categorical(k, spec.search[k])
            trial.set_user_attr("runs", [attrs["run_dir"]])
            for k in ("psnr", "fid", "params_trainable", "train_seconds"):
                trial.set_user_attr(k, attrs[k])
            study.tell(trial, [float(attrs["value"]), float(attrs["params_trainable"])])
    return study


def test_layers_spec_from_an_optuna_study(tmp_path):
    from studies.spec import load_spec
    from studies.summary import trials_frame

    spec = load_spec("layers")
    cells = [c for c in spec.grid("tiny") if c["adapt.groups"] in (["down"], ["tb"])]
    df = trials_frame(_study(spec, tmp_path, cells, lambda c: {"fid": 10.0 if c["adapt.groups"] == ["tb"] else 12.0}))
    tables = {t.key: t for t in build_tables(study_context(spec, df, preset="tiny"))}
    layers = tables["layers"].display
    assert list(layers.index)[:3] == ["down", "rb1", "rb2"]                   # the spec's order, lists as labels
    n = len(spec.seeds)
    assert layers.loc["tb", "FID ↓"] == ("10.00 (N=1; no CI)" if n == 1 else f"10.00 ± 0.00 (N={n})")
    assert layers.loc["rb1", "FID ↓"] == f"missing (N=0/{n})"
    assert set(spec.concept_names("tiny")) <= set(tables["per-concept"].display.index.str.split(" / ").str[1])
    assert summary_line(spec, df, preset="tiny").startswith("Best FID: tb 10.00")


def test_main_spec_report_and_paper_numbers(tmp_path):
    from studies.spec import load_spec
    from studies.summary import trials_frame

    spec = load_spec("main")
    cells = [c for c in spec.grid("tiny") if c["arm"] in ("pix2pix", "e2gan")]
    df = trials_frame(_study(spec, tmp_path, cells, lambda c: {"fid": 20.0 if c["arm"] == "e2gan" else 30.0}))
    index = write_study_report(spec, df, tmp_path / "reports" / "tiny" / "main", preset="tiny", grids=False)
    md = (index.parent / "tables" / "quality.md").read_text()
    n = len(spec.seeds)
    assert f"| e2gan | 20.00 ± 0.00 (N={n}) |" in md and "| 109.37 | 80.28 |" in md
    assert f"| full | missing (N=0/{n}) |" in md
    assert "| pix2pix-zero-distilled (paper only) | not run |" in md and "| 132.6 | 87.76 |" in md


def test_pareto_spec_keeps_runs(tmp_path):
    from studies.spec import load_spec
    from studies.summary import trials_frame

    spec = load_spec("pareto")
    cells = [{"adapt.ranks.down": r, "adapt.ranks.ds": 1, "adapt.ranks.tb": 2, "adapt.ranks.us": 1,
              "adapt.ranks.up": 1, "concept": "hue-60", "seed": 0} for r in (1, 2, 4)]
    df = trials_frame(_study(spec, tmp_path, cells, lambda c: {"fid": 30.0 - c["adapt.ranks.down"]}, sampler="nsga2",
                             cost_fn=lambda c: {"params_trainable": 1000 * c["adapt.ranks.down"]}))
    assert "runs" in df.columns
    t = {t.key: t for t in build_tables(study_context(spec, df, preset="tiny"))}["pareto"]
    assert "effnet-lite0" in t.notes[0]                                       # protocol read through 'runs'
    assert t.display["down"].tolist() == ["1", "2", "4"]                       # cheapest first
    assert t.display["Pareto front"].tolist() == ["✓", "✓", "✓"]              # more params, better FID: all on it
    assert t.display["trainable params"].tolist() == ["1,000", "2,000", "4,000"]
