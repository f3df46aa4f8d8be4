import json
from functools import lru_cache

import numpy as np
import pytest
from PIL import Image

from e2gan.data.concepts import Concept, load_concepts, select_concepts
from e2gan.data.distill import distill, pair_seed
from e2gan.data.manifest import MANIFEST, RECORD_KEYS, read_manifest, teacher_hash, verify_manifest
from e2gan.data.sources import SourceImage, builtin_sources
from e2gan.errors import InputError
from e2gan.io import sha256_file
from e2gan.teachers.procedural import ProceduralTeacher


@lru_cache(maxsize=None)
def _builtin(resolution):
    return builtin_sources(resolution, crops_per_photo=1)


def sources(resolution=24):
    """Three colour crops and one greyscale one (camera)."""
    by_id = {s.id: s for s in _builtin(resolution)}
    return [by_id[i] for i in ("astronaut-00", "coffee-00", "chelsea-00", "camera-00")]


def concepts(*names):
    return select_concepts(load_concepts(), list(names))


class Counting:
    """The procedural teacher, counting the images it edits."""

    def __init__(self, with_affects=True):
        self.inner = ProceduralTeacher()
        self.name = self.inner.name
        self.images = 0
        self.calls = 0
        if with_affects:
            self.affects = self.inner.affects

    def describe(self):
        return self.inner.describe()

    def edit(self, images, instruction, seeds):
        self.calls += 1
        self.images += len(images)
        return self.inner.edit(images, instruction, seeds)


def run(out, teacher=None, names=("hue-120", "sepia", "sketch"), **kw):
    teacher = teacher or Counting()
    kw.setdefault("progress", False)
    return distill(sources(), concepts(*names), teacher, out, **kw), teacher


def test_writes_layout_and_manifest(tmp_path):
    summary, teacher = run(tmp_path)
    # 4 sources × 3 concepts, minus hue-120 on the greyscale camera crop
    assert summary["pairs"] == 12 and summary["written"] == 11 and summary["skipped_greyscale"] == 1
    assert summary["skipped_existing"] == 0 and summary["seconds"] >= summary["teacher_seconds"] > 0
    assert teacher.images == 11
    recs = verify_manifest(tmp_path)
    assert len(recs) == 11 and all(set(RECORD_KEYS) <= set(r) for r in recs)
    t_hash = teacher_hash(json.loads((tmp_path / "teacher.json").read_text()))
    by_id = {s.id: s for s in sources()}
    for r in recs:
        assert r["target"] == f"targets/{r['concept']}/{r['source_id']}.png"
        assert r["source"] == f"sources/{r['source_id']}.png"
        assert sha256_file(tmp_path / r["target"]) == r["target_sha256"]
        assert sha256_file(tmp_path / r["source"]) == r["source_sha256"]
        assert r["split"] == by_id[r["source_id"]].split and r["teacher"] == t_hash
        assert r["seed"] == pair_seed(0, r["concept"], r["source_id"]) and r["size"] == [24, 24]
        target = np.asarray(Image.open(tmp_path / r["target"]))
        assert target.shape == (24, 24, 3)
    assert ("hue-120", "camera-00") not in {(r["concept"], r["source_id"]) for r in recs}
    assert len({r["seed"] for r in recs}) == len(recs)


def test_resume_does_no_edits_and_keeps_manifest(tmp_path):
    run(tmp_path)
    before = (tmp_path / MANIFEST).read_bytes()
    summary, teacher = run(tmp_path)
    assert teacher.calls == 0 and teacher.images == 0
    assert summary["written"] == 0 and summary["skipped_existing"] == 11
    assert (tmp_path / MANIFEST).read_bytes() == before


def test_deleted_target_is_redone_exactly_once(tmp_path):
    run(tmp_path)
    (tmp_path / "targets" / "sepia" / "coffee-00.png").unlink()
    with pytest.raises(InputError, match="coffee-00.png"):
        verify_manifest(tmp_path)
    summary, teacher = run(tmp_path)
    assert teacher.images == 1 and summary["written"] == 1 and summary["skipped_existing"] == 10
    assert len(verify_manifest(tmp_path)) == 11
    assert len((tmp_path / MANIFEST).read_text().splitlines()) == 11  # compacted: one line per pair


def test_changed_target_is_redone(tmp_path):
    run(tmp_path)
    Image.new("RGB", (24, 24)).save(tmp_path / "targets" / "sketch" / "astronaut-00.png")
    with pytest.raises(InputError, match="sha256"):
        verify_manifest(tmp_path)
    assert len(verify_manifest(tmp_path, check_hashes=False)) == 11
    _, teacher = run(tmp_path)
    assert teacher.images == 1
    verify_manifest(tmp_path)


def test_torn_last_line_is_ignored_then_redone(tmp_path):
    run(tmp_path)
    path = tmp_path / MANIFEST
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]) + lines[-1][:30])  # killed mid-append
    assert len(read_manifest(tmp_path)) == 10
    _, teacher = run(tmp_path)
    assert teacher.images == 1
    assert len(verify_manifest(tmp_path)) == 11
    assert path.read_bytes().endswith(b"\n")


def test_corrupt_middle_line_names_the_line(tmp_path):
    run(tmp_path)
    path = tmp_path / MANIFEST
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + "{oops\n" + "".join(lines[1:]))
    with pytest.raises(InputError, match=r"manifest.jsonl:2"):
        read_manifest(tmp_path)


def test_missing_manifest_and_path_escape(tmp_path):
    with pytest.raises(InputError, match="manifest.jsonl"):
        read_manifest(tmp_path)
    run(tmp_path)
    path = tmp_path / MANIFEST
    recs = [json.loads(x) for x in path.read_text().splitlines()]
    recs[0]["target"] = "../outside.png"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    with pytest.raises(InputError, match="outside.png"):
        verify_manifest(tmp_path)


def test_missing_source_named(tmp_path):
    run(tmp_path)
    (tmp_path / "sources" / "chelsea-00.png").unlink()
    with pytest.raises(InputError, match="chelsea-00.png"):
        verify_manifest(tmp_path)


def test_greyscale_skip_uses_teacher_affects(tmp_path):
    # hue-120 leaves a grey image as it is; sepia tints it, so only the hue pair is skipped.
    summary, _ = run(tmp_path, names=("hue-120", "hue-60", "sepia"))
    assert summary["skipped_greyscale"] == 2
    pairs = {(r["concept"], r["source_id"]) for r in read_manifest(tmp_path)}
    assert ("sepia", "camera-00") in pairs and ("hue-60", "camera-00") not in pairs


def test_greyscale_skip_falls_back_to_colour_kind(tmp_path):
    # A teacher without affects(): kind 'colour' concepts skip grey sources, others do not.
    summary, teacher = run(tmp_path, teacher=Counting(with_affects=False), names=("sepia", "hue-60"))
    assert summary["skipped_greyscale"] == 1  # sepia is kind 'colour'; hue-60 is kind 'variant'
    assert teacher.images == 7


def test_same_inputs_same_data_and_seed_matters(tmp_path):
    run(tmp_path / "a")
    run(tmp_path / "b")
    run(tmp_path / "c", seed=1)
    a, b, c = (read_manifest(tmp_path / x) for x in "abc")
    assert a == b
    sketch = {r["source_id"]: r["target_sha256"] for r in a if r["concept"] == "sketch"}
    sketch_c = {r["source_id"]: r["target_sha256"] for r in c if r["concept"] == "sketch"}
    assert all(sketch[k] != sketch_c[k] for k in sketch)  # sketch uses the seed (paper grain)
    hue = {r["source_id"]: r["target_sha256"] for r in a if r["concept"] == "hue-120"}
    assert hue == {r["source_id"]: r["target_sha256"] for r in c if r["concept"] == "hue-120"}


def test_batches_do_not_change_results(tmp_path):
    _, t1 = run(tmp_path / "one", batch_size=1)
    _, t3 = run(tmp_path / "three", batch_size=3)
    assert t1.calls == 11 and t3.calls == 5  # ceil(3/3) + ceil(4/3) + ceil(4/3)
    assert read_manifest(tmp_path / "one") == read_manifest(tmp_path / "three")


@pytest.mark.parametrize("mode", ["auto", "batched", "batched-fsync", "per-file"])
def test_write_modes_give_the_same_files(tmp_path, monkeypatch, mode):
    """Pipelined writes (a background writer), batched ones (one barrier per batch) and per-file fsyncs
    leave byte-identical data."""
    import e2gan.data.writes as writes

    def tree(root):
        return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*"))
                if p.is_file() and p.name != "distill_cost.json"}

    monkeypatch.setattr(writes, "WRITE_MODE", "pipelined")
    run(tmp_path / "pipelined", batch_size=2)
    monkeypatch.setattr(writes, "WRITE_MODE", mode)
    run(tmp_path / mode, batch_size=2)
    assert tree(tmp_path / "pipelined") == tree(tmp_path / mode)
    assert not [p for p in tmp_path.rglob("*.tmp")]
    monkeypatch.setattr(writes, "WRITE_MODE", "sometimes")
    with pytest.raises(ValueError):
        run(tmp_path / "bad")


def test_batched_writes_make_a_batch_durable_before_its_manifest_lines(tmp_path, monkeypatch):
    import e2gan.data.writes as writes

    events = []
    real_many, real_append = writes.atomic_write_many, writes.append_lines
    monkeypatch.setattr(writes, "atomic_write_many",
                        lambda files, **kw: (events.append(("images", len(files))), real_many(files, **kw))[1])
    monkeypatch.setattr(writes, "append_lines",
                        lambda path, recs: (events.append(("lines", len(recs))), real_append(path, recs))[1])
    monkeypatch.setattr(writes, "atomic_write_bytes", lambda *a: pytest.fail("a PNG written on its own"))
    run(tmp_path, batch_size=2)
    assert events[0] == ("images", 4)   # the four sources, one chunk
    batches = events[1:]
    assert [k for k, _ in batches] == ["images", "lines"] * (len(batches) // 2)
    assert all(batches[i][1] == batches[i + 1][1] for i in range(0, len(batches), 2))
    assert sum(n for k, n in batches if k == "lines") == 11


class Interrupting(Counting):
    """Raises KeyboardInterrupt on its ``at``-th call, after ``at - 1`` batches were edited."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def edit(self, images, instruction, seeds):
        if self.calls + 1 == self.at:
            raise KeyboardInterrupt
        return super().edit(images, instruction, seeds)


def test_interrupt_lands_the_batch_being_stored_in_the_background(tmp_path, monkeypatch):
    """The batch handed to the background writer when the teacher is interrupted still reaches disk."""
    import threading

    import e2gan.data.writes as writes

    stored = threading.Event()
    real_append = writes.append_lines

    def slow_append(path, recs):  # the store is still running when the next edit raises
        stored.wait(0.2)
        real_append(path, recs)

    monkeypatch.setattr(writes, "append_lines", slow_append)
    monkeypatch.setattr(writes, "WRITE_MODE", "pipelined")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, teacher=Interrupting(at=3), batch_size=2)
    # hue-120 on the three colour crops: batches of 2 and 1, both edited and both stored
    assert len(read_manifest(tmp_path)) == 3
    assert not [p for p in tmp_path.rglob("*.tmp")]
    summary, teacher = run(tmp_path, batch_size=2)  # resumes after them
    assert summary["skipped_existing"] == 3 and summary["written"] == 8


def test_auto_write_mode_pipelines_only_for_an_accelerator_teacher():
    from e2gan.data.writes import resolve_write_mode

    assert resolve_write_mode("auto", "cpu") == "batched"
    assert resolve_write_mode("auto", "cuda:0 (NVIDIA H200)") == "pipelined"
    assert resolve_write_mode("per-file", "cuda") == "per-file"
    with pytest.raises(ValueError, match="sometimes"):
        resolve_write_mode("sometimes", "cpu")


def test_a_failed_background_store_stops_the_run_with_its_error(tmp_path, monkeypatch):
    import e2gan.data.writes as writes

    def full_disk(files, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writes, "atomic_write_many", full_disk)
    monkeypatch.setattr(writes, "WRITE_MODE", "pipelined")
    monkeypatch.setattr(writes, "write_sources", lambda out, srcs: {s.id: "0" * 64 for s in srcs})
    teacher = Counting()
    with pytest.raises(OSError, match="No space left"):
        run(tmp_path, teacher=teacher, batch_size=2)
    assert teacher.calls <= 2   # at most one more batch edited after the failed store
    assert not (tmp_path / MANIFEST).exists() or not read_manifest(tmp_path)


def test_new_concept_added_later_only_edits_that_concept(tmp_path):
    run(tmp_path)
    summary, teacher = run(tmp_path, names=("hue-120", "sepia", "sketch", "vignette"))
    assert teacher.images == 4 and summary["skipped_existing"] == 11
    assert len(verify_manifest(tmp_path)) == 15


def test_role_change_updates_manifest_without_edits(tmp_path):
    run(tmp_path, names=("sepia",))
    relabelled = [Concept("sepia", c.instruction, "new", c.kind) for c in concepts("sepia")]
    teacher = Counting()
    distill(sources(), relabelled, teacher, tmp_path, progress=False)
    assert teacher.images == 0
    assert {r["role"] for r in read_manifest(tmp_path)} == {"new"}


def test_other_teacher_or_resolution_refused(tmp_path):
    run(tmp_path)

    class Other(Counting):
        def describe(self):
            return {**self.inner.describe(), "revision": -1}

    with pytest.raises(InputError, match="same teacher"):
        run(tmp_path, teacher=Other())
    with pytest.raises(InputError, match="astronaut-00.png"):
        distill(sources(16), concepts("sepia"), Counting(), tmp_path, progress=False)


def test_bad_teacher_output_rejected(tmp_path):
    class Shrinks(Counting):
        def edit(self, images, instruction, seeds):
            return [im.resize((8, 8)) for im in images]

    with pytest.raises(InputError, match=r"input size \(24, 24\)"):
        run(tmp_path, teacher=Shrinks())


def test_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="at least one source"):
        distill([], concepts("sepia"), Counting(), tmp_path)
    with pytest.raises(InputError, match="batch_size"):
        run(tmp_path, batch_size=0)
    img = sources()[0].image
    with pytest.raises(InputError, match="unique source ids"):
        distill([SourceImage("x", "train", img)] * 2, concepts("sepia"), Counting(), tmp_path)
    with pytest.raises(InputError, match="source id '../x'"):
        distill([SourceImage("../x", "train", img)], concepts("sepia"), Counting(), tmp_path)
    with pytest.raises(InputError, match="concept name '../up'"):
        distill(sources(), [Concept("../up", "sepia", "base", "colour")], Counting(), tmp_path)


def test_progress_bar_goes_to_stderr(tmp_path, capsys):
    run(tmp_path / "quiet", progress=False)
    assert capsys.readouterr().err == ""
    run(tmp_path / "loud", progress=True)
    err = capsys.readouterr().err
    assert "distill" in err and "11/11" in err


def test_no_bar_for_data_on_disk_and_a_callable_gets_the_counts(tmp_path, capsys):
    run(tmp_path / "d", progress=False)
    run(tmp_path / "d", progress=True)  # everything on disk: no "0pair" bar
    assert capsys.readouterr().err == ""
    seen = []
    run(tmp_path / "fresh", progress=lambda done, total, unit: seen.append((done, total, unit)))
    assert capsys.readouterr().err == ""  # the caller's display, not a bar
    assert seen[-1] == (11, 11, "pairs") and [d for d, *_ in seen] == sorted(d for d, *_ in seen)
