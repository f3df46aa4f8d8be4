"""The paper's claims decided from paired comparisons between arms (spec ``[[claims]]`` entries).

Each entry names the claim, the arm it favours (``better``), the other arm, the deciding metric,
the kind (superiority / non-inferiority with margin δ) and why. A study's comparisons form one
family (Holm over them); a claim with several comparisons holds when all hold, is contradicted
when any is, and is otherwise inconclusive. Verdicts are computed, never typed.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from e2gan.reporting.arms import align, arm_runs, by_concept
from e2gan.reporting.bootstrap import DEFAULT_DRAWS, METRICS, paired_bootstrap
from e2gan.reporting.stats import format_number
from e2gan.reporting.study_context import StudyContext, spec_get
from e2gan.reporting.table import Table
from e2gan.reporting.verdicts import CONTRADICTED, HOLDS, INCONCLUSIVE, decide

CLAIMS = {
    "a": "LoRA on the crucial layers matches a full fine-tune at a small fraction of the trainable parameters",
    "b": "a base trained on many concepts beats a single-concept base and training from scratch",
    "c": "searched ranks beat uniform 1× and a random allocation at equal parameters",
    "d": "a small, cluster-selected subset of pairs suffices",
}
CLAIMS_FILE = "claims.json"
NOT_RUN, NO_SCORES = "not run", "no per-image scores stored: rerun"
SAME_RUNS = "both arms are the same runs: Δ is 0 by construction"
ALPHA = 0.05
UNITS = {"psnr": "dB", "perceptual": "", "kid_mean": ""}


def _cost(runs, key="params_trainable") -> float:
    vals = [r.result.get("cost", {}).get(key) for r in runs if r.result]
    vals = [float(v) for v in vals if isinstance(v, (int, float))]
    return sum(vals) / len(vals) if vals else float("nan")


def _pooled_runs(ctx: StudyContext, entry: dict) -> tuple[list, list, list[str]]:
    """The two arms' runs, each ``pooled`` [better, other] pair's runs added to them (the same methods
    on another base seed, say), and the arms with no finished runs.

    A pooled run's seed becomes (pair number, seed), the entry's own pair being number 0, so the
    bootstrap still pairs each run with the other arm's run of the same base and seed.
    """
    import dataclasses

    pairs = [(entry["better"], entry["other"]), *[tuple(p) for p in entry.get("pooled") or []]]
    a, b, missing = [], [], []
    for i, (pa, pb) in enumerate(pairs):
        ra, rb = arm_runs(ctx, pa), arm_runs(ctx, pb)
        missing += [x for x, r in ((pa, ra), (pb, rb)) if not r]
        if len(pairs) > 1:
            ra, rb = [[dataclasses.replace(r, seed=(i, r.seed)) for r in rs or []] for rs in (ra, rb)]
        a, b = a + (ra or []), b + (rb or [])
    return a, b, missing


def pooled_text(rec: dict) -> str:
    """', pooled with e2gan-base1 vs full-base1' for an entry that pools more pairs, else ''."""
    pairs = rec.get("pooled") or []
    return f", pooled with {'; '.join(f'{x} vs {y}' for x, y in pairs)}" if pairs else ""


def compare(ctx: StudyContext, entry: dict, draws: int = DEFAULT_DRAWS) -> dict:
    """One spec comparison: status, and the bootstrap Comparison when both arms have scores."""
    row = {k: entry.get(k) for k in ("claim", "better", "other", "pooled", "metric", "kind", "delta", "reason",
                                     "paper")}
    a, b, missing = _pooled_runs(ctx, entry)
    if missing:
        return {**row, "status": NOT_RUN, "why": f"no finished runs of {', '.join(missing)}"}
    if any(r.scores is None for r in a + b):
        old = sum(r.scores is None for r in a + b)
        return {**row, "status": NO_SCORES, "why": f"{old} of {len(a) + len(b)} runs have no scores.npz"}
    ca, cb = by_concept(a), by_concept(b)
    arms_a, arms_b = {}, {}
    for c in ca:
        if c in cb:
            arms_a[c], arms_b[c] = align(ca[c], cb[c])
    if not arms_a or min(len(v[0].mse) for v in arms_a.values()) < 2:
        return {**row, "status": NOT_RUN, "why": "the arms share no concept with scored images"}
    cmp = paired_bootstrap(arms_a, arms_b, entry["metric"], draws=draws, seed=0)
    from e2gan.reporting.noise import collapsed_runs  # its own check, or the same outputs as another seed

    collapsed = {x: (len(collapsed_runs(rs)), len(rs)) for x, rs in ((entry["better"], a), (entry["other"], b))}
    if {r.run_dir for r in a} == {r.run_dir for r in b}:  # e.g. a greedy search that kept its start, uniform 1x
        row["why"] = SAME_RUNS
    return {**row, "status": "ok", "cmp": cmp, "collapsed": collapsed, "bases": [_base_count(a), _base_count(b)],
            "params_ratio": _cost(a) / _cost(b) if _cost(b) else float("nan")}


def study_comparisons(ctx: StudyContext, spec: Any, draws: int = DEFAULT_DRAWS) -> list[dict]:
    """Every ``[[claims]]`` comparison of the spec, decided with Holm over those that could be run."""
    entries = list(spec_get(spec, "claims", []) or [])
    rows = [compare(ctx, e, draws) for e in entries]
    ok = [r for r in rows if r["status"] == "ok"]
    decided = iter(decide(ok, ALPHA)) if ok else iter(())
    return [next(decided) if r["status"] == "ok" else r for r in rows]


def _ci_text(r: dict) -> str:
    return f"[{format_number(r['lo'], 3)}, {format_number(r['hi'], 3)}] at {100 * (1 - r['level']):.1f}%"


def comparison_record(r: dict) -> dict:
    """A JSON-safe record of one comparison (what claims.json and the index read)."""
    rec = {k: r.get(k) for k in ("claim", "better", "other", "metric", "kind", "delta", "reason", "paper", "status", "why")}
    if r.get("pooled"):
        rec["pooled"] = r["pooled"]
    if r["status"] == "ok":
        cmp = r["cmp"]
        rec.update(delta_hat=cmp.delta, lo=r["lo"], hi=r["hi"], level=r["level"], p=r["p"], m=r["m"], mdd=r["mdd"],
                   se=cmp.se, verdict=r["verdict"], seeds=list(cmp.n_seeds), images=cmp.n_images,
                   concepts=cmp.concepts, draws=len(cmp.draws), collapsed=r["collapsed"], bases=r["bases"],
                   params_ratio=r["params_ratio"] if math.isfinite(r["params_ratio"]) else None)
    else:
        rec["verdict"] = r["status"]
    return rec


def comparisons_table(ctx: StudyContext, rows: list[dict]) -> Table | None:
    if not rows:
        return None
    disp, data = {}, {}
    for r in rows:
        rec = comparison_record(r)
        claim = f"({rec['claim']}) " if rec["claim"] in CLAIMS else ""  # claim "none": decides no claim of the paper
        label = f"{claim}{rec['better']} vs {rec['other']}{pooled_text(rec)}"
        d = {"metric": f"{rec['metric']} ({'higher' if METRICS.get(rec['metric'], 1) > 0 else 'lower'} is better)",
             "kind": rec["kind"] + (f", δ {rec['delta']}" if rec["kind"] == "non-inferiority" else "")}
        if rec["status"] == "ok":
            d.update({"Δ (positive favours the claim)": format_number(rec["delta_hat"], 4), "CI": _ci_text(r),
                      "verdict": rec["verdict"] + (f" ({rec['why']})" if rec.get("why") else ""),
                      "p (Holm level)": f"{rec['p']:.4f} ({rec['level']:.4f})",
                      "seeds": " vs ".join(map(str, rec["seeds"])), "bases": " vs ".join(map(str, rec["bases"])),
                      "images per concept": rec["images"],
                      "MDD": format_number(rec["mdd"], 4),
                      "collapsed": "; ".join(f"{k} {v[0]}/{v[1]}" for k, v in rec["collapsed"].items())})
        else:
            d.update({"verdict": f"{rec['status']} ({rec['why']})"})
        d["paper"] = rec.get("paper") or "–"
        d["why this metric and margin"] = rec.get("reason") or "–"
        disp[label], data[label] = d, rec
    m = sum(r["status"] == "ok" for r in rows)
    notes = [f"Paired bootstrap ({DEFAULT_DRAWS} draws): per concept, seeds (runs) resampled with replacement, the "
             "same seed positions for both arms when they ran the same seeds, then test images with replacement, the "
             "same images for every run of both arms; the metric recomputed on each draw from the stored per-image "
             "scores (KID from cached features); Δ averaged over concepts. Collapsed runs are included: a collapse "
             "is an outcome of the method. A comparison 'pooled with' more pairs of arms (the same methods on "
             "other base seeds) resamples all their runs as one level, (base, seed) pairs kept paired: a base's "
             "own luck enters the CI as far as the pooled bases show it.",
             f"Verdicts: Holm's step-down over the {m} comparison(s) of this table at α = {ALPHA}; each CI is taken "
             "at its Holm level. Superiority holds if the CI's lower end > 0, non-inferiority if it is > −δ; "
             "contradicted if the upper end is below that bound; otherwise inconclusive. MDD = 2.8 × the "
             "bootstrap SE of Δ: the smallest true difference this comparison detects (α 0.05, 80% power).",
             "The CI is Δ ± t·SE: the bootstrap's variance of Δ split into an image part and a seed part, the "
             "seed part scaled by n/(n−1) and t taken with Satterthwaite's degrees of freedom (n−1 when seed luck "
             "dominates). A plain percentile interval covered 76% at 3 seeds and 85% at 5 on simulated arms; this "
             "one 95% and 93% (and over-covers, i.e. is cautious, when per-image noise dominates). With 3 seeds "
             "the seed level is still coarse: more seeds, not a cleverer interval, is what narrows it."]
    title = "Paired comparisons" + (" behind the paper's claims" if any(r.get("claim") in CLAIMS for r in rows) else "")
    return Table("comparisons", title, pd.DataFrame.from_dict(
        disp, orient="index").rename_axis("comparison"), pd.DataFrame.from_dict(
        {k: {kk: json.dumps(vv) if isinstance(vv, (list, dict)) else vv for kk, vv in v.items()} for k, v in data.items()},
        orient="index").rename_axis("comparison"), notes)


def write_claims(out_dir: Path, study: str, rows: list[dict]) -> Path:
    from e2gan.io import atomic_write_json

    return atomic_write_json(Path(out_dir) / CLAIMS_FILE, {"study": study, "comparisons": [
        {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in comparison_record(r).items()}
        for r in rows]})


def claim_verdict(records: list[dict]) -> str:
    """One claim from its comparisons: holds if all hold, contradicted if any is, else inconclusive."""
    if not records:
        return NOT_RUN
    statuses = {r.get("status") for r in records}
    if statuses != {"ok"}:
        return NO_SCORES if NO_SCORES in statuses else NOT_RUN
    verdicts = [r.get("verdict") for r in records]
    if any(v == CONTRADICTED for v in verdicts):
        return CONTRADICTED
    if all(v == HOLDS for v in verdicts):
        return HOLDS
    return INCONCLUSIVE


def read_claims(out_dir: Path, studies: list[str]) -> dict[str, list[dict]]:
    """claim id -> comparison records from the claims.json of the listed studies."""
    found: dict[str, list[dict]] = {k: [] for k in CLAIMS}
    for name in studies:
        path = Path(out_dir) / name / CLAIMS_FILE
        try:
            recs = json.loads(path.read_text()).get("comparisons", [])
        except (OSError, ValueError):
            continue
        for r in recs:
            found.setdefault(str(r.get("claim")), []).append({**r, "study": name})
    return found


def claims_rows(out_dir: Path, studies: list[str]) -> list[dict]:
    """The claims table: one row per claim (a)–(d), its verdict, one line per comparison behind it
    (``comparisons``; ``measured`` joins them), the paper's numbers and the comparisons' reasons.
    ``bases``: the most base models behind any arm of its comparisons (None when not recorded)."""
    found = read_claims(out_dir, studies)
    rows = []
    for cid, text in CLAIMS.items():
        recs = found.get(cid, [])
        lines = [comparison_line(r) for r in recs]
        papers = list(dict.fromkeys(str(r["paper"]) for r in recs if r.get("paper")))
        reasons = list(dict.fromkeys(str(r["reason"]) for r in recs if r.get("reason")))
        studies_of = {why: list(dict.fromkeys(str(r.get("study")) for r in recs if r.get("reason") == why))
                      for why in reasons}
        counted = [max(r["bases"]) for r in recs if isinstance(r.get("bases"), list) and r["bases"]]
        rows.append({"claim": f"({cid}) {text}", "comparisons": lines, "measured": "; ".join(lines) or NOT_RUN,
                     "bases": max(counted) if counted else None,
                     "paper": "; ".join(papers) or "–", "verdict": claim_verdict(recs),
                     "why": "; ".join(reasons) or "–",
                     "reasons": [(", ".join(studies_of[why]), why) for why in reasons]})
    return rows


METRIC_NAMES = {"psnr": "PSNR", "kid_mean": "KID", "fid": "FID", "fid_inf": "FID∞", "perceptual": "perceptual"}


def comparison_line(r: dict) -> str:
    """One comparison in one line: study, arms, Δ with its Holm-level CI, the rule, the verdict, power.

    'main: e2gan vs full, PSNR Δ -0.54 dB, 97.5% CI [-0.98, -0.10], holds above -0.50: inconclusive;
    MDD 0.45; seeds 5/5 on 1 base; 500 images per concept; trainable params 5.19% of full's'
    """
    metric = str(r.get("metric"))
    head = f"{r.get('study')}: {r.get('better')} vs {r.get('other')}{pooled_text(r)}, {METRIC_NAMES.get(metric, metric)}"
    if r.get("status") != "ok":
        return f"{head}: {r.get('status')} ({r.get('why', '')})"
    dec, unit = (2, " dB") if metric == "psnr" else (4, "")
    bound = format_number(-float(r["delta"]), dec) if r.get("kind") == "non-inferiority" else "0"
    level = f"{100 * (1 - float(r['level'])):.3g}% " if isinstance(r.get("level"), (int, float)) else ""
    return (f"{head} Δ {format_number(r['delta_hat'], dec)}{unit}, {level}CI [{format_number(r['lo'], dec)}, "
            f"{format_number(r['hi'], dec)}], holds above {bound}: {r['verdict']}"
            f"{' (' + r['why'] + ')' if r.get('why') else ''}; MDD {format_number(r.get('mdd'), dec)}; "
            f"seeds {'/'.join(map(str, r.get('seeds', [])))}{_bases_text(r)}; {r.get('images')} images per concept"
            f"{_params_text(r)}")


def _bases_text(r: dict) -> str:
    """' on 1 base' / ' on 3 bases' / ' on 1 base vs none': how many base models are behind each arm's runs
    (a record written before they were counted says nothing)."""
    bases = r.get("bases")
    if not isinstance(bases, (list, tuple)) or len(bases) != 2 or not any(bases):  # unknown, or both from scratch
        return ""
    def word(n):
        return "none" if not n else f"{n} base{'s' if n != 1 else ''}"
    return f" on {word(bases[0])}" if bases[0] == bases[1] else f" on {word(bases[0])} vs {word(bases[1])}"


def _base_count(runs) -> int:
    """Distinct base models behind ``runs`` (by the base run's folder name; 0 for arms without one)."""
    return len({Path(str(r.result["base"])).name for r in runs if r.result and r.result.get("base")})


def _params_text(r: dict) -> str:
    ratio = r.get("params_ratio")
    return f"; trainable params {100 * ratio:.3g}% of {r.get('other')}'s" if isinstance(ratio, (int, float)) else ""

