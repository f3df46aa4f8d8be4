"""Silence the third-party banners, tips and warnings that say nothing to this suite's user.

A long command (`reproduce`) runs dozens of Trainers and study loads, and each used to print the
same lines again: Lightning's device banner ("GPU available", "TPU available"), its advertising
tips, "`Trainer.fit` stopped: `max_epochs=1` reached", a deprecation warning from Lightning's own
pytree helper, Optuna's ExperimentalWarning for the heartbeat and stale-trial features the runner
relies on, torch's notices about enums registered as pytree constants, and the "checkpoint
directory exists" notice of a run resuming from its own checkpoints. Each is silenced at
its source, narrowly (a logger's level, a filter on one category or one message), so warnings
raised by e2gan itself, and every other warning of these libraries, still show.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import warnings
from contextlib import contextmanager
from typing import Iterator

# Logger -> the least level still shown. Lightning's banner, tips and "fit stopped" lines are
# INFO; its real problems are WARNING and above. torch's pytree notices are WARNING-level chatter
# about an API change inside torch.compile, which this suite does not use.
QUIET_LOGGERS = {
    "lightning.pytorch": logging.WARNING,
    "lightning.fabric": logging.WARNING,
    "torch.utils._pytree": logging.ERROR,
}

# (category, message regex) pairs ignored wherever they are raised.
QUIET_MESSAGES = [
    # torch deprecated LeafSpec; Lightning's _pytree helper still builds one on every fit.
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
    # A resumed base run finds its own checkpoints in its folder: that is how it resumes.
    (UserWarning, r"Checkpoint directory .* exists and is not empty"),
]


def silence_third_party() -> None:
    """Apply the filters above, and Optuna's level and experimental-feature category.

    Imports Lightning and Optuna first: Lightning sets its logger's level when imported, so a
    level set before that import would be overwritten.
    """
    import lightning.pytorch  # noqa: F401  (sets its logger level on import: ours must come after)
    import optuna
    from optuna.exceptions import ExperimentalWarning

    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    for category, message in QUIET_MESSAGES:
        warnings.filterwarnings("ignore", message=message, category=category)
    # Heartbeats and fail_stale_trials are what make studies resumable; being told at every study
    # load that they are experimental helps no one. Optuna's INFO lines repeat each trial's values.
    warnings.filterwarnings("ignore", category=ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)


# Native (C++) log lines of LiteRT, TensorFlow and absl that only narrate: "INFO: Created TensorFlow
# Lite XNNPACK delegate", absl's "I1207 ..." / "W0000 ..." lines at import and conversion, and the
# notice that absl logs to stderr before it is initialised. Errors (absl's "E..."/"F...") still show.
_NATIVE_CHATTER = re.compile(r"^(INFO: |[IW]\d{4} |WARNING: All log messages before absl::InitializeLog)")


@contextmanager
def native_chatter_silenced() -> Iterator[None]:
    """Catch what C++ code writes to stderr (fd 2) in the block; write back every line that is not
    chatter (``_NATIVE_CHATTER``). Python's own stderr is flushed first and is not touched."""
    sys.stderr.flush()
    with tempfile.TemporaryFile() as caught:
        saved = os.dup(2)
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [ln for ln in caught.read().decode(errors="replace").splitlines()
                    if ln.strip() and not _NATIVE_CHATTER.match(ln)]
            if kept:
                print("\n".join(kept), file=sys.stderr, flush=True)
