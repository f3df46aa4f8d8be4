"""The floor of writing distilled pairs: the same bytes distill() writes, and the accounting of its ratio."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmarks.distill_overhead import Recorder, distill_once, write_floor
from e2gan.io import sha256_file
from e2gan.data.sources import builtin_sources
from e2gan.data.concepts import load_concepts, select_concepts
from e2gan.teachers.procedural import ProceduralTeacher


def _ctx(tmp_path: Path):
    return SimpleNamespace(work=tmp_path, cfg=SimpleNamespace(data=SimpleNamespace(seed=0)))


def _inputs():
    by_id = {s.id: s for s in builtin_sources(24, crops_per_photo=1)}
    return ([by_id[i] for i in ("astronaut-00", "coffee-00", "chelsea-00")],
            select_concepts(load_concepts(), ["hue-120", "sepia"]))


def test_floor_writes_what_distill_writes_and_only_that(tmp_path):
    sources, concepts = _inputs()
    ctx = _ctx(tmp_path)
    rec = Recorder(ProceduralTeacher(), sources, concepts)
    assert rec.name == ProceduralTeacher().name   # a teacher in every other respect
    run = distill_once(ctx, rec, sources, concepts, "t", "batched")
    assert [c for c, _ in rec.batches] == ["hue-120", "sepia"]
    assert sum(len(items) for _, items in rec.batches) == run["pairs_written"] == 6
    floor = write_floor(ctx, sources, rec.batches, "pipelined", "t", keep=True)
    out = Path(floor["out"])
    assert floor["mode"] == "batched" and floor["pairs"] == 6   # a background writer's floor is the in-line one
    assert floor["ms_per_pair"] == pytest.approx(1000 * floor["seconds"] / 6)
    assert sum(floor["breakdown_seconds"].values()) == pytest.approx(floor["seconds"])
    # the same PNG bytes distill() writes (its manifest holds their hashes), and a manifest line per pair
    from e2gan.data.distill import distill

    ref = tmp_path / "ref"
    distill(sources, concepts, ProceduralTeacher(), ref, seed=0, progress=False)
    for path in (ref / "targets").rglob("*.png"):
        assert sha256_file(out / path.relative_to(ref)) == sha256_file(path)
    assert sorted(p.name for p in (out / "sources").iterdir()) == sorted(f"{s.id}.png" for s in sources)
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 6
    assert not list(out.rglob("*.tmp*"))


def test_overhead_against_the_floor_is_a_median_of_per_round_ratios(tmp_path, monkeypatch):
    import benchmarks.distill_overhead as do

    sources, concepts = _inputs()
    ctx = _ctx(tmp_path)
    ctx.scale = SimpleNamespace(distill_rounds=3)
    ctx.cfg.data.__dict__.update(sources="builtin", resolution=24, crops_per_photo=1)
    floors = iter([{"ms_per_pair": v, "pairs": 6, "mode": "batched", "breakdown_seconds": {"x": 0.0}}
                   for v in (1.0, 2.0, 4.0)])
    monkeypatch.setattr(do, "write_floor", lambda *a, **k: next(floors))
    monkeypatch.setattr("e2gan.data.sources.load_sources", lambda *a, **k: sources)
    x = do.distill_overhead(ctx, "procedural", concepts, None, "procedural")
    own = [r["overhead_ms_per_pair"] for r in x["modes"][x["write_mode"]]["runs"]]
    ratios = sorted(ms / f for ms, f in zip(own, (1.0, 2.0, 4.0)))
    assert x["over_floor"] == pytest.approx(ratios[1])
    assert x["floor"]["ms_per_pair"] == 2.0
