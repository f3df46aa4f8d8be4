"""generator_from_meta / finish_loading: the one place a generator is rebuilt from model.json metadata."""
import dataclasses
import json

import pytest
import torch

from e2gan.errors import InputError
from e2gan.nets.registry import finish_loading, generator_from_meta, make_generator, save_generator
from tests.conftest import micro_config


def _round_trip(g, meta, **kwargs):
    rebuilt = generator_from_meta(meta, "somewhere/model.json", **kwargs)
    rebuilt.load_state_dict(g.state_dict())
    return finish_loading(rebuilt, meta)


@pytest.mark.parametrize("arch", ["e2gan", "pix2pix"])
def test_table_generator_round_trip(arch, tmp_path):
    model = dataclasses.replace(micro_config().model, arch=arch)
    torch.manual_seed(0)
    g = make_generator(model, 2).eval()
    save_generator(tmp_path, g, model, ["hue-120", "pixelate"])
    meta = json.loads((tmp_path / "model.json").read_text())
    loaded = _round_trip(g.train(), meta)
    assert not loaded.training and type(loaded) is type(g)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x, torch.tensor([1, 0])), g.eval()(x, torch.tensor([1, 0])))


def test_added_concepts_are_built_with_the_base_count_and_recreated_on_load(tmp_path):
    model = micro_config().model
    torch.manual_seed(0)
    g = make_generator(model, 2)
    g.concepts.add_concepts(1)
    save_generator(tmp_path, g, model, ["hue-120", "pixelate", "hue-60"], extra={"n_base_concepts": 2})
    meta = json.loads((tmp_path / "model.json").read_text())
    assert generator_from_meta(meta, "model.json").concepts.n_concepts == 2
    loaded = _round_trip(g, meta)
    assert loaded.concepts.n_concepts == 3 and torch.equal(loaded.concepts.table(), g.concepts.table())


def _clip_model():
    from tests.tiny_pipelines import text_model_dir

    return dataclasses.replace(micro_config().model, n_tokens=16, concept_encoder=f"clip:{text_model_dir()}")


def test_clip_generator_rebuilds_from_the_recorded_encoder_without_clip(tmp_path, monkeypatch):
    import e2gan.nets.text_encoder as te
    from e2gan.nets.registry import concept_instructions

    model, names = _clip_model(), ["hue-120", "pixelate"]
    instructions = concept_instructions("", names)
    torch.manual_seed(0)
    g = make_generator(model, 2, instructions=instructions).eval()
    save_generator(tmp_path, g, model, names)
    meta = json.loads((tmp_path / "model.json").read_text())
    monkeypatch.setattr(te, "load_clip_text", lambda *a, **k: pytest.fail("CLIP loaded to rebuild a saved generator"))
    # The recorded encoder wins over a concepts file; its instructions are cut to the tokens loaded.
    meta["concept_encoder"]["instructions"] += ["an instruction without tokens"]
    loaded = _round_trip(g, meta, concepts_file="")
    assert isinstance(loaded.concepts, te.CLIPConceptEncoder) and loaded.concepts.instructions == instructions
    assert torch.equal(loaded.concepts.tokens, g.concepts.tokens)
    x, ids = torch.randn(2, 3, 32, 32), torch.tensor([1, 0])
    with torch.no_grad():
        assert torch.equal(loaded(x, ids), g(x, ids))


def test_clip_meta_without_its_encoder(tmp_path):
    from e2gan.nets.registry import concept_instructions

    model, names = _clip_model(), ["hue-120", "pixelate"]
    meta = {"model": dataclasses.asdict(model), "concepts": names}  # as a run's config.json gives it
    with pytest.raises(InputError) as e:  # a model.json must record the encoder
        generator_from_meta(meta, "run/model.json")
    assert str(e.value).startswith("model.json without its CLIP concept encoder (run/model.json)")
    g = generator_from_meta(meta, "run/model.json", concepts_file="")  # "": the packaged concepts file
    assert g.concepts.instructions == concept_instructions("", names) and g.concepts.n_concepts == 2
    assert finish_loading(g, meta).concepts.instructions == concept_instructions("", names)
