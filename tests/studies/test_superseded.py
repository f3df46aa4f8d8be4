"""Trials of an earlier version of a spec (superseded): how they are recognised, for grid cells and
for a search's trials (the grid's end-to-end case is in test_runner.py)."""


def test_superseded_reads_the_queued_run_name_or_else_the_recorded_run_dir():
    from types import SimpleNamespace

    from studies.queue import cell_key, superseded

    cell = {"arm": "full", "concept": "hue-60", "seed": 0}
    now = {cell_key(cell): "adapt-tiny-hue-60-full-s0-new"}
    trial = lambda **attrs: SimpleNamespace(user_attrs={"cell": cell, **attrs}, params={})  # noqa: E731
    assert superseded(trial(run_name="adapt-tiny-hue-60-full-s0-old", run_dir="x/anything"), now)
    assert not superseded(trial(run_name="adapt-tiny-hue-60-full-s0-new", run_dir="x/faked-by-a-test"), now)
    # queued before trials carried run_name: judged by the run directory it recorded
    assert superseded(trial(run_dir="runs/adapt-tiny-hue-60-full-s0-old"), now)
    assert not superseded(trial(run_dir="runs/adapt-tiny-hue-60-full-s0-new"), now)
    assert not superseded(trial(), now) and not superseded(trial(run_name="other"), None)
    from optuna.trial import TrialState
    waiting = trial(run_name="adapt-tiny-hue-60-full-s0-old")
    waiting.state = TrialState.WAITING   # queued before the edit: it runs under the spec its worker has
    assert not superseded(waiting, now)


def test_a_search_edited_after_its_trials_ran_asks_new_ones_and_reports_only_them(tmp_path, monkeypatch):
    """A search trial records its runs; once the spec's config names other runs, the trial is
    superseded: it no longer counts toward n_trials, in status or in the report's frame."""
    from e2gan.pipeline.adapt import adapt_dir
    from studies import runner
    from studies.spec import load_spec
    from studies.summary import trials_frame

    path = tmp_path / "search.toml"
    text = ('name = "search"\nmetric = "psnr"\nconcepts = ["hue-60"]\nseeds = [0, 1]\nsampler = "nsga2"\n'
            'n_trials = 2\n[config]\nadapt = { steps = 100 }\n[search]\n"adapt.ranks.down" = [1, 2, 4, 8]\n')
    path.write_text(text)
    storage = f"sqlite:///{tmp_path / 'search.db'}"
    monkeypatch.setattr(runner, "evaluate_cell", lambda spec, cell, preset, runs, *a, **k: {
        "run_dir": str(adapt_dir(spec.cell_config(cell, preset), cell["concept"], runs)), "value": 20.0,
        "params_trainable": cell["adapt.ranks.down"]})
    monkeypatch.setattr("e2gan.pipeline.evaluate.val_quality", lambda run_dir, concepts, metric, data_root=None: 0.0)

    spec = load_spec(path)
    runner.load_study(spec, storage, "tiny", create=True)
    assert runner.work(spec, storage, "tiny", tmp_path / "runs")["complete"] == 2
    study = runner.load_study(spec, storage, "tiny")
    assert runner.status(study, spec, "tiny")["done"] == 2
    assert len(trials_frame(study, runner.current_runs(spec, "tiny"))) == 2

    path.write_text(text.replace("steps = 100", "steps = 50"))  # every run of the search changes
    edited = load_spec(path)
    study = runner.load_study(edited, storage, "tiny")
    assert runner.status(study, edited, "tiny")["done"] == 0
    assert len(trials_frame(study, runner.current_runs(edited, "tiny"))) == 0
    assert runner.work(edited, storage, "tiny", tmp_path / "runs")["complete"] == 2
    study = runner.load_study(edited, storage, "tiny")
    assert runner.status(study, edited, "tiny")["done"] == 2 and len(study.trials) == 4
    assert len(trials_frame(study, runner.current_runs(edited, "tiny"))) == 2


def test_found_done_is_a_complete_cell_whose_run_was_on_disk():
    """The display leaves such cells out of the ETA; a failed cell never counts as found."""
    import optuna

    from studies.queue import found_done

    study = optuna.create_study()
    for state, attr in ((optuna.trial.TrialState.COMPLETE, True), (optuna.trial.TrialState.COMPLETE, False),
                        (optuna.trial.TrialState.FAIL, True), (optuna.trial.TrialState.COMPLETE, None)):
        trial = study.ask()
        if attr is not None:
            trial.set_user_attr("found_done", attr)
        study.tell(trial, 1.0 if state == optuna.trial.TrialState.COMPLETE else None, state=state)
    assert [found_done(t) for t in study.get_trials()] == [True, False, False, False]
