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
    ({"adapt": {"curve_points": -1}}, r"'adapt.curve_points' = -1 .*a number >= 0"),
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
    old = {k: v for k, v in default.to_dict()["adapt"].items() if k not in ("selection_features", "curve_points", "precision")}
    assert default.key("adapt") == hashlib.sha256(json.dumps({"adapt": old}, sort_keys=True).encode()).hexdigest()[:10]
    keys = {default.key("adapt")}
    for kind in ("effnet-lite0", "clip"):
        cfg = apply_overrides(get_preset("tiny"), {"adapt": {"selection_features": kind}}, "x")
        assert cfg.to_dict()["adapt"]["selection_features"] == kind  # what result.json's config records
        keys.add(cfg.key("adapt"))
    assert len(keys) == 3


def test_curve_points_default_leaves_keys_unchanged_and_a_curve_run_gets_its_own():
    default = get_preset("tiny")
    assert default.adapt.curve_points == 0
    zero = apply_overrides(get_preset("tiny"), {"adapt": {"curve_points": 0}}, "x")
    five = apply_overrides(get_preset("tiny"), {"adapt": {"curve_points": 5}}, "x")
    assert zero.key("adapt") == default.key("adapt") != five.key("adapt")


def test_adapt_precision_default_leaves_keys_unchanged_and_bf16_gets_its_own_run():
    default = get_preset("tiny")
    assert default.adapt.precision == ""  # the base's precision
    bf16 = apply_overrides(get_preset("tiny"), {"adapt": {"precision": "bf16-mixed"}}, "x")
    assert bf16.key("adapt") != default.key("adapt")
    assert bf16.key("data", "model", "disc", "train") == default.key("data", "model", "disc", "train")  # same base
    with pytest.raises(InputError, match="adapt.precision"):
        apply_overrides(get_preset("tiny"), {"adapt": {"precision": "fp8"}}, "x")


def test_adapt_lr_g_equal_to_the_base_rate_is_the_default_run():
    # The sweep's arm at the base's rate is the main comparison's run: one cache entry, not two.
    default = get_preset("tiny")
    spelled = apply_overrides(get_preset("tiny"), {"adapt": {"lr_g": default.train.lr_g}}, "x")
    other = apply_overrides(get_preset("tiny"), {"adapt": {"lr_g": 3e-4}}, "x")
    assert spelled.key("adapt") == default.key("adapt") != other.key("adapt")
    assert spelled.adapt.lr_g == default.train.lr_g  # the config itself still says what was asked


def test_selection_does_not_key_a_run_that_uses_every_pair():
    # data-count's "0 / kmeans" cell trains on every pair, exactly as "0 / random" does: one run.
    tiny = get_preset("tiny")
    kmeans_all = apply_overrides(get_preset("tiny"), {"adapt": {"selection": "kmeans"}}, "x")
    kmeans_8 = apply_overrides(get_preset("tiny"), {"adapt": {"selection": "kmeans", "train_pairs": 8}}, "x")
    random_8 = apply_overrides(get_preset("tiny"), {"adapt": {"train_pairs": 8}}, "x")
    assert tiny.adapt.train_pairs == 0 and tiny.adapt.selection == "random"
    assert kmeans_all.key("adapt") == tiny.key("adapt")
    assert kmeans_8.key("adapt") != random_8.key("adapt")
