# Two commands a newcomer needs: `make reproduce` and `make test`. Both build .venv from the lock
# when it is missing or older than the lock / pyproject, then run.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PRESET  ?= tiny
# The main comparison and the compact studies that decide claims (b)-(d) by default, so a fresh clone's
# report has a verdict for every claim (79 minutes on 2 cores at the 500-image protocol); SPECS=main
# stops after the main comparison (47-50 minutes: `make bench`'s main_wall row); SPECS=all runs every study.
SPECS   ?= main,claim-b,claim-c,claim-d
# A TOML file layered over the preset for every stage and study cell (CONFIG=bf16.toml with
# `[train] precision = "bf16-mixed"` trains in bf16 on a CPU with native bf16: README, "Precision").
CONFIG  ?=

export HF_HUB_OFFLINE := 1
export PYTHONHASHSEED := 0
# Sleeping (not spinning) OpenMP threads: on a small, shared CPU spinning made a training step 2.3x slower.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup reproduce test test-fast bench smoke-paper clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# Writes runs/reports/$(PRESET)/ (git-ignored) and ends comparing it with the committed reports/$(PRESET)/.
reproduce: $(STAMP)
	$(BIN)/e2gan reproduce --preset $(PRESET) --specs $(SPECS) $(if $(CONFIG),--config $(CONFIG))

test: $(STAMP)
	$(BIN)/python -m pytest -q --timeout=1800

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run --preset $(PRESET)

# The paper preset (256², width 64, 70x70 PatchGAN) through every stage at reduced length on the CPU,
# on random-weight stand-ins for the teacher and the metric backbones (README: "The paper preset on real data").
smoke-paper: $(STAMP)
	$(BIN)/python -m tests.smoke_paper --out runs/smoke-paper

clean:
	rm -rf runs .pytest_cache
