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
