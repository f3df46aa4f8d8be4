"""A run's key numbers beside the committed reference report: read back from written tables, judged by CI."""
import csv
import math
import shutil
from pathlib import Path

import pytest

from e2gan.reporting.reference import (Comparison, KeyNumber, compare, comparison_lines, key_numbers,
                                       summary_lines)

REFERENCE = Path(__file__).resolve().parents[2] / "reports" / "tiny"


def _csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_key_numbers_are_read_from_the_committed_reference_tables():
    numbers = key_numbers(REFERENCE)
    rows = {r["method"]: r for r in _csv_rows(REFERENCE / "main" / "tables" / "quality.csv")}
    base = next(r for r in _csv_rows(REFERENCE / "base" / "base_quality.csv") if r["concept"] == "mean")
    assert numbers["base PSNR dB"].mean == float(base["PSNR dB"])
    measured = [m for m, r in rows.items() if r["fid mean"]]
    assert measured and all(f"{m} FID" in numbers and f"{m} PSNR dB" in numbers for m in measured)
    assert numbers["full FID"] == KeyNumber("full FID", float(rows["full"]["fid mean"]), float(rows["full"]["fid ci95"]))
    assert not any("paper only" in label for label in numbers)  # the paper's row has no numbers of ours


@pytest.mark.parametrize("ours,ref,agrees", [
    (KeyNumber("x", 249.1, 2.2), KeyNumber("x", 234.8, 13.7), False),  # 14.3 > hypot(2.2, 13.7) = 13.88
    (KeyNumber("x", 248.0, 2.2), KeyNumber("x", 234.8, 13.7), True),  # 13.2 within 13.88
    (KeyNumber("x", 21.44, None), KeyNumber("x", 20.96, None), None),  # one base run: no CI, no verdict
    (KeyNumber("x", 21.44, 0.1), KeyNumber("x", 20.96, None), None),
])
def test_agreement_is_the_difference_within_the_combined_ci(ours, ref, agrees):
    c = Comparison("x", ours, ref)
    assert c.agrees is agrees
    assert c.delta == pytest.approx(ours.mean - ref.mean)
    if agrees is not None:
        assert c.tolerance == pytest.approx(math.hypot(ours.ci, ref.ci))


def test_a_perturbed_copy_is_compared_line_by_line(tmp_path):
    ours = tmp_path / "tiny"
    shutil.copytree(REFERENCE / "base", ours / "base")
    (ours / "main" / "tables").mkdir(parents=True)
    rows = _csv_rows(REFERENCE / "main" / "tables" / "quality.csv")
    for r in rows:
        if r["method"] == "full":
            r["fid mean"] = str(float(r["fid mean"]) + 3 * float(r["fid ci95"]))  # far outside both CIs
    with open(ours / "main" / "tables" / "quality.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    result = compare(key_numbers(ours), key_numbers(REFERENCE))
    verdicts = {c.label: c.agrees for c in result}
    assert verdicts["full FID"] is False
    assert verdicts["full PSNR dB"] is True and verdicts["e2gan FID"] is True  # identical numbers agree
    assert verdicts["base PSNR dB"] is None
    lines = comparison_lines(result, REFERENCE)
    full = next(l for l in lines if l.split()[0] == "full")
    assert "FID" in full and "DIFFERS (Δ +" in full and full.count("agrees") == 1  # its PSNR still agrees
    judged = sum(v is not None for v in verdicts.values())
    assert lines[-1].strip() == f"{judged - 1} of {judged} with CIs agree; differ: full FID; 1 without a CI not judged"


def test_only_numbers_both_reports_hold_are_compared(tmp_path):
    ours = tmp_path / "tiny"
    shutil.copytree(REFERENCE / "base", ours / "base")  # a `--specs none` run: the base alone
    assert [c.label for c in compare(key_numbers(ours), key_numbers(REFERENCE))] == ["base PSNR dB"]
    assert comparison_lines([], REFERENCE) == [f"no key numbers in common with the reference report ({REFERENCE})"]


def test_summary_is_the_main_table_when_no_claims_are_written():
    lines = summary_lines(REFERENCE, ["main"]) if not (REFERENCE / "main" / "claims.json").exists() else None
    if lines is None:
        pytest.skip("the committed reference has claims: the claims test covers it")
    methods = [r["method"] for r in _csv_rows(REFERENCE / "main" / "tables" / "quality.csv") if r["fid mean"]]
    assert len(lines) == len(methods) + 2  # heading, one per method, the base
    assert all(any(l.strip().startswith(m + " ") for l in lines) for m in methods)


def _claims_json(folder, verdict, **extra):
    import json

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "claims.json").write_text(json.dumps({"study": "main", "comparisons": [
        {"claim": "a", "better": "e2gan", "other": "full", "metric": "fid", "kind": "non-inferiority", "delta": 10.0,
         "status": "ok", "verdict": verdict, "delta_hat": 1.0, "lo": -2.0, "hi": 4.0, "seeds": [0, 1, 2],
         "images": 10, "mdd": 5.0, **extra}]}))


def test_claims_are_read_from_the_written_claims_json_and_compared(tmp_path):
    pytest.importorskip("e2gan.reporting.claims")
    from e2gan.reporting.reference import claim_verdicts, claims_comparison_lines

    ours, ref = tmp_path / "ours", tmp_path / "ref"
    _claims_json(ours / "main", "holds")
    _claims_json(ref / "main", "inconclusive")
    lines = summary_lines(ours, ["main"])
    assert lines[0] == "the paper's claims, as this report decides them:"
    assert lines[1].split()[0] == "holds" and "(a)" in lines[1]
    assert lines[2].strip().startswith("not run: (b), (c), (d)")  # the claims no study here decides
    assert len(lines) == 3 and "one base model" not in lines[1]  # a record that did not count its bases
    _claims_json(ours / "main", "holds", bases=[1, 1])
    assert lines[1] + " (on one base model: its own luck is not in the CI)" == summary_lines(ours, ["main"])[1]
    _claims_json(ours / "main", "holds", bases=[3, 3])
    assert summary_lines(ours, ["main"])[1] == lines[1]
    mine, theirs = claim_verdicts(ours, ["main"]), claim_verdicts(ref, ["main"])
    [line] = claims_comparison_lines(mine, theirs)  # only (a) is decided on both sides
    assert line.strip() == "claims: 0 of 1 have the reference's verdict; differ: (a) holds here, inconclusive in the reference"
    assert claim_verdicts(tmp_path / "none", ["main"]) is None and claims_comparison_lines(None, theirs) == []
    (ours / "main" / "claims.json").write_text('{"study": "main", "comparisons": []}')
    assert summary_lines(ours, ["main"]) == []  # no claim decided and no main table: nothing to show
    assert claims_comparison_lines(claim_verdicts(ours, ["main"]), theirs) == []
