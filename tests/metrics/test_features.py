"""Backbones: the offline EfficientNet-Lite0 really is an ImageNet classifier; Inception wiring."""
import hashlib

import numpy as np
import pytest
import skimage.data
import torch
from torch import nn

from e2gan.errors import InputError
from e2gan.metrics import features, weights


def _photo(name: str) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(getattr(skimage.data, name)())).permute(2, 0, 1)[None]


def test_effnet_lite0_recognises_a_cat_and_an_espresso():
    # Checks weights, TF 'SAME' padding and (x-127)/128 input scaling together.
    net = features.load_effnet_lite0()
    for photo, classes in [("chelsea", range(281, 286)), ("coffee", [967])]:
        x = features.lite_normalise(features.clean_resize(_photo(photo), 224))
        probs = net(x).softmax(-1)[0]
        assert int(probs.argmax()) in classes
        assert float(probs[list(classes)].sum()) > 0.7


def test_effnet_backbone_shapes_batching_and_describe():
    bb = features.get_backbone("effnet-lite0")
    assert features.load_effnet_lite0() is features.load_effnet_lite0("cpu", channels_last=True)  # cached per process
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (5, 3, 40, 48), dtype=torch.uint8, generator=gen)
    f = bb(images)
    assert f.shape == (5, 1280) and f.dtype == torch.float64 and torch.isfinite(f).all()
    bb.batch_size = 2
    assert torch.allclose(bb(images), f, atol=1e-5)
    d = bb.describe()
    assert d["name"] == "effnet-lite0" and d["resolution"] == 224 and "bicubic" in d["resize"]
    assert d["weights"].endswith("efficientnet-lite0-57934424.pth")
    assert d["weights_sha256"] == hashlib.sha256(open(d["weights"], "rb").read()).hexdigest()[:12]


def test_clean_resize_is_float_without_requantising():
    img = _photo("astronaut")[:, :, :64, :64]
    out = features.clean_resize(img, 299)
    assert out.shape == (1, 3, 299, 299) and out.dtype == torch.float32
    assert 0 <= float(out.min()) and float(out.max()) <= 255
    assert (out != out.round()).float().mean() > 0.5  # bicubic values kept as floats, as clean-fid does


def test_bad_inputs_are_input_errors():
    bb = features.get_backbone("effnet-lite0")
    with pytest.raises(InputError, match="uint8"):
        bb(torch.rand(2, 3, 32, 32))
    with pytest.raises(InputError, match="one of"):
        features.get_backbone("resnet50")


class _FakeLayers(nn.Module):
    def forward(self, x):  # per-channel mean, tiled to Inception's 2048 features
        return x.mean((2, 3)).repeat(1, 683)[:, :2048]


class _FakeInception(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = _FakeLayers()

    def forward(self, x):
        return self.layers(x)


def test_inception_backbone_uses_found_file_clean_resize_and_cleanfid_scaling(tmp_path, monkeypatch):
    # A stand-in TorchScript file with the same interface (`.layers`) as clean-fid's Inception.
    monkeypatch.setenv("E2GAN_WEIGHTS", str(tmp_path))
    torch.jit.script(_FakeInception()).save(str(tmp_path / "inception-2015-12-05.pt"))
    bb = features.get_backbone("inception")
    assert (bb.dim, bb.resolution) == (2048, 299)
    images = torch.full((2, 3, 32, 32), 192, dtype=torch.uint8)
    images[1] = 64
    f = bb(images)
    assert f.shape == (2, 2048)
    assert torch.allclose(f[0], torch.full((2048,), 0.5, dtype=torch.float64), atol=1e-4)  # (192-128)/128
    assert torch.allclose(f[1], torch.full((2048,), -0.5, dtype=torch.float64), atol=1e-4)
    assert bb.describe()["weights"] == str(weights.find_weights("inception"))


def test_fast_effnet_path_matches_nchw_batches_of_32():
    """channels_last and batches of 8 are speed only: torch's features and FID equal the NCHW path's."""
    from e2gan.metrics.frechet import frechet_distance

    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (40, 3, 64, 64), dtype=torch.uint8, generator=gen)
    fast = features.get_backbone("effnet-lite0", runtime="torch")
    slow = features.get_backbone("effnet-lite0", batch_size=32, channels_last=False, runtime="torch")
    assert fast.batch_size == features.EFFNET_BATCH and fast.channels_last and not slow.channels_last
    assert next(features.load_effnet_lite0().parameters()).is_contiguous(memory_format=torch.channels_last)
    a, b = fast(images), slow(images)
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)
    ref = slow(images.flip(0))
    assert frechet_distance(a.numpy(), fast(images.flip(0)).numpy()) == pytest.approx(
        frechet_distance(b.numpy(), ref.numpy()), rel=1e-4)
    assert fast.describe() == slow.describe()  # the protocol (and the cache key) is the same
