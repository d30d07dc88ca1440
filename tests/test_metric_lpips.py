"""LPIPS end to end through the real loading code, with randomly initialised torchvision backbones.

The real AlexNet / VGG16 ImageNet files cannot be downloaded here; random state dicts saved in
torchvision's exact format stand in (docs/evaluation.md, pretrained weights). The numbers they give are not LPIPS and are
only checked for the properties of a distance, never logged or reported.
"""

import urllib.error
import urllib.request
from pathlib import Path

import lpips
import pytest
import torch
import torchvision

from lmgan import weights
from lmgan.errors import LmganError
from lmgan.metrics.lpips_net import LPIPS






@pytest.fixture(scope="module")
def alex_path(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "alexnet-random.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    return path


@pytest.fixture
def offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def frames(seed, n=3, s=64):
    return torch.rand(n, 3, s, s, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def check_distance(metric):
    a, b = frames(1), frames(2)
    same = metric.per_frame(a, a)
    assert same.shape == (3,) and torch.all(same.abs() < 1e-6)
    d = metric.per_frame(a, (a + 0.2 * (b - a)))
    assert d.shape == (3,) and torch.all(d > 1e-4)
    assert torch.allclose(metric.per_frame(a, b), metric.per_frame(b, a), rtol=1e-5, atol=1e-7)
    assert torch.all(metric.per_frame(a, b) > d)      # further away → larger


def test_alexnet_from_environment_variable(alex_path, monkeypatch):
    monkeypatch.setenv("LMGAN_ALEXNET_WEIGHTS", str(alex_path))
    check_distance(LPIPS())


def test_every_backbone_and_linear_parameter_comes_from_the_files(alex_path):
    """The torchvision features.N.* tensors land in lpips' net.sliceK.N.*; v0.1 lin layers from the wheel."""
    metric = LPIPS("alex", "cpu", alex_path)
    tv = torch.load(alex_path, weights_only=True)
    sd = metric.model.state_dict()
    for slice_, idx in [(1, 0), (2, 3), (3, 6), (4, 8), (5, 10)]:
        assert torch.equal(sd[f"net.slice{slice_}.{idx}.weight"], tv[f"features.{idx}.weight"])
        assert torch.equal(sd[f"net.slice{slice_}.{idx}.bias"], tv[f"features.{idx}.bias"])
    lin_path = Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
    lin = torch.load(lin_path, map_location="cpu", weights_only=True)
    for k, v in lin.items():
        assert torch.equal(sd[k], v)


def test_features_only_state_dict_is_enough(alex_path, tmp_path):
    full = torch.load(alex_path, weights_only=True)
    path = tmp_path / "alex-features.pth"
    torch.save({k: v for k, v in full.items() if k.startswith("features.")}, path)
    a, b = frames(3), frames(4)
    assert torch.equal(LPIPS("alex", "cpu", path).per_frame(a, b),
                       LPIPS("alex", "cpu", alex_path).per_frame(a, b))


def test_vgg16_full_torchvision_file(vgg_path):
    check_distance(LPIPS("vgg", "cpu", vgg_path))


def test_missing_weights_one_line_naming_file_url_and_variable(monkeypatch, offline):
    monkeypatch.delenv("LMGAN_ALEXNET_WEIGHTS", raising=False)
    w = weights.WEIGHTS["alexnet"]
    with pytest.raises(LmganError) as e:
        LPIPS("alex")
    msg = str(e.value)
    assert "\n" not in msg
    assert w.filename in msg and w.url in msg and "LMGAN_ALEXNET_WEIGHTS" in msg


def test_wrong_file_is_refused(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(LmganError, match="features.0.weight"):
        LPIPS("alex", "cpu", path)
    with pytest.raises(LmganError, match="alex, vgg"):
        LPIPS("squeeze", "cpu", path)


def test_functional_api_identity_values(alex_path, monkeypatch):
    """lmgan.metrics.{ssim, psnr, lpips, frechet_distance}: plain functions returning floats."""
    import numpy as np

    import lmgan.metrics as M
    monkeypatch.setenv("LMGAN_ALEXNET_WEIGHTS", str(alex_path))
    a, b = frames(0), frames(1)
    assert M.ssim(a, a) == pytest.approx(1.0) and M.ssim(a, b) < 1
    assert M.lpips(a, a) == pytest.approx(0.0, abs=1e-6) and M.lpips(a, b) > 0
    assert isinstance(M.psnr(a, b), float)
    mu, sigma = np.zeros(4), np.eye(4)
    assert M.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)
    assert M.frechet_distance(mu + 1, sigma, mu, sigma) == pytest.approx(4.0)
