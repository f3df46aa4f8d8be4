"""The CLIP concept encoder with a tiny random CLIPTextModel and the real CLIP tokenizer (offline)."""
import dataclasses
import shutil
import socket

import pytest
import torch

from e2gan.errors import InputError
from e2gan.nets.generator import E2GANGenerator
from e2gan.nets.text_encoder import CLIPConceptEncoder
from tests.tiny_pipelines import HIDDEN, clip_tokenizer, ip2p_dir, text_model_dir

INSTRUCTIONS = ["put on sunglasses", "make the person blond", "turn it into a watercolor painting"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def encoder():
    return CLIPConceptEncoder(text_model_dir(), INSTRUCTIONS, n_tokens=8)


def test_tokens_shape_and_cached_values(encoder):
    out = encoder(torch.tensor([2, 0, 0, 1]))
    assert out.shape == (4, 8, HIDDEN) and encoder.dim == HIDDEN and encoder.n_concepts == 3
    assert torch.equal(out[1], out[2]) and not torch.allclose(out[0], out[1])
    # The cache holds exactly what the frozen text model gives for each instruction (layer-normed).
    text, tok = encoder._text, encoder._tokenizer
    ids = tok(INSTRUCTIONS[2], padding="max_length", max_length=8, truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        direct = text(input_ids=ids).last_hidden_state
    assert torch.allclose(out[0], torch.nn.functional.layer_norm(direct, (HIDDEN,))[0], atol=1e-6)
    raw = CLIPConceptEncoder(text_model=text, tokenizer=tok, instructions=INSTRUCTIONS[2:], n_tokens=8, normalize=False)
    assert torch.allclose(raw(torch.tensor([0]))[0], direct[0], atol=1e-6)


def test_frozen_and_out_of_the_state_dict(encoder):
    assert all(not p.requires_grad for p in encoder._text.parameters())
    assert list(encoder.parameters()) == []  # width matches: no projection, nothing to train
    assert set(encoder.state_dict()) == {"tokens"}
    assert not encoder(torch.tensor([0])).requires_grad


def test_projection_and_generator_training_step():
    enc = CLIPConceptEncoder(ip2p_dir(), INSTRUCTIONS, n_tokens=4, token_dim=16)  # a pipeline folder works too
    assert enc.dim == 16 and enc(torch.tensor([0, 1])).shape == (2, 4, 16)
    assert {n for n, _ in enc.named_parameters()} == {"proj.weight", "proj.bias"}
    g = E2GANGenerator(n_concepts=3, width=8, attn_heads=2, concept_encoder=enc)
    y = g(torch.randn(2, 3, 32, 32), torch.tensor([0, 2]))
    y.mean().backward()
    assert y.shape == (2, 3, 32, 32) and enc.proj.weight.grad is not None
    assert enc.tokens.grad is None and all(p.grad is None for p in enc._text.parameters())


def test_add_concepts_and_checkpoint_into_a_shell(encoder):
    enc = CLIPConceptEncoder(text_model=encoder._text, tokenizer=encoder._tokenizer,
                             instructions=INSTRUCTIONS[:2], n_tokens=8)
    assert enc.add_concepts("give the person pink hair") == [2]
    assert enc.add_concepts(["add blossoms", "make it dusk"]) == [3, 4] and enc.n_concepts == 5
    state = enc.state_dict()
    shell = CLIPConceptEncoder.cached(n_concepts=2, n_tokens=8, hidden_size=HIDDEN)  # no CLIP needed
    shell.load_state_dict(state)  # grows to the checkpoint's 5 concepts
    ids = torch.tensor([4, 0, 2])
    assert torch.equal(shell(ids), enc(ids))
    with pytest.raises(InputError, match="only holds cached tokens"):
        shell.add_concepts(["x"])
    d = enc.describe()
    assert d["kind"] == "clip" and d["n_tokens"] == 8 and d["instructions"][-1] == "make it dusk"


def test_long_instructions_truncate_and_bad_inputs(encoder):
    enc = CLIPConceptEncoder(text_model=encoder._text, tokenizer=clip_tokenizer(),
                             instructions=["a " * 200 + "hat"], n_tokens=77)
    assert enc(torch.tensor([0])).shape == (1, 77, HIDDEN)
    with pytest.raises(InputError, match="at most the text model's 77"):
        CLIPConceptEncoder(text_model=encoder._text, tokenizer=clip_tokenizer(), n_tokens=78)
    with pytest.raises(InputError, match="non-empty"):
        encoder.encode([" "])
    with pytest.raises(InputError, match="hidden_size for a shell"):
        CLIPConceptEncoder()


def test_unknown_text_model_offline(monkeypatch, tmp_path):
    attempts = []

    def refuse(*a, **k):
        attempts.append(a[:2])
        raise OSError("network access attempted in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match=r"nobody-e2gan/clip-text.*--local-dir") as e:
        CLIPConceptEncoder("nobody-e2gan/clip-text", INSTRUCTIONS)
    assert "\n" not in str(e.value) and attempts == []
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(InputError, match="CLIPTextModel"):
        CLIPConceptEncoder(tmp_path, INSTRUCTIONS)


# ---------- selected by model.concept_encoder: make_generator, save/load ----------

def _clip_model_cfg(folder, n_tokens=8):
    from e2gan.config import ModelConfig

    return ModelConfig(width=8, attn_heads=2, n_tokens=n_tokens, concept_encoder=f"clip:{folder}")


def test_make_generator_with_clip_config_forward_and_no_trainable_encoder():
    from e2gan.nets.registry import make_generator

    torch.manual_seed(0)
    g = make_generator(_clip_model_cfg(text_model_dir()), 3, instructions=INSTRUCTIONS)
    assert isinstance(g.concepts, CLIPConceptEncoder) and g.concepts.instructions == INSTRUCTIONS
    assert g.concepts.dim == HIDDEN and g.tb.cross_attn.to_k.in_features == HIDDEN
    assert list(g.concepts.parameters()) == []  # frozen CLIP, cached tokens: nothing of it trains
    table = make_generator(dataclasses.replace(_clip_model_cfg(text_model_dir()), concept_encoder="table"), 3)
    emb = sum(p.numel() for p in table.concepts.parameters())
    k_v = 2 * (4 * 8) * (4 * 8 - HIDDEN)  # cross-attention k/v read HIDDEN-wide tokens instead of 4*width
    assert sum(p.numel() for p in g.parameters()) == sum(p.numel() for p in table.parameters()) - emb - k_v
    y = g(torch.randn(2, 3, 32, 32), torch.tensor([0, 2]))
    assert y.shape == (2, 3, 32, 32) and torch.isfinite(y).all()
    with torch.no_grad():
        a, b = g(torch.zeros(1, 3, 32, 32).repeat(2, 1, 1, 1), torch.tensor([0, 1]))
    assert not torch.allclose(a, b)  # concepts condition the output


def test_make_generator_clip_needs_instructions_and_long_enough_tokens():
    from e2gan.nets.registry import make_generator

    with pytest.raises(InputError, match=r"none concept instructions for 3 concepts.*one instruction per concept"):
        make_generator(_clip_model_cfg(text_model_dir()), 3)
    with pytest.raises(InputError, match=r"'turn it into a watercolor painting' is 8 tokens.*model.n_tokens = 4.*n_tokens >= 8"):
        make_generator(_clip_model_cfg(text_model_dir(), n_tokens=4), 3, instructions=INSTRUCTIONS)


def test_clip_generator_save_load_round_trip_without_clip_then_adds_a_concept(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    import e2gan.nets.text_encoder as te
    from e2gan.nets.registry import load_generator, make_generator, save_generator

    folder = tmp_path / "clip"
    shutil.copytree(text_model_dir(), folder)
    model_cfg = _clip_model_cfg(folder)
    torch.manual_seed(1)
    g = make_generator(model_cfg, 3, instructions=INSTRUCTIONS).eval()
    save_generator(tmp_path / "run", g, model_cfg, ["shades", "blond", "watercolor"])
    calls = []
    real = te.load_clip_text
    monkeypatch.setattr(te, "load_clip_text", lambda *a, **k: calls.append(a) or real(*a, **k))
    loaded, meta = load_generator(tmp_path / "run")
    assert calls == [] and loaded.concepts._text is None  # evaluation and export need no CLIP
    assert meta["concept_encoder"]["kind"] == "clip" and meta["concept_encoder"]["instructions"] == INSTRUCTIONS
    x, ids = torch.randn(3, 3, 32, 32), torch.tensor([2, 0, 1])
    with torch.no_grad():
        assert torch.equal(loaded(x, ids), g(x, ids))
    assert loaded.concepts.instructions == INSTRUCTIONS
    # A new concept: the text model is loaded now, and the tokens are its instruction's.
    assert loaded.concepts.add_concepts(["give the person pink hair"]) == [3] and len(calls) == 1
    assert torch.equal(loaded.concepts.tokens[3], g.concepts.encode(["give the person pink hair"])[0])
    # Other text-model files than the tokens came from (same shapes, other weights) are refused.
    again, _ = load_generator(tmp_path / "run")
    state = {k: v + 0.01 for k, v in te.load_clip_text(folder)[0].state_dict().items()}
    assert (folder / "model.safetensors").is_file()
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(InputError, match="the files the cached tokens came from"):
        again.concepts.add_concepts(["add blossoms"])


def test_clip_config_unknown_model_offline_is_one_line(monkeypatch):
    from e2gan.nets.registry import make_generator

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match=r"nobody-e2gan/clip-text.*hub is offline.*--local-dir <folder>") as e:
        make_generator(_clip_model_cfg("nobody-e2gan/clip-text"), 1, instructions=["put on sunglasses"])
    assert "\n" not in str(e.value)
