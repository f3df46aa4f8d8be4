"""Silencing third-party noise: the named banners and warnings go, our own and other warnings stay."""
import logging
import warnings

from e2gan.quiet import silence_third_party


def test_named_warnings_are_silenced_and_ours_still_show():
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings(record=True) as caught:  # restores the filters afterwards
        warnings.resetwarnings()
        warnings.simplefilter("always")
        silence_third_party()
        warnings.warn("Argument ``heartbeat_interval`` is an experimental feature.", ExperimentalWarning)
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec)`",
                      FutureWarning)
        warnings.warn("Checkpoint directory runs/base-tiny-0/checkpoints exists and is not empty.", UserWarning)
        warnings.warn("some other library's future change", FutureWarning)
        warnings.warn("training diverged at step 3", UserWarning)
    assert [str(w.message) for w in caught] == ["some other library's future change", "training diverged at step 3"]


def test_lightning_info_banners_are_dropped_and_its_warnings_kept():
    silence_third_party()
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    assert not log.isEnabledFor(logging.INFO)  # "GPU available", "💡 Tip", "`Trainer.fit` stopped"
    assert log.isEnabledFor(logging.WARNING)
    assert logging.getLogger("e2gan").isEnabledFor(logging.WARNING)
    import optuna

    assert optuna.logging.get_verbosity() == optuna.logging.WARNING
