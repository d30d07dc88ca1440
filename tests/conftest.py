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


# ----------------------------------------------------------------------------- Ray and MLflow
def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def sweep_clip(tmp_path_factory):
    """A 6 s synthetic clip: the tiny preset holds out 3 windows of 8 frames."""
    from lmgan.data.demo import make_demo_video
    path = tmp_path_factory.mktemp("clips") / "clip6s.mp4"
    make_demo_video(path, seconds=6.0)
    return path


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """A real two-node Ray cluster on this machine: `ray start --head` plus a second
    `ray start --address=...`, one CPU each, token authentication on. Yields (address, env)."""
    import secrets
    import subprocess
    import sys
    from pathlib import Path

    tmp = tmp_path_factory.mktemp("ray")
    token = tmp / "token"
    token.write_text(secrets.token_hex(32))
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
           "RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0"}
    ray = str(Path(sys.executable).parent / "ray")
    port, metrics = free_port(), [free_port(), free_port()]
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus=1", "--num-gpus=0", "--disable-usage-stats"]
    subprocess.run([ray, "start", "--head", f"--port={port}", "--include-dashboard=false",
                    f"--metrics-export-port={metrics[0]}", *common],
                   env=env, check=True, capture_output=True, timeout=120)
    try:
        subprocess.run([ray, "start", f"--address={address}", f"--metrics-export-port={metrics[1]}",
                        *common], env=env, check=True, capture_output=True, timeout=120)
        yield {"address": address, "env": env, "metrics_ports": metrics}
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)
