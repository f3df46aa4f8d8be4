"""LoRA rank search: the paper-style greedy procedure and its reference schemes.

The paper reports a searched rank allocation (109.37 FID @ 0.092 M params on Flickr-Scenery)
against uniform 1x, uniform 4x and random allocation, but not the search rule. The rule here:

1. Every searched group starts at ``start_rank`` (1).
2. Each round tries doubling each group's rank (up to ``max_rank``). A doubling whose LoRA cost
   would exceed ``budget`` is not evaluated. The others are evaluated and scored by quality gain
   (positive = better, whatever the metric's direction) per added parameter.
3. Among the doublings that gain at least ``delta`` (and more than 0), the best gain per added
   parameter is kept. When none does, the search stops ("delta"); when every doubling would break
   the budget, it stops ("budget"); when every group is at ``max_rank``, it stops ("max_rank").

``greedy_rank_search`` knows nothing about training: ``evaluate(ranks) -> quality`` and
``cost(ranks) -> params`` are passed in, evaluations are cached by rank tuple, and every round's
candidates are recorded. ``rank_search_study`` plugs in training (one adaptation run per concept
and seed through ``ensure_adapt``) and adds the reference schemes.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from e2gan.config import Config, layer_group_names
from e2gan.errors import InputError
from e2gan.pipeline.evaluate import val_quality
from studies.layer_analysis import (_mean, _sd, cell_config, cell_quality, default_out_dir,
                                    metric_direction, parse_seeds, study_key)
from studies.rank_search_files import RankSearchStudy, format_ranks, scheme_table, write_files
from studies.validation import default_delta


@dataclass
class Candidate:
    group: str
    from_rank: int
    to_rank: int
    ranks: dict[str, int]
    params: int
    added_params: int
    within_budget: bool = True
    quality: float | None = None
    gain: float | None = None
    gain_per_param: float | None = None
    eligible: bool = False
    chosen: bool = False


@dataclass
class Round:
    index: int
    ranks: dict[str, int]
    quality: float
    params: int
    candidates: list[Candidate] = field(default_factory=list)
    chosen: str | None = None
    stop_reason: str | None = None


@dataclass
class SearchResult:
    groups: list[str]
    ranks: dict[str, int]
    quality: float
    params: int
    start_ranks: dict[str, int]
    start_quality: float
    start_params: int
    rounds: list[Round]
    stop_reason: str
    higher_is_better: bool
    delta: float
    budget: int | None
    cache: dict[tuple, float]

    @property
    def evaluations(self) -> int:
        return len(self.cache)

    def trajectory(self):
        """One row per evaluated or budget-rejected candidate, round 0 being the start."""
        import pandas as pd

        rows = [{"round": 0, "group": "(start)", "from rank": None, "to rank": None,
                 "ranks": format_ranks(self.start_ranks), "params": self.start_params, "added params": 0,
                 "quality": self.start_quality, "gain": None, "gain per 1k params": None,
                 "within budget": True, "eligible": None, "chosen": True}]
        for rnd in self.rounds:
            for c in rnd.candidates:
                rows.append({"round": rnd.index, "group": c.group, "from rank": c.from_rank, "to rank": c.to_rank,
                             "ranks": format_ranks(c.ranks), "params": c.params, "added params": c.added_params,
                             "quality": c.quality, "gain": c.gain,
                             "gain per 1k params": None if c.gain_per_param is None else c.gain_per_param * 1000,
                             "within budget": c.within_budget, "eligible": c.eligible, "chosen": c.chosen})
        return pd.DataFrame(rows)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["cache"] = [{"ranks": dict(zip(self.groups, k)), "quality": v} for k, v in self.cache.items()]
        d["evaluations"] = self.evaluations
        return d


def greedy_rank_search(groups: Iterable[str], evaluate: Callable[[dict[str, int]], float],
                       cost: Callable[[dict[str, int]], int], higher_is_better: bool = True,
                       delta: float = 0.0, budget: int | None = None, start_rank: int = 1,
                       max_rank: int = 64, max_rounds: int | None = None,
                       cache: dict[tuple, float] | None = None) -> SearchResult:
    """Greedy doubling of per-group LoRA ranks (see the module docstring for the rule).

    ``cache`` (rank tuple in ``groups`` order -> quality) is filled in place, so a caller can reuse
    the evaluations for reference schemes; ``evaluate`` is called once per distinct assignment.
    """
    groups = list(dict.fromkeys(groups))
    if not groups:
        raise InputError("no layer groups", "rank search", "at least one group")
    if start_rank < 1 or max_rank < start_rank:
        raise InputError(f"start_rank={start_rank}, max_rank={max_rank}", "rank search",
                         "1 <= start rank <= max rank")
    if max_rounds is not None and max_rounds < 0:
        raise InputError(f"max_rounds={max_rounds}", "rank search", "a number >= 0")
    cache = {} if cache is None else cache
    sign = 1.0 if higher_is_better else -1.0

    def quality_of(ranks: dict[str, int]) -> float:
        key = tuple(ranks[g] for g in groups)
        if key not in cache:
            cache[key] = float(evaluate(dict(ranks)))
        return cache[key]

    ranks = {g: start_rank for g in groups}
    params = int(cost(ranks))
    if budget is not None and params > budget:
        raise InputError(f"budget {budget:,} params", "--budget",
                         f"at least the starting allocation's {params:,} (all groups at rank {start_rank})")
    quality = quality_of(ranks)
    start = (dict(ranks), quality, params)
    rounds: list[Round] = []
    stop = None
    while stop is None:
        if max_rounds is not None and len(rounds) >= max_rounds:
            stop = "max_rounds"
            break
        rnd = Round(index=len(rounds) + 1, ranks=dict(ranks), quality=quality, params=params)
        for g in groups:
            if ranks[g] * 2 > max_rank:
                continue
            new = {**ranks, g: ranks[g] * 2}
            c_params = int(cost(new))
            cand = Candidate(group=g, from_rank=ranks[g], to_rank=new[g], ranks=new, params=c_params,
                             added_params=c_params - params)
            rnd.candidates.append(cand)
            if budget is not None and c_params > budget:
                cand.within_budget = False
                continue
            cand.quality = quality_of(new)
            cand.gain = sign * (cand.quality - quality)
            if cand.added_params > 0:
                cand.gain_per_param = cand.gain / cand.added_params
            else:  # free doubling (should not happen with LoRA): any improvement wins
                cand.gain_per_param = math.inf if cand.gain > 0 else cand.gain
            cand.eligible = bool(cand.gain > 0 and cand.gain >= delta)  # NaN is never eligible
        evaluated = [c for c in rnd.candidates if c.within_budget]
        eligible = [c for c in evaluated if c.eligible]
        if not eligible:
            stop = "delta" if evaluated else ("budget" if rnd.candidates else "max_rank")
            rnd.stop_reason = stop
            rounds.append(rnd)
            break
        best = max(eligible, key=lambda c: (c.gain_per_param, c.gain, -groups.index(c.group)))
        best.chosen = True
        rnd.chosen = best.group
        ranks, quality, params = best.ranks, best.quality, best.params
        rounds.append(rnd)
    return SearchResult(groups=groups, ranks=dict(ranks), quality=quality, params=params,
                        start_ranks=start[0], start_quality=start[1], start_params=start[2], rounds=rounds,
                        stop_reason=stop, higher_is_better=higher_is_better, delta=delta, budget=budget,
                        cache=cache)


def reference_schemes(groups: list[str], uniform_rank: int, budget: int, generator, seed: int = 0) -> dict[str, dict[str, int]]:
    """The paper's references: uniform 1x, uniform 4x, and a random allocation near ``budget`` params."""
    from e2gan.nets.lora import random_ranks

    if uniform_rank < 1:
        raise InputError(f"uniform rank {uniform_rank}", "--uniform-rank", "a positive integer")
    return {"uniform 1x": {g: uniform_rank for g in groups},
            "uniform 4x": {g: 4 * uniform_rank for g in groups},
            "random": random_ranks(list(groups), budget, generator, seed)}


class TrainingEvaluator:
    """evaluate(ranks) for the search: LoRA with those ranks, mean over concepts x seeds, on the
    validation split (the search chooses on it; the tables report the test split).

    Each (concept, seed) is an ``ensure_adapt`` run, so a repeated or resumed search re-trains
    nothing. Keeps the per-seed qualities (mean over concepts) on val and on test, and the run
    folders of each call.
    """

    def __init__(self, cfg: Config, concepts: list[str], seeds: list[int], metric: str, data_root: Path,
                 base_run: Path, runs: str | Path = "runs", progress: bool = True, bar=None,
                 on_run: Callable[[str, float, bool], None] | None = None):
        self.cfg, self.concepts, self.seeds, self.metric = cfg, concepts, seeds, metric
        self.data_root, self.base_run, self.runs, self.progress, self.bar = data_root, base_run, runs, progress, bar
        self.on_run = on_run  # (label, seconds, found on disk) after every run: a caller's display
        self.per_seed: dict[str, list[float]] = {}
        self.per_seed_test: dict[str, list[float]] = {}
        self.run_dirs: dict[str, list[str]] = {}
        self.calls = 0

    def __call__(self, ranks: dict[str, int]) -> float:
        from e2gan.pipeline.adapt import adapt_dir, adapt_is_done, ensure_adapt

        self.calls += 1
        label = format_ranks(ranks)
        if self.bar is not None:
            self.bar.set_postfix_str(label)
        per_seed, per_seed_test, dirs = [], [], []
        for seed in self.seeds:
            values, tests = [], []
            for concept in self.concepts:
                cfg = cell_config(self.cfg, method="lora", groups=list(ranks), ranks=dict(ranks), seed=seed)
                t0, found = time.perf_counter(), adapt_is_done(adapt_dir(cfg, concept, self.runs))
                run_dir, result = ensure_adapt(cfg, concept, self.data_root, self.base_run, self.runs,
                                               progress=self.progress)
                if self.on_run is not None:
                    self.on_run(f"{label} {concept} seed {seed}", time.perf_counter() - t0, found)
                values.append(val_quality(run_dir, [concept], self.metric, self.data_root))
                tests.append(cell_quality(result, self.metric))
                dirs.append(str(run_dir))
            per_seed.append(_mean(values))
            per_seed_test.append(_mean(tests))
        if self.bar is not None:
            self.bar.update(1)
        self.per_seed[label], self.per_seed_test[label], self.run_dirs[label] = per_seed, per_seed_test, dirs
        return _mean(per_seed)


def rank_search_study(cfg: Config, concepts: list[str], data_root: Path, base_run: Path,
                      runs: str | Path = "runs", *, groups: Iterable[str] | None = None, metric: str = "psnr",
                      seeds: Iterable[int] | str | None = None, delta: float | None = None,
                      budget: int | None = None, start_rank: int = 1, max_rank: int = 64,
                      max_rounds: int | None = None, uniform_rank: int | None = None,
                      out_dir: str | Path | None = None, progress: bool = True,
                      on_run: Callable[[str, float, bool], None] | None = None) -> RankSearchStudy:
    """Search ranks with training in the loop, then train the reference schemes; writes the tables.

    groups: default ``cfg.adapt.groups`` (the paper's five); budget: LoRA params (the concept
    embedding, common to every scheme, is not counted); uniform_rank: the 1x rank (default
    ``start_rank``, so uniform 1x is the search's starting point); the random scheme draws at the
    searched allocation's budget with the first seed.
    """
    from tqdm import tqdm

    from e2gan.nets.lora import lora_param_count
    from e2gan.nets.registry import load_generator

    if not concepts:
        raise InputError("no concept", "--concept", "at least one new concept")
    metric_key, higher = metric_direction(metric)
    seeds = parse_seeds(seeds, cfg.adapt.seed)
    concepts = list(dict.fromkeys(concepts))
    delta = default_delta(metric_key, len(seeds), len(concepts)) if delta is None else float(delta)
    valid = layer_group_names(cfg.model)
    groups = list(dict.fromkeys(groups or cfg.adapt.groups))
    unknown = [g for g in groups if g not in valid]
    if unknown or not groups:
        raise InputError(f"layer group(s) {unknown or groups}", "--groups", f"some of {list(valid)}")
    if budget is not None and budget <= 0:
        raise InputError(f"budget {budget}", "--budget", "a positive number of parameters")
    uniform_rank = start_rank if uniform_rank is None else int(uniform_rank)
    protocol = {
        "study": "LoRA rank search", "metric": metric_key, "higher_is_better": higher, "delta": delta,
        "budget": budget, "start_rank": start_rank, "max_rank": max_rank, "max_rounds": max_rounds,
        "uniform_rank": uniform_rank, "groups": groups, "concepts": concepts, "seeds": seeds,
        "steps": cfg.adapt.steps, "max_time_s": cfg.adapt.max_time_s, "alpha_ratio": cfg.adapt.alpha_ratio,
        "lora_lr": cfg.adapt.lr, "embedding_init": cfg.adapt.embedding_init, "disc": cfg.adapt.disc,
        "rule": "start all groups at start_rank; each round try doubling each group; keep the doubling with "
                "the best quality gain per added LoRA param among those gaining >= delta (and > 0) within "
                "the budget; stop when none does",
        "params": "LoRA parameters only (the concept embedding, trained in every scheme, is not counted)",
        "random": "e2gan.nets.lora.random_ranks at the searched allocation's params, seed = first seed",
        "averaging": "quality = mean over concepts per seed, then mean (sd) over seeds",
        "split": "the search (trajectory) scores the validation split; the scheme table the test split",
        "delta_rule": "default: 1.645 x the metric's seed-to-seed sd per (concept, seed) run x sqrt(2 / (seeds x "
                      "concepts)), a one-sided 5% chance of keeping a doubling that gains nothing "
                      "(studies.validation.NOISE_SD)",
        "paper_columns": "the paper's Flickr-Scenery FID and params (10 concepts, 256², its own scale); "
                         "for orientation only, not comparable to ours",
    }
    key = study_key(cfg, {k: protocol[k] for k in ("metric", "delta", "budget", "start_rank", "max_rank",
                                                    "max_rounds", "uniform_rank", "groups", "concepts", "seeds")})
    out = Path(out_dir) if out_dir else default_out_dir("rank-search", cfg, concepts, key, runs)
    out.mkdir(parents=True, exist_ok=True)
    protocol.update(base=str(base_run), key=key)

    base, _ = load_generator(base_run)

    def cost(ranks: dict[str, int]) -> int:
        return lora_param_count(base, ranks)

    t0 = time.perf_counter()
    bar = tqdm(desc="rank-search", unit="allocation", disable=not progress)
    evaluator = TrainingEvaluator(cfg, concepts, seeds, metric_key, data_root, base_run, runs, progress, bar, on_run)
    cache: dict[tuple, float] = {}
    search = greedy_rank_search(groups, evaluator, cost, higher, delta, budget, start_rank, max_rank,
                                max_rounds, cache=cache)
    schemes = {"searched": search.ranks,
               **reference_schemes(groups, uniform_rank, search.params, base, seed=seeds[0])}
    rows = []
    for name, ranks in schemes.items():
        k = tuple(ranks[g] for g in groups)
        if k not in cache:
            cache[k] = evaluator(ranks)
        per_seed = evaluator.per_seed_test.get(format_ranks(ranks), [])
        rows.append({"scheme": name, "ranks": ranks, "params": cost(ranks), "quality": _mean(per_seed),
                     "sd": _sd(per_seed), "n_seeds": len(per_seed), "quality_val": cache[k]})
    bar.close()
    table = scheme_table(rows, metric_key)
    protocol.update(seconds=time.perf_counter() - t0, evaluations=len(cache))
    files = write_files(out, search, table, protocol, evaluator)
    return RankSearchStudy(search, table, protocol, out, files)


def greedy_dir(spec, runs: str | Path, preset: str) -> Path:
    """Where a spec's greedy search keeps its tables: beside the study's storage, so reports find it."""
    return Path(runs) / "studies" / f"{spec.name}-{preset}-greedy"


def spec_rank_search(spec, preset: str, runs: str | Path = "runs", progress: bool = True,
                     on_run: Callable[[str, float, bool], None] | None = None) -> RankSearchStudy:
    """The greedy search a spec's ``[greedy]`` table asks for, on the spec's configuration and base.

    Every allocation is an ``ensure_adapt`` run, so calling it again (a resumed ``reproduce``)
    trains only what is missing. ``on_run(label, seconds, found)`` after each of its runs.
    """
    from e2gan.pipeline.base import ensure_base
    from e2gan.pipeline.data import ensure_data

    g = spec.greedy
    cfg = spec.base_config(preset)
    data, _ = ensure_data(cfg, runs, progress=progress)
    base, _ = ensure_base(cfg, data, runs, progress=progress)
    concepts = g.get("concepts") or spec.concept_names(preset)
    return rank_search_study(cfg, concepts, data, base, runs, groups=cfg.adapt.groups, metric=g.get("metric", spec.metric),
                             seeds=g.get("seeds") or spec.seeds[:1], delta=g.get("delta"), budget=g.get("budget"),
                             max_rounds=g.get("max_rounds"), out_dir=greedy_dir(spec, runs, preset),
                             progress=progress, on_run=on_run)
