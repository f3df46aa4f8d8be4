import json

import pytest
import torch

from e2gan.data.dataset import PairedDataset, StepBatchSampler, to_model_range, to_uint8
from e2gan.errors import InputError


def test_step_sampler_is_a_function_of_epoch():
    s = StepBatchSampler(10, 4, steps=5, seed=3)
    s.set_epoch(2)
    first = list(s)
    s.set_epoch(0)
    list(s)
    s.set_epoch(2)
    assert list(s) == first
    assert len(first) == 5 and all(len(b) == 4 for b in first)


def test_step_sampler_ranks_see_disjoint_slices():
    r0 = list(StepBatchSampler(16, 2, steps=4, seed=1, rank=0, world_size=2))
    r1 = list(StepBatchSampler(16, 2, steps=4, seed=1, rank=1, world_size=2))
    for a, b in zip(r0, r1):
        assert not set(a) & set(b)
    # an epoch covers the whole set before repeating anything
    assert sorted(i for b in r0 + r1 for i in b) == list(range(16))


def test_uint8_round_trip():
    img = torch.randint(0, 256, (5, 6, 3), dtype=torch.uint8)
    assert torch.equal(to_uint8(to_model_range(img.numpy())).permute(1, 2, 0), img)


def test_paired_dataset_items(micro_data):
    ds = PairedDataset(micro_data, ["hue-120", "pixelate"], "train")
    assert ds.concepts_present() == ["hue-120", "pixelate"]
    item = ds[0]
    assert item["source"].shape == item["target"].shape == (3, 32, 32)
    assert -1.0 <= float(item["source"].min()) and float(item["target"].max()) <= 1.0
    ids = {int(ds[i]["concept_id"]) for i in range(len(ds))}
    assert ids == {0, 1}


def test_fixed_concept_index_is_respected(micro_data):
    ds = PairedDataset(micro_data, ["pixelate"], "test", concept_index={"hue-120": 0, "pixelate": 1})
    assert {int(ds[i]["concept_id"]) for i in range(len(ds))} == {1}


def test_unknown_concept_is_named(micro_data):
    with pytest.raises(InputError, match=r"\['nope'\] not in the data"):
        PairedDataset(micro_data, ["nope"], "train")


def test_tampered_target_is_rejected(micro_data, tmp_path):
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(micro_data, copy)
    record = json.loads((copy / "manifest.jsonl").read_text().splitlines()[0])
    (copy / record["target"]).write_bytes((copy / record["source"]).read_bytes())
    with pytest.raises(InputError, match=record["target"].split("/")[-1]):
        PairedDataset(copy, [record["concept"]], record["split"])


def test_distilled_splits_are_disjoint_by_photograph_and_sized_by_the_config(micro_data):
    from e2gan.data.manifest import verify_manifest
    from e2gan.data.sources import photos_by_split
    from tests.conftest import micro_config

    cfg = micro_config()
    records = verify_manifest(micro_data, check_hashes=False)
    photo_split = {}
    for r in records:
        photo_split.setdefault(r["source_id"].rsplit("-", 1)[0], set()).add(r["split"])
    assert all(len(s) == 1 for s in photo_split.values()), photo_split
    assert {p for p, s in photo_split.items() if s == {"test"}} == set(photos_by_split()["test"])
    for concept in ("hue-60", "hue-120", "pixelate"):  # colour edits get the same N: eval photos are colour
        assert len(PairedDataset(micro_data, [concept], "test", check_hashes=False)) == cfg.eval.n_test
        assert len(PairedDataset(micro_data, [concept], "val", check_hashes=False)) == cfg.eval.n_val


def test_decoded_images_are_kept_per_process_until_the_file_changes(tmp_path, monkeypatch):
    """A study's cells decode the same test images: the second dataset over them decodes none,
    and a file rewritten in place (new stat) is decoded again, not served stale."""
    import numpy as np
    from PIL import Image

    from e2gan.data import dataset

    path = tmp_path / "a.png"
    Image.fromarray(np.full((4, 4, 3), 10, np.uint8)).save(path)
    monkeypatch.setattr(dataset, "_DECODED", type(dataset._DECODED)())  # this test's memo only
    monkeypatch.setattr(dataset, "_decoded_bytes", 0)
    decoded = []
    real = dataset.load_rgb
    monkeypatch.setattr(dataset, "load_rgb", lambda p: decoded.append(p) or real(p))
    first = dataset.decoded_rgb(path)
    assert dataset.decoded_rgb(path) is first and decoded == [path]
    Image.fromarray(np.full((4, 4, 3), 200, np.uint8)).save(path)
    import os
    os.utime(path, ns=(10**9, 10**9))  # a stat that surely differs, even within one timestamp tick
    assert int(dataset.decoded_rgb(path)[0, 0, 0]) == 200 and len(decoded) == 2
    monkeypatch.setattr(dataset, "DECODED_MEMO_BYTES", 0)  # past the bound: the least recent are dropped
    Image.fromarray(np.full((4, 4, 3), 7, np.uint8)).save(tmp_path / "b.png")
    dataset.decoded_rgb(tmp_path / "b.png")
    assert [k[0] for k in dataset._DECODED] == [str(tmp_path / "b.png")]


def test_a_second_dataset_over_the_same_folder_decodes_nothing(micro_data, monkeypatch):
    from e2gan.data import dataset

    a = PairedDataset(micro_data, ["hue-60"], "test")
    items_a = [a[i] for i in range(len(a))]
    monkeypatch.setattr(dataset, "load_rgb", lambda p: pytest.fail(f"decoded {p} again"))
    b = PairedDataset(micro_data, ["hue-60"], "test")
    for x, y in zip(items_a, (b[i] for i in range(len(b)))):
        assert torch.equal(x["source"], y["source"]) and torch.equal(x["target"], y["target"])
