"""What a `reproduce` still has to train, each run counted once: the ETA's count of work left.

Studies share runs: claim-b's representative arm is main's e2gan arm, the same configuration and
so the same run folder, trained once and found done by the second study. A greedy rank search
trains runs that no grid lists. Counting queue entries would count a shared run twice and a
search's runs not at all, and a run found on disk would enter the ETA's mean as a 0-second cell.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Pending:
    """Runs still to train: by name where the name is known now, and a count of those it is not."""
    names: set[str] = field(default_factory=set)
    unnamed: int = 0

    def __or__(self, other: "Pending") -> "Pending":
        return Pending(self.names | other.names, self.unnamed + other.unnamed)

    def count(self, runs: str | Path) -> int:
        """How many are left now: a named run finished meanwhile (by an earlier study) is not."""
        from e2gan.pipeline.adapt import adapt_is_done

        return sum(not adapt_is_done(Path(runs) / n) for n in self.names) + self.unnamed


def remaining_cells(st: dict, grid: bool) -> int:
    """Cells this run still has to run, from ``runner.status``: the queue of a grid, the trial
    budget left of a search (failed trials are asked again, so they do not use it up)."""
    s = st["states"]
    if grid:  # a cell still running after a killed run is taken over once its heartbeat is stale
        return s.get("waiting", 0) + s.get("running", 0)
    return max(0, st["expected"] - s.get("complete", 0) - s.get("pruned", 0) - s.get("running", 0) - s.get("waiting", 0))


def pending_runs(spec, study, preset: str, runs: str | Path) -> Pending:
    """What one study still has to train: its grid's open cells, its greedy search, or the trials
    left of a search (one display cell each: a trial's runs are not known before it is asked)."""
    from studies import runner

    grid = Pending(set(pending_grid_runs(spec, study, preset, runs)))
    names, unnamed = pending_greedy_runs(spec, preset, runs)
    if spec.sampler != "grid":
        unnamed += remaining_cells(runner.status(study, spec, preset), False)
    return grid | Pending(set(names), unnamed)


def pending_grid_runs(spec, study, preset: str, runs: str | Path) -> list[str]:
    """Run names of the grid's waiting or running cells that are not on disk yet."""
    from optuna.trial import TrialState

    from e2gan.pipeline.adapt import adapt_is_done
    from studies.queue import cell_key, current_runs

    if spec.sampler != "grid":
        return []
    names = current_runs(spec, preset)
    open_cells = study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
    wanted = (names.get(cell_key(t.user_attrs.get("cell", t.params))) for t in open_cells)
    return list(dict.fromkeys(n for n in wanted if n and not adapt_is_done(Path(runs) / n)))


def pending_greedy_runs(spec, preset: str, runs: str | Path) -> tuple[list[str], int]:
    """A spec's greedy search before it has finished: the names of the runs it will surely train
    (the start at rank 1, its first round of doublings, uniform 4x) that are not on disk, and a count
    of those it cannot name yet (the random allocation at the searched budget, later rounds; a search
    with no round limit is counted for one more round)."""
    from e2gan.config import layer_group_names
    from e2gan.pipeline.adapt import adapt_dir, adapt_is_done
    from studies.layer_analysis import cell_config
    from studies.rank_search import greedy_dir

    g = spec.greedy
    if not g or (greedy_dir(spec, runs, preset) / "search.json").exists():
        return [], 0
    cfg = spec.base_config(preset)
    groups = [x for x in dict.fromkeys(cfg.adapt.groups) if x in layer_group_names(cfg.model)]
    concepts = g.get("concepts") or spec.concept_names(preset)
    seeds = g.get("seeds") or spec.seeds[:1]
    allocations = [{x: 1 for x in groups}, *({x: 2 if x == y else 1 for x in groups} for y in groups),
                   {x: 4 for x in groups}]
    names = []
    for ranks in allocations:
        for seed in seeds:
            run_cfg = cell_config(cfg, method="lora", groups=list(ranks), ranks=dict(ranks), seed=seed)
            names += [adapt_dir(run_cfg, c, runs).name for c in concepts]
    later_rounds = (g.get("max_rounds") or 2) - 1
    unnamed = (1 + later_rounds * len(groups)) * len(seeds) * len(concepts)
    return [n for n in dict.fromkeys(names) if not adapt_is_done(Path(runs) / n)], unnamed
