"""CLIP score and directional similarity with a tiny random CLIPModel loaded from a local folder."""
import math

import numpy as np
import pytest
import skimage.data
import torch

from e2gan.errors import InputError
from e2gan.metrics import clip as C
from tests.metrics.tiny_clip import IMAGE_SIZE, clip_dir, no_clip_env, save_tiny_clip  # noqa: F401 (fixtures)

TEXT = "shift every colour's hue by 120 degrees"



@pytest.fixture(scope="module")
def scorer(clip_dir):
    return C.ClipScorer(clip_dir)


def _crops(n: int, seed: int = 0, size: int = 48) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    photos = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee()]
    out = []
    for i in range(n):
        p = photos[i % 3]
        y, x = rng.integers(0, p.shape[0] - size), rng.integers(0, p.shape[1] - size)
        out.append(p[y:y + size, x:x + size])
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def test_lookup_env_then_weights_folder_then_absent(clip_dir, monkeypatch):
    folder, note = C.find_clip()
    assert folder is None and note == "absent ($E2GAN_CLIP and $E2GAN_WEIGHTS unset)"
    monkeypatch.setenv("E2GAN_WEIGHTS", str(clip_dir.parent))
    assert C.find_clip() == (clip_dir, "$E2GAN_WEIGHTS/clip")
    monkeypatch.setenv("E2GAN_CLIP", str(clip_dir.parent / "nowhere"))  # named but missing: falls through
    assert C.find_clip() == (clip_dir, "$E2GAN_WEIGHTS/clip")
    monkeypatch.setenv("E2GAN_WEIGHTS", str(clip_dir.parent / "empty"))
    folder, note = C.find_clip()
    assert folder is None
    assert note == f"absent ($E2GAN_CLIP={clip_dir.parent / 'nowhere'}, $E2GAN_WEIGHTS/clip={clip_dir.parent / 'empty' / 'clip'})"
    monkeypatch.setenv("E2GAN_CLIP", str(clip_dir))
    scorer, how = C.get_scorer()
    assert how == "$E2GAN_CLIP" and scorer.folder == clip_dir


def test_broken_folder_is_an_input_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(InputError, match="unloadable CLIP model"):
        C.ClipScorer(tmp_path)


def test_embeddings_match_clipmodels_own_forward(scorer):
    images = _crops(3)
    ours_img, ours_txt = scorer.encode_images(images), scorer.encode_texts([TEXT, ""])
    x = torch.nn.functional.interpolate(images.float() / 255, size=IMAGE_SIZE, mode="bicubic", align_corners=False)
    mean, std = torch.tensor(C.OPENAI_MEAN).view(1, 3, 1, 1), torch.tensor(C.OPENAI_STD).view(1, 3, 1, 1)
    ids = scorer.tokenizer([TEXT, ""], padding=True, return_tensors="pt")
    with torch.no_grad():
        ref = scorer.model(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"], pixel_values=(x - mean) / std)
    assert torch.allclose(ours_img, ref.image_embeds, atol=1e-5)
    assert torch.allclose(ours_txt, ref.text_embeds, atol=1e-5)


def test_values_are_finite_cosines_and_repeatable(scorer, clip_dir):
    src = _crops(6)
    out = 255 - src  # a strong, real edit
    first = scorer.score(out, src, TEXT)
    assert set(first) == {"clip_score", "clip_directional"}
    assert all(math.isfinite(v) and -1.0 <= v <= 1.0 for v in first.values())
    assert first["clip_directional"] != 0.0
    assert scorer.score(out, src, TEXT) == first
    assert C.ClipScorer(clip_dir).score(out, src, TEXT) == first  # a fresh load gives the same numbers
    # The score does depend on the text and on the images.
    assert scorer.score(out, src, "a pencil sketch")["clip_score"] != first["clip_score"]
    assert scorer.score(src, out, TEXT)["clip_directional"] == pytest.approx(-first["clip_directional"], abs=1e-6)


def test_unchanged_output_scores_zero_directional(scorer):
    src = _crops(4)
    same = scorer.score(src.clone(), src, TEXT)
    assert same["clip_directional"] == 0.0 and math.isfinite(same["clip_score"])
    # Half the images unchanged: they contribute 0, the edited ones their cosine.
    out = src.clone()
    out[2:] = 255 - src[2:]
    part = scorer.score(out, src, TEXT)["clip_directional"]
    edited = scorer.score(out[2:], src[2:], TEXT)["clip_directional"]
    assert part == pytest.approx(edited / 2, abs=1e-6)
    # Text identical to the source caption: no text direction either.
    assert scorer.score(255 - src, src, C.SOURCE_CAPTION)["clip_directional"] == 0.0


def test_directional_formula_on_known_vectors():
    src = torch.nn.functional.normalize(torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]), dim=-1)
    t0, t1 = torch.tensor([1.0, 0, 0]), torch.tensor([0, 1.0, 0])
    out = src + (t1 - t0) * torch.tensor([[1.0], [-2.0], [0.0]])  # along, against, unchanged
    d = C.directional(out, src, t1, t0)
    assert d.tolist() == pytest.approx([1.0, -1.0, 0.0], abs=1e-6)


def test_mismatched_sets_are_refused(scorer):
    with pytest.raises(InputError):
        scorer.score(_crops(2), _crops(3), TEXT)
    with pytest.raises(InputError):
        scorer.encode_images(_crops(2).float())


def _pred():
    src = _crops(8, seed=3, size=32)
    out = src.clone()
    out[4:] = 255 - src[4:]
    return {"sources": src, "targets": 255 - src, "outputs": out,
            "concepts": ["a"] * 4 + ["b"] * 4, "source_ids": [str(i) for i in range(8)],
            "instructions": {"a": "make it blue", "b": TEXT}}


def test_score_adds_clip_per_concept_and_records_texts(clip_dir, monkeypatch):
    from e2gan.metrics.evaluation import score

    pred = _pred()
    absent = score(pred, perceptual="proxy")
    assert absent["protocol"]["clip"] == "absent ($E2GAN_CLIP and $E2GAN_WEIGHTS unset)"
    assert "clip_score" not in absent["per_concept"]["a"] and "clip_score" not in absent["mean_over_concepts"]

    monkeypatch.setenv("E2GAN_CLIP", str(clip_dir))
    res = score(pred, perceptual="proxy")
    per = res["per_concept"]
    assert per["a"]["clip_directional"] == 0.0  # concept a's outputs are its sources
    assert -1 <= per["b"]["clip_directional"] <= 1 and per["b"]["clip_directional"] != 0
    assert res["mean_over_concepts"]["clip_score"] == pytest.approx((per["a"]["clip_score"] + per["b"]["clip_score"]) / 2)
    p = res["protocol"]["clip"]
    assert p["texts"] == {"a": {"edited": "make it blue", "source": ""}, "b": {"edited": TEXT, "source": ""}}
    assert p["found_by"] == "$E2GAN_CLIP" and p["folder"] == str(clip_dir) and len(p["fingerprint"]) == 64
    assert p["missing_instruction"] == []
    # Other metrics are unchanged by CLIP being there.
    assert res["per_concept"]["b"]["psnr"] == absent["per_concept"]["b"]["psnr"]
    assert score(pred, perceptual="proxy", clip=None)["protocol"]["clip"] == "off (not requested)"
