"""A run's report beside the committed reference: key numbers read back from the written tables.

Both sides come from files a report already wrote (``base/base_quality.csv``, the main study's
``tables/quality.csv``, each study's ``claims.json`` when it has one); nothing is recomputed
and nothing is typed in. Two numbers *agree* when their difference lies within the 95% interval
of a difference of two independent means, ±sqrt(ci_a² + ci_b²), each ci being that side's
reported 95% half-width; a number reported without a CI (one base run) is shown, not judged.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

MAIN_STUDY = "main"
NOT_RUN = "not run"  # the verdict of a claim no study of the run decides (as the claims table writes it)
BASE = "base PSNR dB"
MAIN_METRICS = (("fid", "FID"), ("psnr", "PSNR dB"))  # the table's key columns: (csv prefix, label)


@dataclass(frozen=True)
class KeyNumber:
    label: str
    mean: float
    ci: float | None  # 95% half-width; None when the report gives none


@dataclass(frozen=True)
class Comparison:
    label: str
    ours: KeyNumber
    reference: KeyNumber

    @property
    def delta(self) -> float:
        return self.ours.mean - self.reference.mean

    @property
    def tolerance(self) -> float | None:
        if self.ours.ci is None or self.reference.ci is None:
            return None
        return math.hypot(self.ours.ci, self.reference.ci)

    @property
    def agrees(self) -> bool | None:
        """True / False against the combined CI; None when a side has no CI."""
        tol = self.tolerance
        return None if tol is None else abs(self.delta) <= tol


def _float(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def key_numbers(report_dir: str | Path) -> dict[str, KeyNumber]:
    """The base model's mean PSNR and each main-comparison method's FID and PSNR, as written."""
    report_dir = Path(report_dir)
    out: dict[str, KeyNumber] = {}
    for row in _rows(report_dir / "base" / "base_quality.csv"):
        if row.get("concept") == "mean" and _float(row.get("PSNR dB")) is not None:
            out[BASE] = KeyNumber(BASE, _float(row["PSNR dB"]), _float(row.get("PSNR dB ci95")))
    for row in _rows(report_dir / MAIN_STUDY / "tables" / "quality.csv"):
        method = row.get("method")
        for prefix, title in MAIN_METRICS:
            mean = _float(row.get(f"{prefix} mean"))
            if method and mean is not None:  # rows of the paper's numbers only have no mean of ours
                label = f"{method} {title}"
                out[label] = KeyNumber(label, mean, _float(row.get(f"{prefix} ci95")))
    return out


def compare(ours: dict[str, KeyNumber], reference: dict[str, KeyNumber]) -> list[Comparison]:
    """One comparison per key number both reports hold, in the reference's order."""
    return [Comparison(label, ours[label], ref) for label, ref in reference.items() if label in ours]


def _decimals(x: float) -> int:
    return 1 if abs(x) >= 100 else 2 if abs(x) >= 1 else 4


def _fmt_number(k: KeyNumber) -> str:
    """A mean and its CI with the mean's decimals: 249.1 ± 2.2, 20.41 ± 0.18."""
    d = _decimals(k.mean)
    return f"{k.mean:.{d}f}" + (f" ± {k.ci:.{d}f}" if k.ci is not None else "")


def _group(label: str) -> tuple[str, str]:
    """'full PSNR dB' -> ('full', 'PSNR dB')."""
    for _, title in MAIN_METRICS:
        if label.endswith(" " + title):
            return label[: -len(title) - 1], title
    return label, ""


def comparison_lines(rows: list[Comparison], reference_dir: str | Path) -> list[str]:
    """A few terminal lines: one per method (and the base), each number beside the reference's, judged."""
    if not rows:
        return [f"no key numbers in common with the reference report ({reference_dir})"]
    groups: dict[str, list[str]] = {}
    for r in rows:
        name, title = _group(r.label)
        d = _decimals(r.reference.mean)
        if r.agrees is None:
            verdict = f"(Δ {r.delta:+.{d}f}, no CI)"
        elif r.agrees:
            verdict = "agrees"
        else:
            verdict = f"DIFFERS (Δ {r.delta:+.{d}f}, beyond ±{r.tolerance:.{d}f})"
        groups.setdefault(name, []).append(f"{title} {_fmt_number(r.ours)} vs {_fmt_number(r.reference)} {verdict}")
    width = max(len(n) for n in groups)
    lines = [f"your run beside the reference report ({reference_dir}), mean ± 95% CI, yours vs the reference's:"]
    lines += [f"  {name:<{width}}  " + ";  ".join(parts) for name, parts in groups.items()]
    judged = [r for r in rows if r.agrees is not None]
    differ = [r.label for r in judged if not r.agrees]
    parts = [f"{len(judged) - len(differ)} of {len(judged)} with CIs agree"] if judged else []
    parts += [f"differ: {', '.join(differ)}"] if differ else []
    unjudged = len(rows) - len(judged)
    parts += [f"{unjudged} without a CI not judged"] if unjudged else []
    lines.append("  " + "; ".join(parts))
    return lines


def claim_verdicts(report_dir: str | Path, studies: list[str]) -> dict[str, str] | None:
    """claim -> verdict as the studies' written claims.json give them; None when there are none."""
    try:
        from e2gan.reporting.claims import CLAIMS_FILE, claims_rows
    except ImportError:  # an e2gan from before the claims table
        return None
    if not any((Path(report_dir) / name / CLAIMS_FILE).is_file() for name in studies):
        return None
    return {r["claim"]: r["verdict"] for r in claims_rows(Path(report_dir), studies)}


def _one_base(report_dir: Path, studies: list[str]) -> set[str]:
    """Claims whose comparisons all ran their arms on one base model (as recorded in claims.json)."""
    from e2gan.reporting.claims import claims_rows

    return {r["claim"] for r in claims_rows(report_dir, studies) if r.get("bases") == 1}


def claims_comparison_lines(ours: dict[str, str] | None, reference: dict[str, str] | None) -> list[str]:
    """Which claims decided on both sides got the reference's verdict and which did not."""
    if not ours or not reference:
        return []
    both = [c for c in reference if c in ours and NOT_RUN not in (ours[c], reference[c])]  # decided on both sides
    if not both:
        return []
    differ = [f"{c.split(')')[0]}) {ours[c]} here, {reference[c]} in the reference" for c in both if ours[c] != reference[c]]
    line = f"  claims: {len(both) - len(differ)} of {len(both)} have the reference's verdict"
    return [line + (f"; differ: {'; '.join(differ)}" if differ else "")]


def summary_lines(report_dir: str | Path, studies: list[str]) -> list[str]:
    """The closing summary: the report's claims when written, else the main table, in a few lines."""
    report_dir = Path(report_dir)
    verdicts = claim_verdicts(report_dir, studies) or {}
    run = {c: v for c, v in verdicts.items() if v != NOT_RUN}
    if run:  # claims whose studies did not run say nothing here beyond their names
        width = max(len(v) for v in run.values())
        one = _one_base(report_dir, studies)
        lines = ["the paper's claims, as this report decides them:"] + [
            f"  {v:<{width}}  {c}{' (on one base model: its own luck is not in the CI)' if c in one else ''}"
            for c, v in run.items()]
        idle = [c.split(")")[0] + ")" for c, v in verdicts.items() if v == NOT_RUN]
        return lines + ([f"  {NOT_RUN}: {', '.join(idle)} (their studies were not in this run)"] if idle else [])
    lines: list[str] = []
    numbers = key_numbers(report_dir)
    methods = [label.rsplit(" ", 1)[0] for label in numbers if label.endswith(" FID")]
    if methods:
        lines.append(f"{MAIN_STUDY}: mean over held-out concepts ± 95% CI over seeds")
        width = max(len(m) for m in methods)
        for m in methods:
            cells = [f"{title} {_fmt_number(numbers[f'{m} {title}']):<14}" for _, title in MAIN_METRICS
                     if f"{m} {title}" in numbers]
            lines.append(f"  {m:<{width}}  " + "  ".join(cells).rstrip())
    if BASE in numbers:
        lines.append(f"base model: mean PSNR {_fmt_number(numbers['base PSNR dB'])} dB")
    return lines
