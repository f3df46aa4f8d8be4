"""PairedDataModule: one manifest check serves both splits, with the same sets as one check per set."""
import json
import shutil

import pytest

import e2gan.data.manifest
from e2gan.data.dataset import PairedDataset
from e2gan.errors import InputError
from lightning_modules.data_module import PairedDataModule

CONCEPTS = ["hue-120", "pixelate"]
INDEX = {c: i for i, c in enumerate(CONCEPTS)}


def _module(root, **kw):
    return PairedDataModule(root, CONCEPTS, INDEX, batch_size=4, steps_per_epoch=2, **kw)


def test_setup_checks_the_manifest_once(micro_data, monkeypatch):
    calls = []
    real = e2gan.data.manifest.verify_manifest
    monkeypatch.setattr(e2gan.data.manifest, "verify_manifest", lambda *a, **k: calls.append(k) or real(*a, **k))
    dm = _module(micro_data, val_limit=3, train_indices=[2, 0])
    dm.setup("fit")
    assert calls == [{}]  # one call, with hashes (the default)
    val = PairedDataset(micro_data, CONCEPTS, "val", INDEX)
    step = max(1, len(val) // 3)
    assert dm.val_set.pairs == val.pairs[::step][:3]
    assert dm.train_set.pairs == [PairedDataset(micro_data, CONCEPTS, "train", INDEX).pairs[i] for i in (2, 0)]


def test_a_tampered_val_file_is_refused_at_setup(micro_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(micro_data, data)
    lines = (data / "manifest.jsonl").read_text().splitlines()
    rec = next(r for r in map(json.loads, lines) if r["split"] == "val" and r["concept"] in CONCEPTS)
    (data / rec["target"]).write_bytes((data / rec["source"]).read_bytes())
    with pytest.raises(InputError, match=rec["target"].split("/")[-1]):
        _module(data).setup("fit")
