"""Shared fixtures: an isolated cache, a short real demo clip, a random VGG16 file, a tiny run.

Everything is real (PyAV files, torchaudio features, the training loop); only the VGG16 ImageNet
weights, which cannot be downloaded here, are replaced by a randomly initialised state dict saved
in torchvision's format (DESIGN §7).
"""

import os
import tempfile

_scratch = tempfile.mkdtemp(prefix="lmgan-tests-")
os.environ["LMGAN_CACHE"] = os.path.join(_scratch, "cache")      # no user cache leaks in
os.environ["TORCH_HOME"] = os.path.join(_scratch, "torch")
os.environ["LMGAN_DATA"] = os.path.join(_scratch, "data")
os.environ.pop("LMGAN_VGG16_WEIGHTS", None)
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")   # numpy's BLAS threads fight torch's on 2 cores

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: intra-op threads only add sync overhead and stall on a busy 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def demo_clip(tmp_path_factory):
    """A 4 s synthetic clip: 64 training + 16 held-out frames at 20 fps."""
    from lmgan.data.demo import make_demo_video
    path = tmp_path_factory.mktemp("clips") / "demo4s.mp4"
    make_demo_video(path, seconds=4.0)
    return path


@pytest.fixture(scope="session")
def vgg_path(tmp_path_factory):
    """A randomly initialised VGG16 state dict in torchvision's exact format (the real file's keys)."""
    import torchvision
    path = tmp_path_factory.mktemp("weights") / "vgg16-random.pth"
    torch.save(torchvision.models.vgg16(weights=None).state_dict(), path)
    return path


def train_cli(*args):
    from lmgan.cli import main
    return main(["train", "--quiet", *map(str, args)])


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, demo_clip, vgg_path):
    """A finished 20-iteration run of the tiny preset with the perceptual loss on."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    rc = train_cli("--video", demo_clip, "--out", out, "--preset", "tiny",
                   "--set", "lambda_pl=10", "--set", f"vgg_weights={vgg_path}")
    assert rc == 0
    return out
