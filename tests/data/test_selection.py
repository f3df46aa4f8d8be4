"""Training-subset selection: random, or k-means nearest-to-centre on encoder / EfficientNet-Lite0 / CLIP features."""
import pytest
import torch

from e2gan.config import CHOICES
from e2gan.data.selection import nearest_to_centres, random_subset
from e2gan.errors import InputError
from e2gan.metrics.selection_features import SELECTION_FEATURES, selection_features
from e2gan.pipeline.adapt import training_subset
from tests.conftest import micro_config
from tests.metrics.tiny_clip import clip_dir, no_clip_env, save_tiny_clip  # noqa: F401 (fixtures)

CONCEPT, K = "hue-60", 5



@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """An (untrained) saved base generator: enough for its encoder features."""
    import lightning as L

    from e2gan.nets.registry import make_generator, save_generator

    cfg = micro_config()
    L.seed_everything(0, verbose=False)
    run = tmp_path_factory.mktemp("base")
    save_generator(run, make_generator(cfg.model, 2), cfg.model, ["hue-120", "pixelate"], extra={"kind": "base"})
    return run


def _pick(data, features, base=None, selection="kmeans", k=K, seed=0):
    cfg = micro_config(adapt={"train_pairs": k, "selection": selection, "selection_features": features, "seed": seed})
    return training_subset(cfg, data, CONCEPT, base)


def _n_train(data):
    from e2gan.data.dataset import PairedDataset

    return len(PairedDataset(data, [CONCEPT], "train", {CONCEPT: 0}, check_hashes=False))


def test_feature_kinds_match_the_config_choices():
    assert SELECTION_FEATURES == CHOICES[("adapt", "selection_features")]


@pytest.mark.parametrize("features,with_base", [("encoder", True), ("encoder", False), ("effnet-lite0", False),
                                                ("clip", False)])
def test_each_feature_kind_selects_k_distinct_indices_deterministically(features, with_base, micro_data, base_run,
                                                                       clip_dir, monkeypatch):
    monkeypatch.setenv("E2GAN_CLIP", str(clip_dir))
    base = base_run if with_base else None
    n = _n_train(micro_data)
    picks = _pick(micro_data, features, base)
    assert len(picks) == len(set(picks)) == K and picks == sorted(picks) and all(0 <= i < n for i in picks)
    assert _pick(micro_data, features, base) == picks  # same config, same subset
    assert picks != _pick(micro_data, features, base, selection="random")  # k-means is not random
    assert _pick(micro_data, features, base, selection="random") == random_subset(n, K, 0)


def test_feature_kinds_see_different_spaces(micro_data, base_run, clip_dir, monkeypatch):
    from e2gan.data.dataset import PairedDataset

    monkeypatch.setenv("E2GAN_CLIP", str(clip_dir))
    ds = PairedDataset(micro_data, [CONCEPT], "train", {CONCEPT: 0}, check_hashes=False)
    sources = torch.stack([ds[i]["source"] for i in range(len(ds))])
    dims = {kind: selection_features(kind, sources).shape for kind in SELECTION_FEATURES}
    assert dims == {"encoder": (len(ds), 3 * 8 * 8), "effnet-lite0": (len(ds), 1280), "clip": (len(ds), 16)}
    clip = selection_features("clip", sources)
    assert torch.allclose(clip.norm(dim=1), torch.ones(len(ds)), atol=1e-5)  # L2-normalised CLIP embeddings
    from e2gan.nets.registry import load_generator

    enc = selection_features("encoder", sources, load_generator(base_run)[0])
    assert enc.shape[0] == len(ds) and enc.shape[1] != 3 * 8 * 8


def test_clip_features_without_a_clip_folder_is_one_line_naming_where_it_looked(micro_data, tmp_path, monkeypatch):
    monkeypatch.setenv("E2GAN_CLIP", str(tmp_path / "nowhere"))
    with pytest.raises(InputError) as err:
        _pick(micro_data, "clip")
    msg = str(err.value)
    assert "\n" not in msg and "adapt.selection_features" in msg and f"$E2GAN_CLIP={tmp_path / 'nowhere'}" in msg
    monkeypatch.delenv("E2GAN_CLIP")
    with pytest.raises(InputError, match=r"\$E2GAN_CLIP and \$E2GAN_WEIGHTS unset"):
        _pick(micro_data, "clip")


def test_random_selection_needs_no_features(micro_data):
    # With random selection the feature kind is never used: no CLIP folder is needed.
    assert _pick(micro_data, "clip", selection="random") == random_subset(_n_train(micro_data), K, 0)


def test_nearest_to_centres_takes_one_point_per_cluster():
    torch.manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = torch.cat([c + 0.1 * torch.randn(6, 2) for c in centres])
    picks = nearest_to_centres(points, 3, seed=0)
    assert sorted(i // 6 for i in picks) == [0, 1, 2]
    assert nearest_to_centres(points, 3, seed=0) == picks
