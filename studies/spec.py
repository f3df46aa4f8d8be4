"""Study specs: one small TOML per paper table or ablation, overriding only what differs from its preset.

    name = "main"                 # study name (storage key, report folder)
    title = "..."
    table = "main"                # which report table it feeds
    metric = "fid"                # objective: fid | kid_mean | psnr | ssim | perceptual
    concepts = ["new"]            # held-out concepts: names or a role
    seeds = [0, 1, 2]             # adaptation seeds; every cell runs for each
    sampler = "grid"              # grid (every cell exactly once) | nsga2 | tpe
    n_trials = 0                  # nsga2 / tpe only
    pruner = "none"               # none | median (tpe only: prunes on validation PSNR)
    max_retries = 3               # a cell failed this many times is given up (--max-retries overrides)

    [config]                      # overrides for every cell, by config section
    adapt = { steps = 300 }

    [arms.e2gan]                  # named arms of the grid, each a set of overrides
    adapt = { method = "lora" }

    [axes]                        # more grid axes: "section.key" = [values]
    "adapt.train_pairs" = [8, 16]

    [search]                      # nsga2 / tpe: "section.key" = [choices]; "adapt.ranks.<group>" for ranks
    "adapt.ranks.tb" = [1, 2, 4, 8]
"""
from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

from e2gan.config import Config, apply_overrides, layer_group_names, load_toml
from e2gan.errors import InputError

SPEC_DIR = Path(__file__).resolve().parent / "specs"
TOP_KEYS = {"name", "title", "table", "metric", "concepts", "seeds", "sampler", "n_trials", "pruner",
            "preset", "config", "arms", "axes", "search", "description", "paper", "greedy", "latency", "claims",
            "max_retries",
            "dropped"}
CLAIM_KEYS = {"claim", "kind", "better", "other", "metric", "delta", "reason", "paper", "pooled"}
CLAIM_METRICS = ("kid_mean", "perceptual", "psnr")  # what the paired bootstrap recomputes per draw
GREEDY_SCHEMES = ("searched", "uniform-1x", "uniform-4x", "random")
GREEDY_KEYS = {"seeds", "max_rounds", "budget", "delta", "concepts", "metric"}
METRICS = {"fid": "minimize", "kid_mean": "minimize", "perceptual": "minimize", "psnr": "maximize",
           "ssim": "maximize"}
SAMPLERS = ("grid", "nsga2", "tpe")
TABLES = ("main", "base-model", "layers", "ranks", "pareto", "data-count", "rate-sweep")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass
class StudySpec:
    name: str
    path: str
    title: str = ""
    table: str = "main"
    metric: str = "fid"
    concepts: list[str] = field(default_factory=lambda: ["new"])
    seeds: list[int] = field(default_factory=lambda: [0])
    sampler: str = "grid"
    n_trials: int = 0
    pruner: str = "none"
    max_retries: int = 3
    preset: str = "tiny"
    config: dict = field(default_factory=dict)
    arms: dict[str, dict] = field(default_factory=dict)
    axes: dict[str, list] = field(default_factory=dict)
    search: dict[str, list] = field(default_factory=dict)
    paper: dict = field(default_factory=dict)  # the paper's numbers for the same rows, shown beside ours
    greedy: dict = field(default_factory=dict)  # run the greedy rank search too (studies.rank_search), with these settings
    latency: list[str] = field(default_factory=list)  # backends to time one run per arm on (torch, litert)
    claims: list[dict] = field(default_factory=list)  # paired comparisons deciding the paper's claims (a)-(d)
    dropped: list[dict] = field(default_factory=list)  # results tried and dropped, kept in the report as such
    description: str = ""
    user_config: str = ""                      # a --config file layered under the spec (preset < file < spec)

    def with_user_config(self, path: str | None) -> "StudySpec":
        """Layer a user's config file between the preset and the spec's own overrides."""
        if path:
            self.user_config = str(path)
            self.base_config()  # fail now on a bad file
        return self

    @property
    def direction(self) -> str:
        return METRICS[self.metric]

    def base_config(self, preset: str | None = None) -> Config:
        from e2gan.presets import load_config

        cfg = load_config(self.user_config or None, preset or self.preset)
        return apply_overrides(cfg, copy.deepcopy(self.config), self.path)

    def concept_names(self, preset: str | None = None) -> list[str]:
        from e2gan.data.concepts import load_concepts
        from e2gan.data.concepts import select_names_or_roles

        cfg = self.base_config(preset)
        concepts = load_concepts(cfg.data.concepts_file or None)
        try:
            return [c.name for c in select_names_or_roles(concepts, self.concepts)]
        except InputError as exc:
            raise InputError(f"unknown concept {exc.what.removeprefix('concept ')}", self.path, exc.expected) from None

    def grid(self, preset: str | None = None) -> list[dict]:
        """Every cell of a grid spec, in a fixed order: arm x axes x concept x seed."""
        arms = list(self.arms) or ["default"]
        axis_names = list(self.axes)
        cells = []
        for arm, *axis_values in itertools.product(arms, *[self.axes[a] for a in axis_names]):
            for concept in self.concept_names(preset):
                for seed in self.seeds:
                    cells.append({"arm": arm, **dict(zip(axis_names, axis_values)), "concept": concept, "seed": seed})
        return cells

    def cell_config(self, params: dict, preset: str | None = None) -> Config:
        """The full configuration of one cell (or one search trial)."""
        cfg = self.base_config(preset)
        arm = params.get("arm", "default")
        if arm != "default":
            cfg = apply_overrides(cfg, copy.deepcopy(self.arms[arm]), f"{self.path} [arms.{arm}]")
        nested: dict[str, dict] = {}
        for dotted, value in params.items():
            if "." not in dotted:
                continue
            section, key, *rest = dotted.split(".")
            if rest:  # adapt.ranks.<group>
                nested.setdefault(section, {}).setdefault(key, dict(getattr(getattr(cfg, section), key)))[rest[0]] = value
            else:
                nested.setdefault(section, {})[key] = value
        if "seed" in params:
            nested.setdefault("adapt", {})["seed"] = int(params["seed"])
        if "adapt" in nested and "ranks" in nested["adapt"]:
            nested["adapt"].setdefault("groups", list(dict.fromkeys([*cfg.adapt.groups, *nested["adapt"]["ranks"]])))
        return apply_overrides(cfg, nested, self.path)


def _expect(cond: bool, what: str, where: str, expected: str) -> None:
    if not cond:
        raise InputError(what, where, expected)


def load_spec(path_or_name: str | Path) -> StudySpec:
    """Load and validate a spec by path or by the name of a built-in spec in studies/specs/."""
    path = Path(path_or_name)
    if not path.exists() and not path.suffix:
        builtin = SPEC_DIR / f"{path_or_name}.toml"
        if not builtin.exists():
            names = sorted(p.stem for p in SPEC_DIR.glob("*.toml"))
            raise InputError(f"unknown study spec '{path_or_name}'", "study", f"a TOML file or one of {names}")
        path = builtin
    raw = load_toml(path)
    where = str(path)
    unknown = sorted(set(raw) - TOP_KEYS)
    _expect(not unknown, f"unknown key(s) {unknown}", where, f"keys among {sorted(TOP_KEYS)}")
    _expect("name" in raw and isinstance(raw["name"], str) and bool(NAME_RE.match(raw["name"])),
            f"'name' = {raw.get('name')!r}", where, "a lowercase name of letters, digits, '-' or '_'")
    spec = StudySpec(name=raw["name"], path=where, **{k: raw[k] for k in raw if k not in ("name",)})
    _expect(spec.metric in METRICS, f"'metric' = {spec.metric!r}", where, f"one of {sorted(METRICS)}")
    _expect(spec.sampler in SAMPLERS, f"'sampler' = {spec.sampler!r}", where, f"one of {list(SAMPLERS)}")
    _expect(spec.table in TABLES, f"'table' = {spec.table!r}", where, f"one of {list(TABLES)}")
    _expect(spec.pruner in ("none", "median"), f"'pruner' = {spec.pruner!r}", where, "none or median")
    _expect(isinstance(spec.max_retries, int) and not isinstance(spec.max_retries, bool) and spec.max_retries >= 1,
            f"'max_retries' = {spec.max_retries!r}", where, "an integer >= 1")
    _expect(isinstance(spec.seeds, list) and spec.seeds and all(isinstance(s, int) and s >= 0 for s in spec.seeds),
            f"'seeds' = {spec.seeds!r}", where, "a non-empty list of integers >= 0")
    _expect(isinstance(spec.concepts, list) and bool(spec.concepts), f"'concepts' = {spec.concepts!r}", where,
            "a non-empty list of concept names or roles")
    if spec.sampler == "grid":
        _expect(not spec.search, "'search' in a grid spec", where, "[arms] and [axes] (search is for nsga2/tpe)")
    else:
        _expect(bool(spec.search) and spec.n_trials > 0, f"sampler {spec.sampler!r}", where,
                "a [search] space and n_trials > 0")
    for arm in spec.arms:
        _expect(bool(NAME_RE.match(arm)), f"arm name {arm!r}", where, "letters, digits, '-' or '_'")
    _expect(isinstance(spec.latency, list) and all(b in ("torch", "litert") for b in spec.latency),
            f"'latency' = {spec.latency!r}", where, "a list of host backends among ['litert', 'torch']")
    if spec.greedy:
        bad = sorted(set(spec.greedy) - GREEDY_KEYS)
        _expect(isinstance(spec.greedy, dict) and not bad, f"unknown key(s) {bad} in [greedy]", where,
                f"keys among {sorted(GREEDY_KEYS)}")
        m = spec.greedy.get("metric", spec.metric)
        _expect(m in METRICS, f"'greedy.metric' = {m!r}", where, f"one of {sorted(METRICS)}")
        for key in ("max_rounds", "budget"):
            v = spec.greedy.get(key)
            _expect(v is None or (isinstance(v, int) and v > 0), f"'greedy.{key}' = {v!r}", where, "a positive integer")
    _check_claims(spec, where)
    # Resolve everything once so a bad key, value, concept or group fails now, not mid-study.
    base = spec.base_config()
    groups = layer_group_names(base.model)
    for key, values in [*spec.axes.items(), *spec.search.items()]:
        parts = key.split(".")
        _expect(len(parts) in (2, 3) and isinstance(values, list) and bool(values), f"axis '{key}'", where,
                "'section.key' (or 'adapt.ranks.<group>') mapped to a non-empty list")
        if len(parts) == 3:
            _expect(parts[:2] == ["adapt", "ranks"] and parts[2] in groups, f"axis '{key}'", where,
                    f"adapt.ranks.<group> with a group among {list(groups)}")
    spec.concept_names()
    for arm in spec.arms:
        spec.cell_config({"arm": arm})
    if spec.sampler == "grid":
        for cell in spec.grid()[: len(spec.arms) * max(1, len(spec.axes)) or 1]:
            spec.cell_config(cell)
        for key, values in spec.axes.items():
            for v in values:
                spec.cell_config({key: v})
    else:
        for key, values in spec.search.items():
            for v in values:
                spec.cell_config({key: v})
    return spec


def row_labels(spec: StudySpec) -> list[str]:
    """The report's row labels of a grid spec: arm, then each axis value, joined with ' / '."""
    from e2gan.markdown_table import label_value

    parts = ([list(spec.arms)] if spec.arms else []) + [[label_value(v) for v in vals] for vals in spec.axes.values()]
    return [" / ".join(map(str, p)) for p in itertools.product(*parts)] if parts else []


def _check_claims(spec: StudySpec, where: str) -> None:
    """Each [[claims]] entry: a claim a-d (or none), two arms this spec runs, a bootstrap metric, δ for non-inferiority."""
    _expect(isinstance(spec.claims, list) and all(isinstance(c, dict) for c in spec.claims), "'claims'", where,
            "an array of tables [[claims]]")
    labels = row_labels(spec) if spec.sampler == "grid" else []
    arms = labels + ([f"greedy:{s}" for s in GREEDY_SCHEMES] if spec.greedy else [])
    for i, c in enumerate(spec.claims):
        at = f"{where} [[claims]] #{i + 1}"
        bad = sorted(set(c) - CLAIM_KEYS)
        _expect(not bad, f"unknown key(s) {bad}", at, f"keys among {sorted(CLAIM_KEYS)}")
        _expect(c.get("claim") in ("a", "b", "c", "d", "none"), f"'claim' = {c.get('claim')!r}", at,
                "one of a, b, c, d, or none (a paired comparison that decides no claim: its study's table only)")
        _expect(c.get("kind") in ("superiority", "non-inferiority"), f"'kind' = {c.get('kind')!r}", at,
                "superiority or non-inferiority")
        _expect(c.get("metric") in CLAIM_METRICS, f"'metric' = {c.get('metric')!r}", at,
                f"one of {list(CLAIM_METRICS)} (recomputed per bootstrap draw from stored per-image scores)")
        for k in ("better", "other"):
            _expect(c.get(k) in arms, f"'{k}' = {c.get(k)!r}", at, f"one of {arms}")
        _expect(c["better"] != c["other"], "'better' = 'other'", at, "two different arms")
        # More (better, other) pairs pooled into the two arms, e.g. the same methods on other base seeds.
        pooled = c.get("pooled", [])
        _expect(isinstance(pooled, list) and all(isinstance(p, list) and len(p) == 2 and all(x in arms for x in p)
                                                 for p in pooled), f"'pooled' = {pooled!r}", at,
                f"a list of [better, other] pairs of arms among {arms}")
        used = [c["better"], c["other"], *(x for p in pooled for x in p)]
        _expect(len(used) == len(set(used)), f"an arm twice in 'better', 'other' and 'pooled': {used}", at,
                "every arm in one place only")
        if c["kind"] == "non-inferiority":
            d = c.get("delta")
            _expect(isinstance(d, (int, float)) and not isinstance(d, bool) and d >= 0, f"'delta' = {d!r}", at,
                    "a margin >= 0 in the metric's units (fixed before the run)")
        _expect(isinstance(c.get("reason"), str) and bool(c["reason"].strip()), "no 'reason'", at,
                "why this metric (and margin) decides the claim")
    _expect(isinstance(spec.dropped, list) and all(isinstance(d, dict) and {"what", "result", "why"} <= set(d)
                                                   for d in spec.dropped),
            "'dropped'", where, "an array of tables [[dropped]] with what, result and why")


def builtin_specs() -> list[Path]:
    return sorted(SPEC_DIR.glob("*.toml"))
