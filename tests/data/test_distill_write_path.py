"""distill()'s work beyond the floor of writing its pairs: the manifest is written once when its
appended lines already read as the rewrite would, and greyscale tests run only where they decide."""
import json

import e2gan.data.distill as distill_mod
from tests.data.test_distill import Counting, run, sources


def _manifest_rewrites(monkeypatch) -> list:
    calls = []
    real = distill_mod.atomic_write_text

    def counting(path, text, *a, **kw):
        if path.name == distill_mod.MANIFEST:
            calls.append(text)
        return real(path, text, *a, **kw)

    monkeypatch.setattr(distill_mod, "atomic_write_text", counting)
    return calls


def test_fresh_run_appends_once_and_reads_as_the_rewrite(tmp_path, monkeypatch):
    rewrites = _manifest_rewrites(monkeypatch)
    run(tmp_path)
    assert rewrites == []   # the appended lines are the manifest
    text = (tmp_path / distill_mod.MANIFEST).read_text()
    recs = [json.loads(line) for line in text.splitlines()]
    assert len(recs) == len({(r["concept"], r["source_id"]) for r in recs}) == 11
    assert text == "".join(json.dumps(r, sort_keys=True) + "\n" for r in recs)
    # a second run with one more concept appends its pairs, still without a rewrite
    run(tmp_path, names=("hue-120", "sepia", "sketch", "hue-60"))
    assert rewrites == [] and len((tmp_path / distill_mod.MANIFEST).read_text().splitlines()) == 14


def test_a_redone_pair_still_compacts_the_manifest(tmp_path, monkeypatch):
    run(tmp_path)
    rewrites = _manifest_rewrites(monkeypatch)
    (tmp_path / "targets" / "sepia" / "coffee-00.png").unlink()
    run(tmp_path)
    assert len(rewrites) == 1
    assert len((tmp_path / distill_mod.MANIFEST).read_text().splitlines()) == 11


def test_greyscale_is_tested_only_where_the_edit_could_leave_a_grey_image(tmp_path, monkeypatch):
    seen = []
    real = distill_mod.is_greyscale
    monkeypatch.setattr(distill_mod, "is_greyscale", lambda img: seen.append(img) or real(img))
    summary, _ = run(tmp_path / "a", names=("sketch",))   # affects() says yes without looking
    assert seen == [] and summary["skipped_greyscale"] == 0
    summary, teacher = run(tmp_path / "b", teacher=Counting(with_affects=False), names=("sepia", "hue-60"))
    assert len(seen) == len(sources())   # once per source, for the colour concept only
    assert summary["skipped_greyscale"] == 1 and teacher.images == 7
