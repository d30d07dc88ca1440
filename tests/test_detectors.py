"""FVD / FID feature extractors end to end through the real loading code.

Small TorchScript modules with the real files' forward signatures stand in for the pretrained
detectors (which cannot be downloaded here). Their outputs report what they received (value
range, dtype, size, flags, batch size, per-frame means), so the tests check the exact protocol:
uint8 0..255 input, StyleGAN-V's rescale/resize flags, clip cutting, batching, frame order.
"""

import dataclasses
import socket

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from lmgan import weights
from lmgan.errors import LmganError
from lmgan.metrics.detectors import I3DFeatures, InceptionFeatures

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning")

# feature columns of the fakes
MIN, MAX, MEAN, C, T, H, W, BATCH, UINT8, RESCALE, RESIZE, FEATURES = range(12)
FRAMES = 16   # per-frame means start here


def _stats(x: Tensor, t: int, uint8: bool, rescale: bool, resize: bool, features: bool) -> Tensor:
    """The columns MIN .. FEATURES (TorchScript cannot read the module's constants)."""
    n = x.shape[0]
    flat = x.reshape(n, -1)
    cols = [float(x.shape[1]), float(t), float(x.shape[-2]), float(x.shape[-1]), float(n),
            1.0 if uint8 else 0.0, 1.0 if rescale else 0.0, 1.0 if resize else 0.0, 1.0 if features else 0.0]
    return torch.cat([flat.min(1)[0][:, None], flat.max(1)[0][:, None], flat.mean(1)[:, None],
                      torch.tensor(cols).expand(n, len(cols))], 1)


class FakeI3D(torch.nn.Module):
    """forward() of StyleGAN-V's i3d_torchscript.pt; rescale/resize do what the real file does."""

    def forward(self, x: Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> Tensor:
        uint8 = x.dtype == torch.uint8
        x = x.float()
        if rescale:
            x = x / 255 * 2 - 1
        if resize:
            x = F.interpolate(x, size=(x.shape[2], 224, 224), mode="trilinear", align_corners=False)
        n, t = x.shape[0], x.shape[2]
        stats = _stats(x, t, uint8, rescale, resize, return_features)
        frames = x.mean(dim=(1, 3, 4))
        pad = torch.zeros(n, 16 - stats.shape[1])
        return torch.cat([stats, pad, frames, torch.zeros(n, 400 - 16 - t)], 1)


class FakeInception(torch.nn.Module):
    """forward() of NVlabs' inception-2015-12-05.pt: 2048 pool features or 1008 logits."""

    def forward(self, img: Tensor, return_features: bool = False) -> Tensor:
        x = img.float()
        stats = _stats(x, 0, img.dtype == torch.uint8, False, False, return_features)
        out = torch.cat([stats, torch.zeros(x.shape[0], 2048 - stats.shape[1])], 1)
        return out if return_features else out[:, :1008]


def save(module, path):
    torch.jit.save(torch.jit.script(module), str(path))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("detectors")
    return save(FakeI3D(), d / "i3d_torchscript.pt"), save(FakeInception(), d / "inception-2015-12-05.pt")


@pytest.fixture(autouse=True)
def env(files, tmp_path, monkeypatch):
    monkeypatch.setenv("LMGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("LMGAN_I3D_WEIGHTS", str(files[0]))
    monkeypatch.setenv("LMGAN_INCEPTION_WEIGHTS", str(files[1]))


def ramp_clips(n, t, h=12, w=20):
    """Frame f of clip i is the constant (i * t + f) / (n * t) * 2 − 1: every frame tells where it is from."""
    v = torch.arange(n * t, dtype=torch.float32).reshape(n, t) / (n * t) * 2 - 1
    return v[:, :, None, None, None].expand(n, t, 3, h, w).contiguous()


def as_detector_sees(v):
    """[-1, 1] → uint8 as StyleGAN-V quantises → the [-1, 1] the network sees after rescale."""
    return np.floor(np.clip(v * 127.5 + 128, 0, 255)) / 255 * 2 - 1


def test_i3d_cuts_windows_into_16_frame_clips_and_batches_them():
    clips = ramp_clips(5, 40)                       # 2 clips of 16 per window, 8 frames dropped
    f = I3DFeatures("cpu")(clips)
    assert f.shape == (10, 400) and f.dtype == np.float64
    assert f[:, BATCH].tolist() == [8] * 8 + [2] * 2   # 8 clips per detector call
    v = clips[:, :, 0, 0, 0].numpy()
    expected = np.stack([v[i, j * 16:(j + 1) * 16] for i in range(5) for j in range(2)])
    np.testing.assert_allclose(f[:, FRAMES:FRAMES + 16], as_detector_sees(expected), atol=1e-6)
    assert f[:, FRAMES + 16:].max() == 0            # frames 32..39 of each window never reach it


def test_i3d_gets_stylegan_v_input():
    clips = torch.zeros(2, 16, 3, 12, 20)
    clips[0, :, :, :6] = -1.0
    clips[0, :, :, 6:] = 1.0
    f = I3DFeatures("cpu")(clips)
    assert (f[:, UINT8] == 1).all() and (f[:, RESCALE] == 1).all() and (f[:, RESIZE] == 1).all()
    assert (f[:, FEATURES] == 1).all()
    assert (f[:, C] == 3).all() and (f[:, T] == 16).all() and (f[:, H] == 224).all() and (f[:, W] == 224).all()
    assert f[0, MIN] == -1 and f[0, MAX] == 1          # -1 → 0 → -1 and 1 → 255 → 1
    assert f[1, MIN] == f[1, MAX] == pytest.approx(128 / 255 * 2 - 1, abs=1e-6)   # 0 → 128, as in StyleGAN-V
    clipped = I3DFeatures("cpu")(torch.full((1, 16, 3, 8, 8), 3.0))
    assert clipped[0, MAX] == 1                         # out-of-range values saturate


def test_i3d_rejects_windows_shorter_than_a_clip():
    with pytest.raises(LmganError, match="shorter than the FVD clip length"):
        I3DFeatures("cpu")(torch.zeros(2, 10, 3, 8, 8))
    assert I3DFeatures("cpu", clip_len=8)(torch.zeros(2, 10, 3, 8, 8)).shape == (2, 400)
    with pytest.raises(LmganError, match=r"\[N, T, 3, H, W\]"):
        I3DFeatures("cpu")(torch.zeros(16, 3, 8, 8))


def test_inception_embeds_every_frame_as_uint8_at_its_own_size():
    clips = ramp_clips(3, 5, h=20, w=24)
    ext = InceptionFeatures("cpu")
    ext.batch = 4
    f = ext(clips)
    assert f.shape == (15, 2048) and f.dtype == np.float64
    assert f[:, BATCH].tolist() == [4] * 12 + [3] * 3
    assert (f[:, UINT8] == 1).all() and (f[:, FEATURES] == 1).all()
    assert (f[:, C] == 3).all() and (f[:, H] == 20).all() and (f[:, W] == 24).all()   # it resizes itself
    expected = np.floor(np.clip(clips[:, :, 0, 0, 0].numpy().reshape(-1) * 127.5 + 128, 0, 255))
    np.testing.assert_array_equal(f[:, MEAN], expected)   # frame order: window-major, time-minor
    assert f[0, MIN] == 0 and InceptionFeatures("cpu")(torch.ones(1, 1, 3, 4, 4))[0, MAX] == 255


def test_extractors_are_deterministic():
    g = torch.Generator().manual_seed(0)
    clips = torch.rand(3, 16, 3, 16, 16, generator=g) * 2 - 1
    for make in (lambda: I3DFeatures("cpu"), lambda: InceptionFeatures("cpu")):
        a, b = make(), make()
        np.testing.assert_array_equal(a(clips), a(clips))
        np.testing.assert_array_equal(a(clips), b(clips))


def test_explicit_path_beats_the_environment(files, monkeypatch, tmp_path):
    monkeypatch.setenv("LMGAN_I3D_WEIGHTS", str(tmp_path / "nowhere.pt"))
    assert I3DFeatures("cpu", explicit_path=str(files[0]))(torch.zeros(1, 16, 3, 8, 8)).shape == (1, 400)


def test_missing_weights_are_one_line_naming_file_url_and_variable(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for name, cls in (("i3d", I3DFeatures), ("inception", InceptionFeatures)):
        w = dataclasses.replace(weights.WEIGHTS[name], url=f"http://127.0.0.1:{port}/{name}")
        monkeypatch.setitem(weights.WEIGHTS, name, w)
        monkeypatch.delenv(w.env)
        with pytest.raises(LmganError) as e:
            cls("cpu")
        msg = str(e.value)
        assert "\n" not in msg and w.filename in msg and w.url in msg and w.env in msg


def test_the_wrong_detector_file_is_named(files, monkeypatch):
    monkeypatch.setenv("LMGAN_I3D_WEIGHTS", str(files[1]))      # the Inception file as I3D
    with pytest.raises(LmganError, match="is not the I3D"):
        I3DFeatures("cpu")
