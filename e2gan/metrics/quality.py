"""Image-quality metrics: FID/KID on backbone features, set-level PSNR, SSIM, LPIPS and a proxy.

FID and KID use clean-fid's own maths on features we extract ourselves: clean-fid's
`compute_fid`/`compute_kid` default to CUDA and 12 workers, download weights, and KID takes no
custom extractor. Every number comes with a `protocol` saying how it was produced.
"""
from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from functools import lru_cache

import numpy as np
import torch

from e2gan.errors import InputError
from e2gan.metrics.features import check_images, get_backbone, lite_normalise, load_effnet_lite0
from e2gan.metrics.frechet import feature_matrix, frechet_distance, one_blas_thread
from e2gan.metrics.weights import find_weights, lpips_linear_weights, sha256
from e2gan.stand_in import weights_note

PROXY_NAME = "effnet-lite0-perceptual"
_CHUNK = 32  # images per forward pass: bounds memory at 256²


def fid_from_features(a, b, method: str = "eigvals") -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [N,dim].

    Mean and covariance exactly as clean-fid's `fid_from_feats`. method='cleanfid' then calls
    `cleanfid.fid.frechet_distance` (scipy sqrtm: seconds at 1280-2048 dims on a small CPU);
    'eigvals' (default) is `frechet.frechet_distance`: the same quantity from Σ sqrt(eig(S1 S2)),
    or with fewer images than dimensions from the N×N cross Gram matrix (an Inception FID of a few
    hundred images: milliseconds instead of a 2048×2048 eigendecomposition); equal to clean-fid's
    value to ~1e-7 relative (tested).
    """
    if method not in ("eigvals", "cleanfid"):
        raise InputError(f"FID method {method!r}", "fid_from_features", "'eigvals' or 'cleanfid'")
    a, b = feature_matrix(a), feature_matrix(b)
    if method == "eigvals":
        return frechet_distance(a, b)
    from cleanfid.fid import frechet_distance as cleanfid_frechet_distance
    from scipy.linalg import LinAlgWarning

    with one_blas_thread(), warnings.catch_warnings():  # singular covariances are the norm when N < dim
        warnings.simplefilter("ignore", LinAlgWarning)
        mu1, s1 = np.mean(a, axis=0), np.cov(a, rowvar=False)
        mu2, s2 = np.mean(b, axis=0), np.cov(b, rowvar=False)
        value = float(np.real(cleanfid_frechet_distance(mu1, s1, mu2, s2)))
    # Tiny negatives are round-off on a distance that is >= 0 by definition.
    return max(value, 0.0)


def effective_kid_subset_size(n_a: int, n_b: int, subset_size: int = 1000) -> int:
    """The subset size KID really uses: clamped to the smaller set (recorded in the protocol)."""
    return min(subset_size, n_a, n_b)


def kid_from_features(a, b, num_subsets: int = 100, subset_size: int = 1000,
                      seed: int = 0) -> tuple[float, float | None]:
    """(mean, std) of the unbiased polynomial-kernel MMD² over random subsets.

    Each subset value is clean-fid's `kernel_distance` with one subset; their mean is exactly
    what clean-fid reports. When the subset size is clamped to N for both sets, every subset is
    the whole set: one draw is computed and std is None (a spread of one value would read 0, a
    precision that was never measured; the paired bootstrap gives KID's CI then).
    """
    from cleanfid.fid import kernel_distance

    a, b = feature_matrix(a), feature_matrix(b)
    m = effective_kid_subset_size(len(a), len(b), subset_size)
    if m == len(a) == len(b):
        num_subsets = 1  # all subsets would be the same set in another order
    state = np.random.get_state()  # kernel_distance draws from numpy's global RNG
    try:
        np.random.seed(seed)
        with one_blas_thread():
            values = [kernel_distance(a, b, num_subsets=1, max_subset_size=m) for _ in range(num_subsets)]
    finally:
        np.random.set_state(state)
    return float(np.mean(values)), (float(np.std(values)) if num_subsets > 1 else None)


def _unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0,255] or float [0,1] images -> float32 [0,1]."""
    if images.dtype == torch.uint8:
        return images.float() / 255.0
    return images.float()


def _check_pair(outputs: torch.Tensor, targets: torch.Tensor, where: str) -> None:
    if outputs.shape != targets.shape or outputs.ndim != 4:
        raise InputError(f"outputs {tuple(outputs.shape)} vs targets {tuple(targets.shape)}", where,
                         "paired image batches of the same shape [N,C,H,W]")


def set_psnr(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Set-level PSNR in dB from the mean MSE over the whole set (images in [0,1], or uint8).

    Not the mean of per-image PSNRs, which unchanged images (MSE≈0) dominate. Identical sets
    return float('inf'); note that json writes it as `Infinity`.
    """
    _check_pair(outputs, targets, "set_psnr")
    mse = torch.mean((_unit(outputs).double() - _unit(targets).double()) ** 2).item()
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def mean_ssim(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean per-image SSIM (torchmetrics, 11×11 Gaussian window σ=1.5, data_range=1)."""
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim

    _check_pair(outputs, targets, "mean_ssim")
    values = [ssim(_unit(o), _unit(t), data_range=1.0, reduction="none")
              for o, t in zip(outputs.split(_CHUNK), targets.split(_CHUNK))]
    return float(torch.cat(values).double().mean())


@lru_cache(maxsize=4)
def _lpips_model(net: str, trunk_file: str, device: str):
    import lpips
    import torchvision

    # pnet_rand=True stops lpips asking torchvision to download the ImageNet trunk;
    # pretrained=True + model_path loads the calibrated linear layers that ship with lpips.
    model = lpips.LPIPS(pretrained=True, net=net, pnet_rand=True, verbose=False,
                        model_path=str(lpips_linear_weights(net)))
    trunk = {"alex": torchvision.models.alexnet, "vgg": torchvision.models.vgg16}[net](weights=None)
    state = torch.load(trunk_file, map_location="cpu", weights_only=True)
    # LPIPS uses only the convolutional part; strict on it, so a wrong file fails loudly.
    trunk.features.load_state_dict({k[9:]: v for k, v in state.items() if k.startswith("features.")})
    for _, part in model.net.named_children():  # slice1..slice5 hold torchvision's feature layers
        for idx, layer in part.named_children():
            layer.load_state_dict(trunk.features[int(idx)].state_dict())
    return model.eval().requires_grad_(False).to(device)


def lpips_distance(outputs: torch.Tensor, targets: torch.Tensor, net: str = "alex",
                   device: str = "cpu") -> float:
    """Mean LPIPS v0.1 (lpips package) over image pairs; weights found on disk, never downloaded."""
    return float(lpips_per_image(outputs, targets, net, device).double().mean())


@torch.no_grad()
def lpips_per_image(outputs: torch.Tensor, targets: torch.Tensor, net: str = "alex",
                    device: str = "cpu") -> torch.Tensor:
    """LPIPS per image pair [N] (what the paired bootstrap resamples)."""
    if net not in ("alex", "vgg"):
        raise InputError(f"LPIPS net {net!r}", "lpips_distance", "'alex' or 'vgg'")
    _check_pair(outputs, targets, "lpips_distance")
    # Looked up on every call (cheap) so a model is cached per weights file, never stale.
    model = _lpips_model(net, str(find_weights(f"lpips-{net}")), device)
    values = [model(_unit(o).to(device), _unit(t).to(device), normalize=True).flatten().cpu()
              for o, t in zip(outputs.split(_CHUNK), targets.split(_CHUNK))]
    return torch.cat(values)


def proxy_perceptual_distance(outputs: torch.Tensor, targets: torch.Tensor, device: str = "cpu") -> float:
    """Mean of :func:`proxy_per_image` over image pairs."""
    return float(proxy_per_image(outputs, targets, device).double().mean())


@torch.no_grad()
def proxy_per_image(outputs: torch.Tensor, targets: torch.Tensor, device: str = "cpu") -> torch.Tensor:
    """'effnet-lite0-perceptual' per image pair [N]: an LPIPS-like PROXY, not LPIPS.

    EfficientNet-Lite0 (ImageNet) block outputs at five depths, at the images' own resolution;
    each feature vector is unit-normalised over channels, the squared distance is averaged over
    positions, then over layers (no learned weights), then over images. 0 for identical images.
    """
    _check_pair(outputs, targets, PROXY_NAME)
    net = load_effnet_lite0(device)
    values = []
    for o, t in zip(outputs.split(_CHUNK), targets.split(_CHUNK)):
        fo = net.taps(lite_normalise(_unit(o).to(device) * 255.0))
        per_layer = [((_unit_norm(a) - b) ** 2).sum(1).mean((1, 2)) for a, b in zip(fo, _target_taps(net, t, device))]
        values.append(torch.stack(per_layer).mean(0).cpu())
    return torch.cat(values)


# Every run of a concept is scored against the same targets: their unit-normalised taps are kept
# per process (least recently used dropped past this many bytes) instead of recomputed per run.
TAP_MEMO_BYTES = 256 << 20
_TAP_MEMO: OrderedDict = OrderedDict()


def _target_taps(net, targets: torch.Tensor, device) -> list[torch.Tensor]:
    """``_unit_norm`` of ``net.taps`` of one chunk of targets, remembered by the chunk's bytes, the
    net and the thread count (a reduction's rounding may follow the threads): a hit is the same tensors."""
    import hashlib

    digest = hashlib.sha256(targets.contiguous().cpu().numpy().tobytes()).hexdigest()
    key = (id(net), str(device), torch.get_num_threads(), str(targets.dtype), tuple(targets.shape), digest)
    hit = _TAP_MEMO.get(key)
    if hit is not None:
        _TAP_MEMO.move_to_end(key)
        return hit[1]
    taps = [_unit_norm(b) for b in net.taps(lite_normalise(_unit(targets).to(device) * 255.0))]
    size = sum(x.numel() * x.element_size() for x in taps)
    _TAP_MEMO[key] = (net, taps, size)  # the net is held so that its id is not reused while the entry lives
    while len(_TAP_MEMO) > 1 and sum(v[2] for v in _TAP_MEMO.values()) > TAP_MEMO_BYTES:
        _TAP_MEMO.popitem(last=False)
    return taps


def _unit_norm(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return x / (x.pow(2).sum(1, keepdim=True).sqrt() + eps)  # as lpips.normalize_tensor


def lpips_available(net: str = "alex") -> bool:
    try:
        find_weights(f"lpips-{net}")
        return True
    except InputError:
        return False


def evaluate_images(outputs: torch.Tensor, targets: torch.Tensor, *, backbone: str = "effnet-lite0",
                    perceptual: str = "auto", reference: str = "teacher-targets/test",
                    device: str = "cpu", kid_subsets: int = 100, kid_subset_size: int = 1000,
                    keep: dict | None = None, target_features=None) -> dict:
    """All quality metrics for paired uint8 images [N,3,H,W], with the protocol that produced them.

    perceptual: 'auto' (LPIPS-alex when its weights are on disk, else the proxy), 'lpips-alex',
    'lpips-vgg', 'proxy' or 'none'. keep: a dict that receives what was computed on the way
    (backbone features of outputs and targets, per-image perceptual distances) so per-image
    scores cost no second pass. target_features: the targets' features when already known (the
    targets are the same for every run of a concept: see ``per_image.FeatureCache``).
    """
    check_images(outputs, "evaluate_images outputs")
    check_images(targets, "evaluate_images targets")
    _check_pair(outputs, targets, "evaluate_images")
    choices = ("auto", "lpips-alex", "lpips-vgg", "proxy", "none")
    if perceptual not in choices:
        raise InputError(f"perceptual={perceptual!r}", "evaluate_images", f"one of {list(choices)}")
    if perceptual == "auto":
        perceptual = "lpips-alex" if lpips_available("alex") else "proxy"

    extractor = get_backbone(backbone, device)
    fa = extractor(outputs)
    fb = extractor(targets) if target_features is None else torch.as_tensor(target_features, dtype=torch.float64)
    kid_mean, kid_std = kid_from_features(fa, fb, kid_subsets, kid_subset_size)
    metrics = {"fid": fid_from_features(fa, fb), "kid_mean": kid_mean, "kid_std": kid_std,
               "psnr": set_psnr(outputs, targets), "ssim": mean_ssim(outputs, targets)}
    perceptual_weights, per_image = None, None
    if perceptual.startswith("lpips-"):
        per_image = lpips_per_image(outputs, targets, perceptual.split("-")[1], device)
        perceptual_name = perceptual
        perceptual_weights = lpips_weights_record(perceptual.split("-")[1])
    elif perceptual == "proxy":
        per_image = proxy_per_image(outputs, targets, device)
        perceptual_name = f"{PROXY_NAME} (proxy)"
    else:
        perceptual_name = None
    if per_image is not None:
        metrics["perceptual"] = float(per_image.double().mean())
    if keep is not None:
        keep.update(features_outputs=fa, features_targets=fb, perceptual=per_image)
    n, _, h, w = outputs.shape
    # FID at small N is strongly biased upwards: compare only numbers with the same n and backbone.
    return {"metrics": metrics, "protocol": {
        "backbone": extractor.describe(), "fid_mode": "clean", "reference_set": reference, "n": n,
        "resolution": h if h == w else [h, w],
        "kid_subset_size": effective_kid_subset_size(n, n, kid_subset_size),
        "kid_subset_size_requested": kid_subset_size,
        "kid_subsets": 1 if kid_subset_size >= n else kid_subsets,
        "psnr": "set-level, from the mean MSE over all images",
        "ssim": "torchmetrics, gaussian 11, data_range=1",
        "perceptual": perceptual_name, **({"perceptual_weights": perceptual_weights} if perceptual_weights else {})}}


def lpips_weights_record(net: str) -> dict:
    """Which trunk file LPIPS used (and whether it is a random stand-in); the linear layers ship with lpips."""
    trunk = find_weights(f"lpips-{net}")
    note = weights_note(trunk)
    return {"trunk": str(trunk), "trunk_sha256": sha256(trunk)[:12], "linear": "lpips 0.1.4 v0.1 (packaged)",
            **({"stand_in": note} if note else {})}
