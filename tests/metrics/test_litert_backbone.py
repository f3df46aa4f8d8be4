"""EfficientNet-Lite0 features run by LiteRT: torch's features to round-off, whatever the threads or
the batch, converted once per machine, and torch where LiteRT is refused or cannot run."""
import os
import warnings

import numpy as np
import pytest
import skimage.data
import torch

from e2gan.errors import InputError
from e2gan.metrics import features, litert_backbone
from e2gan.metrics.frechet import frechet_distance


def _crops(n: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """uint8 crops of two real photographs (features of noise would test little)."""
    photos = [torch.from_numpy(np.ascontiguousarray(getattr(skimage.data, p)())).permute(2, 0, 1)
              for p in ("astronaut", "coffee")]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = photos[i % 2]
        y, x = (int(rng.integers(0, d - size)) for d in img.shape[1:])
        out.append(img[:, y:y + size, x:x + size])
    return torch.stack(out)


def test_litert_features_equal_torchs_to_round_off_and_say_what_ran_them():
    images = _crops(20)
    lite = features.get_backbone("effnet-lite0")
    torch_ = features.get_backbone("effnet-lite0", runtime="torch")
    assert lite.describe()["runtime"].startswith("LiteRT ") and torch_.describe()["runtime"].startswith("torch ")
    a, b = lite(images), torch_(images)
    assert a.dtype == torch.float64 and a.shape == (20, 1280)
    assert float((a - b).abs().max()) < 1e-4 * float(b.abs().max())
    fa, fb = lite(images.flip(0)), torch_(images.flip(0))
    assert frechet_distance(a.numpy(), fa.numpy()) == pytest.approx(frechet_distance(b.numpy(), fb.numpy()), rel=1e-4)
    # The runtime is part of the description, so cached features of one never stand in for the other's.
    assert {k: v for k, v in lite.describe().items() if k != "runtime"} == \
        {k: v for k, v in torch_.describe().items() if k != "runtime"}


def test_litert_features_do_not_depend_on_threads_or_on_an_images_place_in_its_batch():
    lite = features.get_backbone("effnet-lite0")
    path = lite._fn.path
    images = features.clean_resize(_crops(11, seed=1), 224)
    one = litert_backbone.LiteRTPooled(path, 8, threads=1)(images)
    two = litert_backbone.LiteRTPooled(path, 8, threads=2)(images)
    assert torch.equal(one, two)
    alone = torch.cat([one[:0], *(litert_backbone.LiteRTPooled(path, 8, 2)(images[i:i + 1]) for i in (0, 9))])
    assert torch.equal(alone, one[[0, 9]])  # padded with zeros or beside 7 others: the same bits


def test_a_damaged_converted_model_is_converted_again(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    sha = features.sha256(features.find_weights("effnet-lite0"))
    path = litert_backbone._tflite_file(features._pooled_network, sha, 1, 32)
    path.write_bytes(path.read_bytes()[:1000])  # a copy cut short
    lite = litert_backbone.load_litert_pooled(features._pooled_network, sha, 1, 32, 2)
    assert lite(torch.full((1, 3, 32, 32), 128.0)).shape == (1, 1280) and path.stat().st_size > 1_000_000


def test_a_read_only_cache_leaves_the_converted_model_in_the_temp_folder(tmp_path, monkeypatch):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "e2gan").write_text("a file where the cache folder would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(litert_backbone, "spare_dir", lambda: tmp_path / "tmp" / "e2gan-litert")
    sha = features.sha256(features.find_weights("effnet-lite0"))
    made = litert_backbone._tflite_file(features._pooled_network, sha, 1, 32)
    assert made.parent == tmp_path / "tmp" / "e2gan-litert" and made.stat().st_size > 1_000_000
    assert litert_backbone._tflite_file(features._pooled_network, sha, 1, 32) == made  # found there again


def test_the_converted_model_is_kept_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    sha = features.sha256(features.find_weights("effnet-lite0"))
    made = litert_backbone._tflite_file(features._pooled_network, sha, 2, 64)
    assert made.parent == tmp_path / "e2gan" / "litert" and made.stat().st_size > 1_000_000

    def no_second_conversion(*a, **k):
        raise AssertionError("converted again")

    monkeypatch.setattr("e2gan.deploy.litert_convert.convert_module", no_second_conversion)
    assert litert_backbone._tflite_file(features._pooled_network, sha, 2, 64) == made
    out = litert_backbone.LiteRTPooled(made, 2, 2)(torch.full((3, 3, 64, 64), 128.0))
    assert out.shape == (3, 1280) and torch.isfinite(out).all()


def test_the_environment_chooses_the_runtime_and_a_bad_value_is_refused(monkeypatch):
    monkeypatch.setenv(litert_backbone.RUNTIME_ENV, "torch")
    assert features.get_backbone("effnet-lite0").describe()["runtime"].startswith("torch ")
    monkeypatch.setenv(litert_backbone.RUNTIME_ENV, "onnx")
    with pytest.raises(InputError, match=r"E2GAN_FEATURE_RUNTIME='onnx'.*one of \['auto', 'litert', 'torch'\]"):
        features.get_backbone("effnet-lite0")


def test_litert_that_cannot_run_falls_back_to_torch_under_auto_and_is_an_error_when_asked_for(monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("no XNNPACK here")

    monkeypatch.setattr(litert_backbone, "load_litert_pooled", broken)
    monkeypatch.setattr(litert_backbone, "_FAILED", {})
    with pytest.warns(UserWarning, match="run by torch: LiteRT could not run them .no XNNPACK here"):
        bb = features.get_backbone("effnet-lite0")
    assert bb.describe()["runtime"].startswith("torch ")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tried once per process: no second warning, no second try
        assert features.get_backbone("effnet-lite0").describe()["runtime"].startswith("torch ")
    monkeypatch.setenv(litert_backbone.RUNTIME_ENV, "litert")
    with pytest.raises(InputError, match="E2GAN_FEATURE_RUNTIME=litert.*no XNNPACK here"):
        features.get_backbone("effnet-lite0")


def test_subset_selection_keeps_torch_features(monkeypatch):
    from e2gan.metrics.selection_features import effnet_features

    seen = []
    real = features.get_backbone
    monkeypatch.setattr(features, "get_backbone", lambda *a, **k: seen.append(k.get("runtime")) or real(*a, **k))
    effnet_features(torch.zeros(2, 3, 32, 32))
    assert seen == ["torch"]


def test_native_chatter_is_dropped_and_native_errors_still_show(capfd):
    from e2gan.quiet import native_chatter_silenced

    with native_chatter_silenced():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
                    b"I0000 00:00:1796642602.847166   30573 port.cc:153] oneDNN custom operations are on.\n"
                    b"E1207 11:23:25.370000 30573 model.cc:12] the model file is damaged\n")
    err = capfd.readouterr().err
    assert "XNNPACK delegate" not in err and "oneDNN" not in err
    assert "the model file is damaged" in err
