"""The distilled data folder's key: content, not place (teacher folder, sources folder, concepts file)."""
from e2gan.config import apply_overrides
from e2gan.presets import get_preset
from e2gan.teachers.data_key import data_identity, data_key


def _fake_pipeline(folder, unet_bytes=b"weights-v1", index_extra=None):
    """A diffusers-style folder as fingerprint_folder reads it (no diffusers needed)."""
    import json

    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionInstructPix2PixPipeline",
                                                         "unet": ["diffusers", "UNet2DConditionModel"],
                                                         **(index_extra or {})}))
    (folder / "unet" / "config.json").write_text('{"in_channels": 8}')
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(unet_bytes)
    return folder


def _with(**data):
    return apply_overrides(get_preset("tiny"), {"data": data}, "test")


def test_data_key_ignores_device_and_absolute_model_path(tmp_path):
    a = _fake_pipeline(tmp_path / "a" / "ip2p")
    b = _fake_pipeline(tmp_path / "b" / "ip2p")
    (b / ".cache").mkdir()
    (b / ".cache" / "download.lock").write_text("x")  # what else sits in a folder does not count
    keys = {data_key(_with(teacher=f"diffusers:{a}?device=cuda:0&steps=20")),
            data_key(_with(teacher=f"diffusers:{a}?steps=20&device=cuda:1")),
            data_key(_with(teacher=f"diffusers:{b}?steps=20&max_batch=4")),
            data_key(_with(teacher=f"diffusers:{b}/?steps=20"))}
    assert len(keys) == 1
    ident = data_identity(_with(teacher=f"diffusers:{a}?device=cuda:0&steps=20"))["teacher"]
    assert ident["model"]["folder"] == "ip2p" and ident["options"] == {"steps": 20}
    assert str(tmp_path) not in repr(ident)
    # A hub id keys by its id; the device option is dropped there too.
    assert (data_key(_with(teacher="diffusers:timbrooks/instruct-pix2pix?device=cuda:3"))
            == data_key(_with(teacher="diffusers:timbrooks/instruct-pix2pix")))


def test_data_key_changes_with_model_content_options_or_name(tmp_path):
    a = _fake_pipeline(tmp_path / "a" / "ip2p")
    base = data_key(_with(teacher=f"diffusers:{a}?steps=20"))
    other_weights = _fake_pipeline(tmp_path / "c" / "ip2p", unet_bytes=b"weights-v2")
    other_config = _fake_pipeline(tmp_path / "d" / "ip2p")
    (other_config / "unet" / "config.json").write_text('{"in_channels": 4}')
    renamed = _fake_pipeline(tmp_path / "e" / "sd15")
    assert len({base,
                data_key(_with(teacher=f"diffusers:{other_weights}?steps=20")),
                data_key(_with(teacher=f"diffusers:{other_config}?steps=20")),
                data_key(_with(teacher=f"diffusers:{renamed}?steps=20")),
                data_key(_with(teacher=f"diffusers:{a}?steps=30")),
                data_key(_with(teacher=f"diffusers:{a}?steps=20&dtype=float32")),
                data_key(_with(teacher="diffusers:timbrooks/instruct-pix2pix")),
                data_key(_with(teacher="procedural"))}) == 8


def _images(folder, files):
    for rel, size in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * size)
    return folder


def test_data_key_keys_a_sources_folder_by_its_images_not_its_path(tmp_path):
    files = {"a.png": 10, "sub/b.jpg": 20}
    one = _images(tmp_path / "m1" / "ffhq", files)
    two = _images(tmp_path / "m2" / "faces", {**files, "notes.txt": 5, "sub/c.json": 3})  # non-images don't count
    assert data_key(_with(sources=str(one))) == data_key(_with(sources=str(two)))
    listing = data_identity(_with(sources=str(two)))["sources"]["listing"]
    assert data_identity(_with(sources=str(one)))["sources"] == {"folder_images": 2, "listing": listing}
    bigger = _images(tmp_path / "m3" / "ffhq", {**files, "a.png": 11})
    more = _images(tmp_path / "m4" / "ffhq", {**files, "sub/d.webp": 1})
    moved = _images(tmp_path / "m5" / "ffhq", {"a.png": 10, "other/b.jpg": 20})
    assert len({data_key(_with(sources=str(d))) for d in (one, bigger, more, moved)}) == 4
    assert data_identity(_with(sources="builtin"))["sources"] == "builtin"


CONCEPTS = """[concepts.shades]
instruction = "{instruction}"
role = "base"
kind = "structure"
note = "{note}"
"""


def test_data_key_keys_a_concepts_file_by_its_instructions(tmp_path):
    def write(folder, instruction="put on sunglasses", note=""):
        folder.mkdir(parents=True)
        path = folder / "concepts.toml"
        path.write_text(CONCEPTS.format(instruction=instruction, note=note))
        return str(path)

    same = {data_key(_with(concepts_file=write(tmp_path / "a"))),
            data_key(_with(concepts_file=write(tmp_path / "b", note="a note changes no pair")))}
    assert len(same) == 1
    assert data_key(_with(concepts_file=write(tmp_path / "c", instruction="put on a hat"))) not in same
    assert data_identity(_with(concepts_file="ffhq"))["concepts_file"] == "ffhq"


def test_default_data_keys_are_the_data_section_plus_split_sizes():
    # Defaults map to themselves; the eval split sizes and the built-in split rule are added, so data
    # folders distilled under the earlier (overlapping) built-in split are not reused.
    import hashlib
    import json

    from e2gan.config import BUILTIN_SPLIT

    for name in ("tiny", "small", "paper"):
        cfg = get_preset(name)
        raw = {k: v for k, v in cfg.to_dict()["data"].items() if k not in ("base_concepts", "new_concepts")}
        raw.update(n_test=cfg.eval.n_test, n_val=cfg.eval.n_val, split=BUILTIN_SPLIT)
        assert data_key(cfg) == hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:10]


def test_eval_sizes_key_the_data_folder_not_the_base():
    a = get_preset("tiny")
    b = apply_overrides(get_preset("tiny"), {"eval": {"n_test": 50, "n_val": 20}}, "test")
    assert (a.eval.n_test, a.eval.n_val) == (500, 250)
    assert data_key(a) != data_key(b)
    assert a.key("data", "model", "disc", "train") == b.key("data", "model", "disc", "train")


def test_builtin_split_rule_is_in_the_base_key_only_for_builtin(monkeypatch, tmp_path):
    import e2gan.config as config

    folder = _with(sources=str(tmp_path))
    before = (get_preset("tiny").key("data"), data_key(get_preset("tiny")), folder.key("data"))
    monkeypatch.setattr(config, "BUILTIN_SPLIT", "another-rule")
    after = (get_preset("tiny").key("data"), data_key(get_preset("tiny")), folder.key("data"))
    assert before[0] != after[0] and before[1] != after[1] and before[2] == after[2]
