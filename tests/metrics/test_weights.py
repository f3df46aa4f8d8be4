"""Weight lookup: E2GAN_WEIGHTS first, then the library caches; missing -> InputError, no network."""
import hashlib
import urllib.request

import pytest
import requests
import torch
import torch.hub

from e2gan.errors import InputError
from e2gan.metrics import weights


class NetworkUsed(AssertionError):
    pass


@pytest.fixture
def offline_empty_home(tmp_path, monkeypatch):
    """HOME, TORCH_HOME, XDG_CACHE_HOME, E2GAN_WEIGHTS and clean-fid's cache all empty; network trapped."""
    for var, sub in [("HOME", "home"), ("TORCH_HOME", "torch"), ("XDG_CACHE_HOME", "xdg"),
                     ("E2GAN_WEIGHTS", "weights")]:
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(weights, "CLEANFID_DIR", tmp_path / "cleanfid")
    calls = []

    def trap(*args, **kwargs):
        calls.append(args[:1])
        raise NetworkUsed(f"network access attempted: {args[:1]}")

    monkeypatch.setattr(urllib.request, "urlopen", trap)
    monkeypatch.setattr(requests, "get", trap)
    monkeypatch.setattr(requests.Session, "get", trap)
    monkeypatch.setattr(torch.hub, "download_url_to_file", trap)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", trap)
    return tmp_path, calls


@pytest.mark.parametrize("name, file", [("inception", "inception-2015-12-05.pt"),
                                        ("lpips-alex", "alexnet-owt-7be5be79.pth"),
                                        ("lpips-vgg", "vgg16-397923af.pth")])
def test_missing_weights_name_the_file_and_never_download(offline_empty_home, name, file):
    tmp, calls = offline_empty_home
    with pytest.raises(InputError) as err:
        weights.find_weights(name)
    msg = str(err.value)
    assert file in msg and "E2GAN_WEIGHTS" in msg and "https://" in msg
    assert str(tmp / "weights" / file) in msg  # the user's folder was looked at first
    assert calls == []


def test_missing_inception_backbone_raises_before_any_download(offline_empty_home):
    from e2gan.metrics.features import get_backbone

    with pytest.raises(InputError, match="inception-2015-12-05.pt"):
        get_backbone("inception")
    assert offline_empty_home[1] == []


def test_missing_alexnet_lpips_raises_before_any_download(offline_empty_home):
    from e2gan.metrics.quality import lpips_available, lpips_distance

    x = torch.zeros(1, 3, 16, 16)
    with pytest.raises(InputError, match="alexnet-owt-7be5be79.pth"):
        lpips_distance(x, x, net="alex")
    assert lpips_available("alex") is False
    assert offline_empty_home[1] == []


def test_e2gan_weights_folder_wins_over_torch_cache(offline_empty_home):
    tmp, _ = offline_empty_home
    hub = tmp / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "alexnet-owt-7be5be79.pth").write_bytes(b"hub")
    assert weights.find_weights("lpips-alex") == hub / "alexnet-owt-7be5be79.pth"
    (tmp / "weights" / "alexnet-owt-7be5be79.pth").write_bytes(b"mine")
    assert weights.find_weights("lpips-alex") == tmp / "weights" / "alexnet-owt-7be5be79.pth"


def test_inception_found_in_cleanfid_cache(offline_empty_home):
    tmp, _ = offline_empty_home
    (tmp / "cleanfid").mkdir()
    (tmp / "cleanfid" / "inception-2015-12-05.pt").write_bytes(b"x")
    assert weights.find_weights("inception") == tmp / "cleanfid" / "inception-2015-12-05.pt"


def test_offline_proxy_and_lpips_linear_layers_ship_with_packages(offline_empty_home):
    path = weights.find_weights("effnet-lite0")
    assert path.name == "efficientnet-lite0-57934424.pth" and path.stat().st_size > 10_000_000
    assert weights.lpips_linear_weights("alex").name == "alex.pth"
    assert weights.lpips_linear_weights("vgg").is_file()


def test_unknown_name_and_sha256(tmp_path):
    with pytest.raises(InputError, match="one of"):
        weights.find_weights("resnet")
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    assert weights.sha256(f) == hashlib.sha256(b"abc").hexdigest()
