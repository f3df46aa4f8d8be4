"""Random-weight stand-ins for the metric backbones, with the real files' names and interfaces.

Saved into a folder that the real lookup searches (``$E2GAN_WEIGHTS``), so evaluation takes the
same code path as with the real files; each file carries a stand-in note (``e2gan.stand_in``) that
evaluation copies into ``result.json``.

    save_inception(folder)  inception-2015-12-05.pt: TorchScript like clean-fid's (StyleGAN2-ADA's)
                            file: ``.layers`` maps (x-128)/128 at 299² to pool3 features
                            [N,2048,1,1]; ``forward(img, return_features)`` takes [0,255] images
                            of any size; torchvision's Inception-v3 architecture, random weights
    save_alexnet(folder)    alexnet-owt-7be5be79.pth: torchvision AlexNet ``features.*`` tensors
                            (all LPIPS reads), random weights
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from e2gan.metrics.weights import WEIGHTS
from e2gan.stand_in import KEY

NOTE = "stand-in, random weights ({what}; built for a smoke run, not the published file)"


class _PoolFeatures(nn.Module):
    """Inception-v3 up to its global pool: [N,3,299,299] (already normalised) -> [N,2048,1,1]."""

    def __init__(self, net: nn.Module):
        super().__init__()
        names = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                 "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                 "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool"]
        self.body = nn.Sequential(*[getattr(net, n) for n in names])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class _StandInInception(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.layers = _PoolFeatures(net)
        self.output = net.fc  # 2048 -> 1000 logits (the real file has 1008; clean-fid never reads them)

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = nn.functional.interpolate(img.float(), size=(299, 299), mode="bilinear", align_corners=False)
        feats = self.layers((x - 128) / 128).flatten(1)
        return feats if return_features else self.output(feats)


@torch.no_grad()
def _calibrate_batchnorms(net: nn.Module, batches: int = 2, n: int = 8) -> None:
    """Set every BatchNorm's running statistics from smooth and noisy random images (then eval mode).

    With random convolutions and the default statistics (mean 0, variance 1) activations grow
    layer after layer to ~1e10 and FID overflows; calibrated, features are O(1) as a real network's.
    """
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
    net.train()
    for _ in range(batches):
        smooth = nn.functional.interpolate(torch.rand(n // 2, 3, 8, 8) * 2 - 1, size=(299, 299), mode="bilinear")
        net(torch.cat([smooth, torch.rand(n - n // 2, 3, 299, 299) * 2 - 1]))  # smooth and noisy images
    net.eval()


def save_inception(folder: str | Path, seed: int = 0) -> Path:
    import torchvision

    torch.manual_seed(seed)
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=True)
    _calibrate_batchnorms(net)
    path = Path(folder) / WEIGHTS["inception"][0]
    path.parent.mkdir(parents=True, exist_ok=True)
    scripted = torch.jit.script(_StandInInception(net).eval())
    note = NOTE.format(what="torchvision Inception-v3 architecture in clean-fid's TorchScript interface")
    torch.jit.save(scripted, str(path), _extra_files={KEY: note})
    return path


def save_alexnet(folder: str | Path, seed: int = 0) -> Path:
    import torchvision

    torch.manual_seed(seed)
    state = {k: v for k, v in torchvision.models.alexnet(weights=None).state_dict().items()
             if k.startswith("features.")}
    state[KEY] = NOTE.format(what="torchvision AlexNet convolutional trunk for LPIPS")
    path = Path(folder) / WEIGHTS["lpips-alex"][0]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path
