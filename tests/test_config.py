import pytest

from e2gan.config import Config, apply_overrides
from e2gan.errors import InputError
from e2gan.presets import PRESETS, get_preset, load_config


@pytest.mark.parametrize("name,resolution,width", [("tiny", 64, 16), ("small", 128, 32), ("paper", 256, 64)])
def test_presets_resolve(name, resolution, width):
    cfg = get_preset(name)
    assert (cfg.preset, cfg.data.resolution, cfg.model.width) == (name, resolution, width)


def test_unknown_preset_names_choices():
    with pytest.raises(InputError, match=r"unknown preset 'huge' \(--preset\): one of \['paper', 'small', 'tiny'\]"):
        get_preset("huge")


@pytest.mark.parametrize("overrides,message", [
    ({"train": {"stepz": 3}}, r"unknown key 'train.stepz'"),
    ({"trian": {"steps": 3}}, r"unknown section 'trian'"),
    ({"train": {"steps": 0}}, r"'train.steps' = 0 .*a positive number"),
    ({"train": {"steps": "many"}}, r"'train.steps' = 'many' .*a int"),
    ({"model": {"norm": "layer"}}, r"'model.norm' = 'layer' .*one of"),
    ({"data": {"resolution": 60}}, r"a multiple of 8"),
    ({"train": {"lambda_l1": -1.0}}, r">= 0"),
    ({"eval": {"n_test": 0}}, r"'eval.n_test' = 0 .*a positive number"),
    ({"eval": {"n_val": 2.5}}, r"'eval.n_val' = 2.5 .*a int"),
])
def test_bad_overrides_name_the_key(overrides, message):
    with pytest.raises(InputError, match=message):
        apply_overrides(get_preset("tiny"), overrides, "spec.toml")


def test_int_accepted_for_float_key():
    cfg = apply_overrides(get_preset("tiny"), {"train": {"lr_g": 1}}, "x")
    assert cfg.train.lr_g == 1.0 and isinstance(cfg.train.lr_g, float)


def test_toml_file_overrides_only_what_it_names(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('preset = "small"\n[train]\nsteps = 7\n')
    cfg = load_config(path)
    assert cfg.preset == "small" and cfg.train.steps == 7
    assert cfg.data.resolution == PRESETS["small"]["data"]["resolution"]


def test_malformed_toml_is_one_line_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[train\nsteps = ")
    with pytest.raises(InputError, match="malformed TOML"):
        load_config(path)


def test_cache_key_depends_only_on_named_sections():
    a, b = get_preset("tiny"), get_preset("tiny")
    b.train.steps += 1
    assert a.key("data") == b.key("data")
    assert a.key("data", "train") != b.key("data", "train")
    assert isinstance(Config().to_dict()["train"], dict)


def test_bool_keys_take_bools_only():
    cfg = apply_overrides(get_preset("tiny"), {"model": {"lowres_skip": True}}, "x")
    assert cfg.model.lowres_skip is True
    with pytest.raises(InputError, match="'model.lowres_skip' = 1"):
        apply_overrides(get_preset("tiny"), {"model": {"lowres_skip": 1}}, "x")
    with pytest.raises(InputError, match="'train.steps' = True"):
        apply_overrides(get_preset("tiny"), {"train": {"steps": True}}, "x")


# ---------- model.concept_encoder ----------

@pytest.mark.parametrize("value", ["clip", "clip:", "clip:  ", "bert:x", "Table"])
def test_concept_encoder_names_key_and_allowed_values(value):
    with pytest.raises(InputError, match=r"'model.concept_encoder' = .*one of \['table', 'clip:<local folder or hub id>'\]"):
        apply_overrides(get_preset("tiny"), {"model": {"concept_encoder": value}}, "spec.toml")


def test_concept_encoder_accepts_table_and_clip_and_default_keys_are_unchanged():
    import hashlib
    import json

    from e2gan.config import clip_model_of

    cfg = apply_overrides(get_preset("tiny"), {"model": {"concept_encoder": "clip:openai/clip-vit-large-patch14"}}, "x")
    assert clip_model_of(cfg.model.concept_encoder) == "openai/clip-vit-large-patch14"
    assert clip_model_of("table") is None
    # The default is left out of the cache key: runs made before the key existed are still found.
    default = get_preset("tiny")
    old = {k: v for k, v in default.to_dict()["model"].items() if k != "concept_encoder"}
    assert default.key("model") == hashlib.sha256(json.dumps({"model": old}, sort_keys=True).encode()).hexdigest()[:10]
    assert default.key("model") != cfg.key("model")


# ---------- data_key: content, not place ----------

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
    keys = {_with(teacher=f"diffusers:{a}?device=cuda:0&steps=20").data_key(),
            _with(teacher=f"diffusers:{a}?steps=20&device=cuda:1").data_key(),
            _with(teacher=f"diffusers:{b}?steps=20&max_batch=4").data_key(),
            _with(teacher=f"diffusers:{b}/?steps=20").data_key()}
    assert len(keys) == 1
    ident = _with(teacher=f"diffusers:{a}?device=cuda:0&steps=20").data_identity()["teacher"]
    assert ident["model"]["folder"] == "ip2p" and ident["options"] == {"steps": 20}
    assert str(tmp_path) not in repr(ident)
    # A hub id keys by its id; the device option is dropped there too.
    assert (_with(teacher="diffusers:timbrooks/instruct-pix2pix?device=cuda:3").data_key()
            == _with(teacher="diffusers:timbrooks/instruct-pix2pix").data_key())


def test_data_key_changes_with_model_content_options_or_name(tmp_path):
    a = _fake_pipeline(tmp_path / "a" / "ip2p")
    base = _with(teacher=f"diffusers:{a}?steps=20").data_key()
    other_weights = _fake_pipeline(tmp_path / "c" / "ip2p", unet_bytes=b"weights-v2")
    other_config = _fake_pipeline(tmp_path / "d" / "ip2p")
    (other_config / "unet" / "config.json").write_text('{"in_channels": 4}')
    renamed = _fake_pipeline(tmp_path / "e" / "sd15")
    assert len({base,
                _with(teacher=f"diffusers:{other_weights}?steps=20").data_key(),
                _with(teacher=f"diffusers:{other_config}?steps=20").data_key(),
                _with(teacher=f"diffusers:{renamed}?steps=20").data_key(),
                _with(teacher=f"diffusers:{a}?steps=30").data_key(),
                _with(teacher=f"diffusers:{a}?steps=20&dtype=float32").data_key(),
                _with(teacher="diffusers:timbrooks/instruct-pix2pix").data_key(),
                _with(teacher="procedural").data_key()}) == 8


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
    assert _with(sources=str(one)).data_key() == _with(sources=str(two)).data_key()
    assert _with(sources=str(one)).data_identity()["sources"] == {"folder_images": 2,
                                                                 "listing": _with(sources=str(two)).data_identity()["sources"]["listing"]}
    bigger = _images(tmp_path / "m3" / "ffhq", {**files, "a.png": 11})
    more = _images(tmp_path / "m4" / "ffhq", {**files, "sub/d.webp": 1})
    moved = _images(tmp_path / "m5" / "ffhq", {"a.png": 10, "other/b.jpg": 20})
    assert len({_with(sources=str(d)).data_key() for d in (one, bigger, more, moved)}) == 4
    assert _with(sources="builtin").data_identity()["sources"] == "builtin"


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

    same = {_with(concepts_file=write(tmp_path / "a")).data_key(),
            _with(concepts_file=write(tmp_path / "b", note="a note changes no pair")).data_key()}
    assert len(same) == 1
    assert _with(concepts_file=write(tmp_path / "c", instruction="put on a hat")).data_key() not in same
    assert _with(concepts_file="ffhq").data_identity()["concepts_file"] == "ffhq"


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
        assert cfg.data_key() == hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:10]


def test_eval_sizes_key_the_data_folder_not_the_base():
    a = get_preset("tiny")
    b = apply_overrides(get_preset("tiny"), {"eval": {"n_test": 50, "n_val": 20}}, "test")
    assert (a.eval.n_test, a.eval.n_val) == (500, 250)
    assert a.data_key() != b.data_key()
    assert a.key("data", "model", "disc", "train") == b.key("data", "model", "disc", "train")


def test_builtin_split_rule_is_in_the_base_key_only_for_builtin(monkeypatch, tmp_path):
    import e2gan.config as config

    folder = _with(sources=str(tmp_path))
    before = (get_preset("tiny").key("data"), get_preset("tiny").data_key(), folder.key("data"))
    monkeypatch.setattr(config, "BUILTIN_SPLIT", "another-rule")
    after = (get_preset("tiny").key("data"), get_preset("tiny").data_key(), folder.key("data"))
    assert before[0] != after[0] and before[1] != after[1] and before[2] == after[2]


# ---------- adapt.selection_features ----------

@pytest.mark.parametrize("value", ["effnet", "CLIP", "pixels", ""])
def test_selection_features_names_key_and_allowed_values(value):
    with pytest.raises(InputError, match=r"'adapt.selection_features' = .*one of \['encoder', 'effnet-lite0', 'clip'\]"):
        apply_overrides(get_preset("tiny"), {"adapt": {"selection_features": value}}, "spec.toml")


def test_selection_features_is_recorded_and_the_default_leaves_keys_unchanged():
    import hashlib
    import json

    default = get_preset("tiny")
    assert default.adapt.selection_features == "encoder" and default.to_dict()["adapt"]["selection_features"] == "encoder"
    old = {k: v for k, v in default.to_dict()["adapt"].items() if k != "selection_features"}
    assert default.key("adapt") == hashlib.sha256(json.dumps({"adapt": old}, sort_keys=True).encode()).hexdigest()[:10]
    keys = {default.key("adapt")}
    for kind in ("effnet-lite0", "clip"):
        cfg = apply_overrides(get_preset("tiny"), {"adapt": {"selection_features": kind}}, "x")
        assert cfg.to_dict()["adapt"]["selection_features"] == kind  # what result.json's config records
        keys.add(cfg.key("adapt"))
    assert len(keys) == 3
