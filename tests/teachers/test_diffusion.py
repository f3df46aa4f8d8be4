"""The diffusion teacher on a tiny random-weight pipeline saved to a folder (no network), sharded
and resumable distillation, per-concept settings, concept files and the offline error."""
import itertools
import json
import socket
import urllib.request
from functools import lru_cache

import numpy as np
import pytest
from PIL import Image

from e2gan.data.cost import COST_FILE
from e2gan.data.distill import distill
from e2gan.data.manifest import read_manifest, shard_file, verify_manifest
from e2gan.data.shards import merge_shards, parse_shard, shard_of
from e2gan.errors import InputError
from e2gan.io import sha256_file
from e2gan.data.sources import builtin_sources
from e2gan.data.concepts import Concept, load_concepts, select_concepts
from e2gan.teachers.loading import load_teacher
from e2gan.teachers.procedural import ProceduralTeacher
from tests.tiny_pipelines import RESOLUTION, ip2p_dir, sd_dir

STEPS = 2


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from threads, and on a busy machine two spinning threads are 2x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@lru_cache(maxsize=None)
def teacher(extra: str = ""):
    return load_teacher(f"diffusers:{ip2p_dir()}?steps={STEPS}{extra}")


@lru_cache(maxsize=None)
def _builtin(resolution):
    return builtin_sources(resolution, crops_per_photo=1)


def sources(n=3, resolution=24):
    return _builtin(resolution)[:n]


def arrays(images):
    return [np.asarray(im, dtype=np.int16) for im in images]


CONCEPTS = [Concept("sunglasses", "put on sunglasses", "base", "structure"),
            Concept("watercolor", "turn it into a watercolor painting", "new", "global")]


class Counting:
    """Wraps a teacher; counts images; optionally dies (like a kill) on call number ``die_on``."""

    def __init__(self, inner, die_on=None):
        self.inner, self.name, self.die_on = inner, inner.name, die_on
        self.calls = self.images = 0
        self.seen = []

    def describe(self):
        return self.inner.describe()

    def affects(self, image, instruction):
        return self.inner.affects(image, instruction)

    def edit(self, images, instruction, seeds, settings=None):
        self.calls += 1
        if self.calls == self.die_on:
            raise KeyboardInterrupt("killed")
        self.images += len(images)
        self.seen.append((instruction, list(seeds), settings))
        return self.inner.edit(images, instruction, seeds, **({"settings": settings} if settings else {}))


# ---------- the teacher on the tiny pipeline ----------

def test_edits_end_to_end_and_describes_itself():
    t = teacher()
    srcs = sources(3)
    out = t.edit([s.image for s in srcs], "put on sunglasses", [1, 2, 3])
    assert [o.size for o in out] == [(24, 24)] * 3 and all(o.mode == "RGB" for o in out)
    assert t.working_size((24, 24)) == (RESOLUTION, RESOLUTION)  # resized to the model's size and back
    for src, o in zip(srcs, out):
        assert np.abs(arrays([o])[0] - np.asarray(src.image.convert("RGB"), dtype=np.int16)).mean() > 1
    d = t.describe()
    assert d["model"] == "tiny-ip2p" and d["model_source"] == "local folder"
    assert d["files"]["model_index.json"] == sha256_file(ip2p_dir() / "model_index.json")
    assert d["pipeline"] == "StableDiffusionInstructPix2PixPipeline"
    assert d["scheduler"]["class"] == "EulerAncestralDiscreteScheduler"
    assert d["settings"] == {"steps": STEPS, "guidance_scale": 7.5, "image_guidance_scale": 1.5, "negative_prompt": ""}
    assert d["device"] == "cpu" and d["dtype"] == "float32" and d["resolution"] == RESOLUTION
    assert set(d["versions"]) >= {"diffusers", "torch", "transformers", "e2gan"}
    json.dumps(d)  # JSON-able


def test_same_seed_same_output_other_seed_differs():
    t = teacher()
    imgs = [s.image for s in sources(2, RESOLUTION)]
    a = arrays(t.edit(imgs, "put on sunglasses", [5, 6]))
    b = arrays(t.edit(imgs, "put on sunglasses", [5, 6]))
    c = arrays(t.edit(imgs, "put on sunglasses", [5, 7]))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert np.abs(a[0] - c[0]).max() <= 2                # image 0 keeps seed 5: unchanged up to rounding
    assert np.abs(a[1] - c[1]).mean() > 1                # image 1's seed changed: another edit
    # One generator per image: an image's result does not depend on its batch-mates.
    alone = arrays(t.edit(imgs[1:], "put on sunglasses", [6]))
    assert np.abs(alone[0] - a[1]).max() <= 2


def test_batches_split_by_max_batch_and_size():
    t = teacher("&max_batch=1")
    imgs = [s.image for s in sources(2, RESOLUTION)] + [sources(1, 40)[0].image.crop((0, 0, 40, 24))]
    out = t.edit(imgs, "put on sunglasses", [1, 2, 3])
    assert [o.size for o in out] == [(32, 32), (32, 32), (40, 24)]
    assert t.working_size((40, 24)) == (52, 32)  # short side at the resolution, sides multiples of 4
    full = teacher().edit(imgs[:2], "put on sunglasses", [1, 2])
    assert all(np.abs(x - y).max() <= 2 for x, y in zip(arrays(out[:2]), arrays(full)))


def test_per_concept_settings_and_scheduler():
    t = teacher()
    img = [sources(1, RESOLUTION)[0].image]
    base = arrays(t.edit(img, "put on sunglasses", [3]))[0]
    same = arrays(t.edit(img, "put on sunglasses", [3], settings={}))[0]
    more = arrays(t.edit(img, "put on sunglasses", [3], settings={"steps": 3}))[0]
    ddim = arrays(t.edit(img, "put on sunglasses", [3], settings={"scheduler": "DDIMScheduler"}))[0]
    igs = arrays(t.edit(img, "put on sunglasses", [3], settings={"image_guidance_scale": 1.0}))[0]
    assert np.array_equal(base, same)
    assert all(np.abs(base - x).mean() > 0.5 for x in (more, ddim, igs))
    assert np.array_equal(base, arrays(t.edit(img, "put on sunglasses", [3]))[0])  # default scheduler restored
    with pytest.raises(InputError, match="strength"):
        t.edit(img, "x", [1], settings={"strength": 0.5})  # not an InstructPix2Pix argument
    with pytest.raises(InputError, match="compatible"):
        t.edit(img, "x", [1], settings={"scheduler": "DDPMWuerstchenScheduler"})
    with pytest.raises(InputError, match="SchedulerMixin"):
        t.edit(img, "x", [1], settings={"scheduler": "NoSuchScheduler"})
    with pytest.raises(InputError, match="one seed per image"):
        t.edit(img, "x", [1, 2])


def test_img2img_pipeline_by_class_name():
    t = load_teacher(f"diffusers:{sd_dir()}?pipeline=StableDiffusionImg2ImgPipeline&steps=4&strength=0.5")
    d = t.describe()
    assert d["pipeline"] == "StableDiffusionImg2ImgPipeline" and d["settings"]["strength"] == 0.5
    assert "image_guidance_scale" not in d["settings"]
    imgs = [s.image for s in sources(2)]
    a = arrays(t.edit(imgs, "a watercolor painting", [1, 2]))
    assert [x.shape for x in a] == [(24, 24, 3)] * 2
    assert np.array_equal(a[0], arrays(t.edit(imgs, "a watercolor painting", [1, 2]))[0])  # seeded
    assert np.abs(a[1] - arrays(t.edit(imgs, "a watercolor painting", [1, 3]))[1]).mean() > 0.5
    with pytest.raises(InputError, match="image_guidance_scale"):
        load_teacher(f"diffusers:{sd_dir()}?pipeline=StableDiffusionImg2ImgPipeline&image_guidance_scale=1.2")
    with pytest.raises(InputError, match="DiffusionPipeline class name"):
        load_teacher(f"diffusers:{sd_dir()}?pipeline=NoSuchPipeline")
    with pytest.raises(InputError, match="takes prompt and image"):
        load_teacher(f"diffusers:{sd_dir()}?pipeline=StableDiffusionPipeline")


def test_device_and_dtype_choices(monkeypatch):
    import torch

    assert teacher().describe()["dtype"] == "float32"  # auto on the CPU
    with pytest.raises(InputError, match="float16 is for CUDA"):
        load_teacher(f"diffusers:{ip2p_dir()}?dtype=float16")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="no CUDA here"):
        load_teacher(f"diffusers:{ip2p_dir()}?device=cuda")
    with pytest.raises(InputError, match="options StableDiffusionInstructPix2PixPipeline takes"):
        load_teacher("diffusers:never/loaded?strength=0.5")  # refused before looking for weights


# ---------- offline ----------

@pytest.fixture
def no_network(monkeypatch):
    """Every way out to the network records the attempt and fails."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[:2])
        raise OSError("network access attempted in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return attempts


def test_unknown_model_offline_is_one_line_error_without_network(no_network, tmp_path):
    with pytest.raises(InputError) as e:
        load_teacher("diffusers:nobody-e2gan/no-such-model?steps=2")
    msg = str(e.value)
    assert "nobody-e2gan/no-such-model" in msg and "--local-dir" in msg and "HF_HUB_OFFLINE" in msg
    assert "\n" not in msg and no_network == []
    with pytest.raises(InputError, match="existing folder"):
        load_teacher(f"diffusers:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="model_index.json"):
        load_teacher(f"diffusers:{tmp_path / 'empty'}")
    assert no_network == []


def test_cached_hub_id_loads_offline_from_the_snapshot(no_network, tmp_path, monkeypatch):
    """A hub id already in the local cache loads offline, with its commit as the revision."""
    import shutil

    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--tiny-org--tiny-ip2p"
    shutil.copytree(ip2p_dir(), repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    t = load_teacher(f"diffusers:tiny-org/tiny-ip2p?steps={STEPS}")
    d = t.describe()
    assert d["model"] == "tiny-org/tiny-ip2p" and d["model_source"] == "hub cache" and d["revision"] == commit
    assert d["files"] == teacher().describe()["files"]
    assert [o.size for o in t.edit([sources(1)[0].image], "put on sunglasses", [1])] == [(24, 24)]
    assert no_network == []


def test_incomplete_folder_is_an_input_error(tmp_path):
    import shutil

    folder = tmp_path / "broken"
    shutil.copytree(ip2p_dir(), folder)
    shutil.rmtree(folder / "unet")
    with pytest.raises(InputError, match="complete pipeline folder") as e:
        load_teacher(f"diffusers:{folder}")
    assert "\n" not in str(e.value)


# ---------- distillation: manifest, shards, resume, cost ----------

def test_distill_records_teacher_and_settings(tmp_path):
    concepts = [CONCEPTS[0], Concept("sunglasses-strong", "put on sunglasses", "base", "structure",
                                     teacher_settings=(("guidance_scale", 12.0),))]
    counting = Counting(teacher())
    s = distill(sources(2), concepts, counting, tmp_path, progress=False)
    assert s["written"] == 4 and s["skipped_greyscale"] == 0
    assert json.loads((tmp_path / "teacher.json").read_text()) == json.loads(json.dumps(teacher().describe()))
    recs = {(r["concept"], r["source_id"]): r for r in verify_manifest(tmp_path)}
    assert all("teacher_settings" not in r for (c, _), r in recs.items() if c == "sunglasses")
    assert all(r["teacher_settings"] == {"guidance_scale": 12.0} for (c, _), r in recs.items() if c != "sunglasses")
    assert counting.seen[1][2] == {"guidance_scale": 12.0}
    a = {sid: r["target_sha256"] for (c, sid), r in recs.items() if c == "sunglasses"}
    # Changing a concept's settings redoes that concept only.
    changed = [CONCEPTS[0], Concept("sunglasses-strong", "put on sunglasses", "base", "structure",
                                    teacher_settings=(("guidance_scale", 3.0),))]
    again = Counting(teacher())
    s2 = distill(sources(2), changed, again, tmp_path, progress=False)
    assert again.images == 2 and s2["skipped_existing"] == 2
    assert a == {r["source_id"]: r["target_sha256"] for r in read_manifest(tmp_path) if r["concept"] == "sunglasses"}


def test_settings_refused_by_a_teacher_without_them(tmp_path):
    c = Concept("sepia", "make it look like an old sepia photograph", "base", "colour",
                teacher_settings=(("steps", 3),))
    with pytest.raises(InputError, match="per-concept settings"):
        distill(sources(1), [c], ProceduralTeacher(), tmp_path, progress=False)


def _pairs(folder, name):
    path = folder / name
    return {tuple(json.loads(x)[k] for k in ("concept", "source_id")) for x in path.read_text().splitlines()}


@pytest.mark.parametrize("n", [2, 3, 5])
def test_shards_partition_the_work_exactly(tmp_path, n):
    """Procedural teacher (fast) over many pairs: union = all, pairwise disjoint, merge = one manifest."""
    srcs = builtin_sources(16, crops_per_photo=2)
    concepts = select_concepts(load_concepts(), ["pixelate", "emboss", "sketch", "vignette"])
    everything = {(c.name, s.id) for c in concepts for s in srcs}
    parts, edited = [], 0
    for i in range(n):
        t = Counting(ProceduralTeacher())
        summary = distill(srcs, concepts, t, tmp_path, shard=(i, n), progress=False)
        parts.append(_pairs(tmp_path, shard_file("manifest", (i, n))))
        assert summary["pairs"] == len(parts[-1]) == t.images and summary["shard"] == f"{i}/{n}"
        edited += t.images
    assert set().union(*parts) == everything and edited == len(everything)
    assert all(not (a & b) for a, b in itertools.combinations(parts, 2))
    assert all(parts), "every shard got work"
    with pytest.raises(InputError, match="only shard manifests"):
        read_manifest(tmp_path)
    # A run without a shard merges: no edits, one manifest, shard files gone, costs added up.
    t = Counting(ProceduralTeacher())
    summary = distill(srcs, concepts, t, tmp_path, progress=False)
    assert t.images == 0 and summary["skipped_existing"] == len(everything) and summary["shards_merged"] == n
    assert {(r["concept"], r["source_id"]) for r in verify_manifest(tmp_path)} == everything
    assert sorted(p.name for p in tmp_path.iterdir() if "shard" in p.name) == []
    cost = json.loads((tmp_path / COST_FILE).read_text())
    assert cost["total"]["images"] == len(everything) and len(cost["runs"]) == n
    assert {r["shard"] for r in cost["runs"]} == {f"{i}/{n}" for i in range(n)}
    assert sum(c["images"] for c in cost["concepts"].values()) == len(everything)


def test_shard_assignment_is_stable_and_parsed():
    assert parse_shard("2/4") == (2, 4) and parse_shard(" 0 / 1 ") == (0, 1)
    for bad in ("4/4", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(InputError, match="0 <= i < n"):
            parse_shard(bad)
    with pytest.raises(InputError, match="0 <= i < n"):
        distill(sources(1), CONCEPTS, ProceduralTeacher(), "unused", shard=(3, 2))
    # A pair's shard depends on the pair only, not on what else is in the run.
    assert shard_of("sunglasses", "astronaut-00", 4) == shard_of("sunglasses", "astronaut-00", 4)
    counts = np.bincount([shard_of(c, f"img-{k}", 4) for c in "abcdefgh" for k in range(250)], minlength=4)
    assert counts.min() > 0.8 * 500  # 2000 pairs over 4 shards: close to even


def test_sharded_diffusion_distill_resume_after_kill_and_merge(tmp_path):
    """Two shards of the diffusion teacher into one folder; shard 0 is killed mid-way and resumed."""
    srcs = sources(3)
    everything = {(c.name, s.id) for c in CONCEPTS for s in srcs}
    killed = Counting(teacher(), die_on=2)
    with pytest.raises(KeyboardInterrupt):
        distill(srcs, CONCEPTS, killed, tmp_path, shard=(0, 2), batch_size=1, progress=False)
    done_before = _pairs(tmp_path, shard_file("manifest", (0, 2)))
    assert len(done_before) == 1  # the first batch survived the kill
    resumed = Counting(teacher())
    s0 = distill(srcs, CONCEPTS, resumed, tmp_path, shard=(0, 2), batch_size=1, progress=False)
    mine = {p for p in everything if shard_of(p[0], p[1], 2) == 0}
    assert resumed.images == len(mine) - 1 and s0["skipped_existing"] == 1  # nothing complete redone
    again = Counting(teacher())
    distill(srcs, CONCEPTS, again, tmp_path, shard=(0, 2), progress=False)
    assert again.images == 0
    s1 = distill(srcs, CONCEPTS, Counting(teacher()), tmp_path, shard=(1, 2), progress=False)
    assert s0["pairs"] + s1["pairs"] == len(everything)
    merged = merge_shards(tmp_path)
    assert merged == {"pairs": len(everything), "shards_merged": 2}
    recs = verify_manifest(tmp_path)
    assert {(r["concept"], r["source_id"]) for r in recs} == everything
    cost = json.loads((tmp_path / COST_FILE).read_text())
    assert cost["total"]["images"] == len(everything) and cost["total"]["device_seconds"] > 0
    assert set(cost["concepts"]) == {c.name for c in CONCEPTS}
    assert {r["device"] for r in cost["runs"]} == {"cpu"}
    # Same seeds, same folder contents: a fresh unsharded run reproduces every target exactly.
    fresh = tmp_path / "fresh"
    summary = distill(srcs, CONCEPTS, teacher(), fresh, progress=False)
    assert summary["per_concept"].keys() == {c.name for c in CONCEPTS}
    assert all(v["images"] == 3 and v["teacher_seconds"] > 0 for v in summary["per_concept"].values())
    by_pair = {(r["concept"], r["source_id"]): r["target_sha256"] for r in read_manifest(fresh)}
    diffs = [np.abs(np.asarray(Image.open(tmp_path / r["target"]), dtype=np.int16)
                    - np.asarray(Image.open(fresh / r["target"]), dtype=np.int16)).max() for r in recs]
    assert max(diffs) <= 2 and len(by_pair) == len(everything)  # batch of 1 vs 3: rounding only


# ---------- concept files ----------

@pytest.mark.parametrize("name, n, new", [
    ("ffhq", 29, {"white-walker", "blond", "sunglasses", "van-gogh"}),
    ("scenery", 8, {"forest-dusk", "van-gogh", "blossoms"}),
])
def test_packaged_concept_files(name, n, new):
    concepts = load_concepts(name)
    assert len(concepts) == n and len({c.name for c in concepts}) == n
    assert {c.name for c in concepts if c.role == "new"} == new
    assert all(c.note.startswith("paper label: ") for c in concepts)
    assert len({c.instruction for c in concepts}) == n


def test_concept_teacher_settings_parse_and_validate(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[concepts.a]\ninstruction = "put on a hat"\nrole = "base"\nkind = "structure"\n'
                    '[concepts.a.teacher]\nsteps = 30\nguidance_scale = 7\nnegative_prompt = "blurry"\n')
    [c] = load_concepts(path)
    assert c.settings == {"steps": 30, "guidance_scale": 7.0, "negative_prompt": "blurry"}
    for body, match in [("steps = 0", "positive integer"), ("strength = 1.5", r"\(0, 1\]"),
                        ("seed = 3", "one of the keys steps"), ('scheduler = "a b"', "scheduler class name")]:
        path.write_text('[concepts.a]\ninstruction = "x"\nrole = "base"\nkind = "tone"\n'
                        f"[concepts.a.teacher]\n{body}\n")
        with pytest.raises(InputError, match=match):
            load_concepts(path)


def test_wrapper_overhead_report():
    from e2gan.teachers.diffusion_overhead import wrapper_overhead

    r = wrapper_overhead(ip2p_dir(), n_images=2, steps=STEPS, repeats=2, warmup=0)
    assert r["outputs_identical"] and r["working_size"] == [RESOLUTION, RESOLUTION]
    assert r["raw_s"]["median"] > 0 and r["wrapper_s"]["median"] > 0 and len(r["raw_s"]["all"]) == 2
    assert r["overhead_median"] == pytest.approx(r["wrapper_s"]["median"] / r["raw_s"]["median"] - 1)


SHARD_SCRIPT = """
import sys
from e2gan.data.distill import distill
from e2gan.data.sources import builtin_sources
from e2gan.data.concepts import load_concepts, select_concepts
from e2gan.teachers.procedural import ProceduralTeacher
concepts = select_concepts(load_concepts(), ["pixelate", "emboss", "sketch", "vignette", "sepia"])
distill(builtin_sources(24, crops_per_photo=2), concepts, ProceduralTeacher(), sys.argv[1],
        shard=(int(sys.argv[2]), int(sys.argv[3])), batch_size=2, progress=False)
"""


@pytest.mark.slow
def test_concurrent_shard_processes_share_one_folder(tmp_path):
    """n processes at once into one folder (a shared disk): no lost or doubled pairs after the merge."""
    import os
    import subprocess
    import sys

    n = 3
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    procs = [subprocess.Popen([sys.executable, "-c", SHARD_SCRIPT, str(tmp_path), str(i), str(n)], env=env,
                              stderr=subprocess.PIPE, text=True) for i in range(n)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    srcs = builtin_sources(24, crops_per_photo=2)
    concepts = select_concepts(load_concepts(), ["pixelate", "emboss", "sketch", "vignette", "sepia"])
    t = Counting(ProceduralTeacher())
    summary = distill(srcs, concepts, t, tmp_path, progress=False)
    assert t.images == 0 and summary["shards_merged"] == n
    recs = verify_manifest(tmp_path)
    done = summary["pairs"] - summary["skipped_greyscale"]
    assert len(recs) == len({(r["concept"], r["source_id"]) for r in recs}) == done
    cost = json.loads((tmp_path / COST_FILE).read_text())
    assert cost["total"]["images"] == len(recs)


def test_shards_on_other_devices_and_paths_share_one_data_folder(tmp_path):
    """data_key: the real pipeline folder copied to two machines' paths, run on cuda:0 and cuda:1."""
    import shutil

    from e2gan.config import apply_overrides
    from e2gan.presets import get_preset
    from e2gan.teachers.data_key import data_dir

    a, b = tmp_path / "m1" / "ip2p", tmp_path / "m2" / "ip2p"
    shutil.copytree(ip2p_dir(), a)
    shutil.copytree(ip2p_dir(), b)

    def folder(teacher):
        return data_dir(apply_overrides(get_preset("tiny"), {"data": {"teacher": teacher}}, "test"), tmp_path)

    same = {folder(f"diffusers:{a}?device=cuda:0&steps={STEPS}"), folder(f"diffusers:{b}?steps={STEPS}&device=cuda:1")}
    assert len(same) == 1
    sd = tmp_path / "m3" / "ip2p"
    shutil.copytree(sd_dir(), sd)  # another model under the same folder name
    assert folder(f"diffusers:{sd}?steps={STEPS}") not in same
    assert folder(f"diffusers:{a}?steps={STEPS + 1}") not in same
