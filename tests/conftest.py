"""Shared fixtures: an isolated cache, a short real demo clip, a random VGG16 file, a tiny run.

Everything is real (PyAV files, torchaudio features, the training loop); only the VGG16 ImageNet
weights, which cannot be downloaded here, are replaced by a randomly initialised state dict saved
in torchvision's format (docs/evaluation.md, pretrained weights).
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

from support import build_report_store, copy_store, empty_store, free_port, train_cli  # noqa: E402

# One intra-op thread for every test: the tensors are tiny, and a second thread only waits for a
# busy core (a training test took 169 s instead of 7.6 s while another process used one core).
torch.set_num_threads(1)
torch.set_num_interop_threads(1)


def _clip(tmp_path_factory, name: str, seconds: float):
    from lmgan.data.demo import make_demo_video
    path = tmp_path_factory.mktemp("clips") / name
    make_demo_video(path, seconds=seconds)
    return path


@pytest.fixture(scope="session")
def demo_clip(tmp_path_factory):
    """A 4 s synthetic clip: 64 training + 16 held-out frames at 20 fps."""
    return _clip(tmp_path_factory, "demo4s.mp4", 4.0)


@pytest.fixture(scope="session")
def vgg_path(tmp_path_factory):
    """A randomly initialised VGG16 state dict in torchvision's exact format (the real file's keys)."""
    import torchvision
    path = tmp_path_factory.mktemp("weights") / "vgg16-random.pth"
    torch.save(torchvision.models.vgg16(weights=None).state_dict(), path)
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, demo_clip, vgg_path):
    """A finished 20-iteration run of the tiny preset with the perceptual loss on."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    rc = train_cli("--video", demo_clip, "--out", out, "--preset", "tiny",
                   "--set", "lambda_pl=10", "--set", f"vgg_weights={vgg_path}")
    assert rc == 0
    return out


@pytest.fixture
def http_server(tmp_path):
    """A local HTTP server on 127.0.0.1: (the folder it serves, its base URL)."""
    import functools
    import http.server
    import threading

    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


# ----------------------------------------------------------------------------- Ray and MLflow
@pytest.fixture(scope="session")
def sweep_clip(tmp_path_factory):
    """A 6 s synthetic clip: the tiny preset holds out 3 windows of 8 frames."""
    return _clip(tmp_path_factory, "clip6s.mp4", 6.0)


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


@pytest.fixture(scope="session")
def mlflow_store_template(tmp_path_factory):
    """An empty MLflow SQLite store, its schema migrated once (2–3 s a store): sweeps that log to
    `<runs>/mlflow.db` start from a copy (`fresh_store`, `report_store`)."""
    return empty_store(tmp_path_factory.mktemp("mlflow-template") / "mlflow.db")


@pytest.fixture
def fresh_store(mlflow_store_template, tmp_path):
    """tmp_path as a runs folder whose MLflow store exists, empty (copied from the template)."""
    return copy_store(mlflow_store_template, tmp_path)


@pytest.fixture(scope="module")
def report_store(tmp_path_factory, mlflow_store_template):
    """A real MLflow store holding finished sweeps for `lmgan report` (support.build_report_store);
    one per test module, which may add to it."""
    return build_report_store(copy_store(mlflow_store_template, tmp_path_factory.mktemp("mlflow")))


@pytest.fixture(scope="session")
def mlflow_server():
    """An `mlflow server` on loopback with a PostgreSQL backend store (a throwaway cluster run as
    the postgres user) and artifact serving. Skips, saying why, only if PostgreSQL cannot be had."""
    import pwd
    import shutil
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    from tests.services import ensure, postgres_bin

    why = ensure("postgresql")
    if why:
        pytest.skip(why)
    pg = postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="lmgan-pg-", dir="/tmp"))
    root.chmod(0o755)
    as_pg: list[str] = []
    if os.geteuid() == 0:   # PostgreSQL refuses to run as root
        user = pwd.getpwnam("postgres")
        shutil.chown(root, user.pw_uid, user.pw_gid)
        as_pg = ["runuser", "-u", "postgres", "--"]
    password = "sweep-test-" + os.urandom(6).hex()
    pwfile = root / "pw"
    pwfile.write_text(password)
    if as_pg:
        shutil.chown(pwfile, "postgres", "postgres")
    port, http = free_port(), free_port()
    subprocess.run([*as_pg, str(pg / "initdb"), "-D", str(root / "data"), "-U", "mlflow",
                    "-A", "scram-sha-256", f"--pwfile={pwfile}"], check=True, capture_output=True, timeout=120)
    server = subprocess.Popen([*as_pg, str(pg / "postgres"), "-D", str(root / "data"), "-p", str(port),
                               "-k", str(root), "-c", "listen_addresses=127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {**os.environ, "PGPASSWORD": password}
    mlflow = None
    try:
        for _ in range(60):
            if subprocess.run([str(pg / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.5)
        subprocess.run([str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", "mlflow"],
                       env=env, check=True, capture_output=True, timeout=60)
        store = f"postgresql://mlflow:{password}@127.0.0.1:{port}/mlflow"
        art = Path(tempfile.mkdtemp(prefix="lmgan-mlflow-art-"))
        mlflow = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server",
                                   "--backend-store-uri", store, "--serve-artifacts",
                                   "--artifacts-destination", str(art), "--host", "127.0.0.1",
                                   "--port", str(http), "--workers", "1"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        uri = f"http://127.0.0.1:{http}"
        for _ in range(240):
            try:
                urllib.request.urlopen(uri + "/health", timeout=2).read()
                break
            except OSError:
                if mlflow.poll() is not None:
                    raise RuntimeError("mlflow server exited during start-up")
                time.sleep(0.5)
        else:
            raise RuntimeError("mlflow server did not answer /health within 120 s")
        yield {"uri": uri, "store": store, "artifacts": art}
    finally:
        if mlflow is not None:
            mlflow.terminate()
            mlflow.wait(timeout=30)
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)
