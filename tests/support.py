"""What several test files share that is not a fixture: the sweep's runners and checks, MLflow
store builders, servers, sound files. Fixtures live in conftest.py; test files import helpers
from here (`from support import ...`, the same module pytest's conftest imports: tests/ is on
sys.path) and never from one another (tests/test_layout.py checks that).

Heavy modules (MLflow, torch, PyAV) are imported inside the functions: conftest imports this
module before any test runs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- processes and ports
def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_cli(*args):
    from lmgan.cli import main
    return main(["train", "--quiet", *map(str, args)])


def copy_project(dest: Path) -> Path:
    """What building lmgan reads (pyproject.toml, README.md, lmgan/, sweeps/), copied to `dest`:
    a build there leaves no build/ or egg-info in the checkout."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("lmgan", "sweeps"):
        shutil.copytree(REPO / folder, dest / folder, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, dest / name)
    return dest


# ----------------------------------------------------------------------------- sounds
def chirp(seconds, rate, gain=1.0):
    import numpy as np
    t = np.arange(int(seconds * rate)) / rate
    return (gain * 0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t)).astype(np.float32)


def write_sound(path, seconds, codec, rate=44100, layout="stereo", wave=None):
    """A real encoded sound file (a chirp unless `wave` is given), written with PyAV."""
    import av
    import numpy as np
    wave = chirp(seconds, rate) if wave is None else wave.astype(np.float32)
    n = len(wave)
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=rate, layout=layout)
        chans = 2 if layout == "stereo" else 1
        fmt = s.codec_context.format.name
        planar = fmt.endswith("p")
        data = np.tile(wave, (chans, 1))
        step = 1024
        for i in range(0, n, step):
            block = data[:, i:i + step]
            if fmt.startswith("s16"):
                block = (block * 32767).astype(np.int16)
            elif fmt.startswith("s32"):
                block = (block * 2147483647).astype(np.int32)
            arr = block if planar else block.T.reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=fmt, layout=layout)
            frame.sample_rate = rate
            frame.pts = i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


# ----------------------------------------------------------------------------- MLflow stores
def empty_store(path: Path) -> Path:
    """An MLflow SQLite store at `path`, its schema migrated (2–3 s: make it once, then copy)."""
    from mlflow.tracking import MlflowClient
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


def copy_store(template: Path, root: Path) -> Path:
    """`root` as a runs folder holding a copy of the empty store `template` as its mlflow.db."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, root / "mlflow.db")
    return root


def start_mlflow_server(port, store, artifacts):
    """`mlflow server` on loopback `port` over `store`, in its own process group (kill it with
    os.killpg to take the server away mid-run); returns once /health answers."""
    import urllib.request
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", store,
                             "--serve-artifacts", "--artifacts-destination", str(artifacts),
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(240):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
            return proc
        except OSError:
            assert proc.poll() is None, "mlflow server exited"
            time.sleep(0.5)
    raise AssertionError("mlflow server did not start")


# A report's store (test_report.py, test_screenshots.py): sweep-a, four trials that logged over
# iterations, the best one with real media; sweep-b, later, one trial with no objective value yet.
REPORT_SPACE = "lr_g: {loguniform: [1.0e-5, 1.0e-3]}\nvp_kernel: {choice: [3, 5, 7]}\n"
# trial id → (lr_g, vp_kernel, final ssim or None, status)
REPORT_TRIALS = {
    "trial_00000": (1e-4, 3, 0.62, "finished"),
    "trial_00001": (3e-4, 5, 0.81, "finished"),      # the best
    "trial_<i>2</i>": (2e-5, 7, 0.55, "stopped"),    # escaped everywhere
    "trial_00003": (8e-4, 5, 0.30, "errored"),
}
REPORT_BEST = "trial_00001"


def _mp4(path: Path) -> None:
    import numpy as np

    from lmgan.data.media import VideoWriter
    t = np.linspace(0, 1, 16000, dtype=np.float32)
    with VideoWriter(path, fps=10, width=32, height=16, audio_rate=16000) as w:
        w.add_frames(np.stack([np.full((16, 32, 3), 20 * i, np.uint8) for i in range(10)]))
        w.add_audio(0.3 * np.sin(2 * np.pi * 440 * t))


def _png(path: Path) -> None:
    import numpy as np
    from PIL import Image
    Image.fromarray(np.zeros((8, 16, 3), np.uint8)).save(path)


def build_report_store(root: Path) -> dict:
    """Fill the runs folder `root` (its mlflow.db an empty store) with the report's sweeps:
    {"uri", "root", "run_ids": trial id → run id, "media": the files the best trial logged}."""
    from lmgan.sweep import tracking
    uri = tracking.default_uri(root)
    eid = tracking.ensure_experiment(uri, "demo", root / "mlartifacts")
    tracking.ensure_experiment(uri, "empty", root / "mlartifacts")
    tags = {"lmgan.video": "demo", "lmgan.objective": "ssim", "lmgan.mode": "max"}
    pid = tracking.start_sweep_run(uri, eid, "sweep-a", tags, {"objective": "ssim", "trials": 4},
                                   {"search_space.yaml": REPORT_SPACE})
    media = root / "media"
    media.mkdir()
    _mp4(media / "iter_0000020.mp4")
    _mp4(media / "iter_0000030.mp4")
    _png(media / "iter_0000020.png")
    _png(media / "iter_0000030.png")
    _png(media / "iter_0000030-motion.png")
    run_ids = {}
    for k, (trial, (lr, vp, final, status)) in enumerate(REPORT_TRIALS.items()):
        tr = tracking.TrialRun(uri, eid, pid, "sweep-a", trial, {"lr_g": lr, "vp_kernel": vp, "mfs": True},
                               ["lr_g", "vp_kernel"])
        for step in (10, 20, 30):
            tr.metrics({"loss_d_image": 1.0 / step, "it_per_s": 3.0}, step)
            if step >= 20:
                f = step / 30
                tr.metrics({"ssim": final * f, "ssim_std": 0.02, "psnr": 20 + 5 * final * f,
                            "psnr_std": 1.25, "fdd": 10.0 * (1 - final * f), "av_align": 0.3,
                            "av_align_real": 0.4, "motion_corr": final / 2}, step)
        if trial == REPORT_BEST:
            for name in ("iter_0000020.mp4", "iter_0000030.mp4", "iter_0000020.png", "iter_0000030.png",
                         "iter_0000030-motion.png"):
                tr.artifact(media / name, "samples")
        assert tr.flush()
        tr.finish(status)
        run_ids[trial] = tr.run_id
    # A later sweep whose only trial has no objective value yet (the default: the latest sweep).
    time.sleep(0.01)
    pid_b = tracking.start_sweep_run(uri, eid, "sweep-b", tags, {}, {"search_space.yaml": REPORT_SPACE})
    tr = tracking.TrialRun(uri, eid, pid_b, "sweep-b", "trial_b0", {"lr_g": 1e-4, "vp_kernel": 3}, ["lr_g"])
    tr.metrics({"loss_d_image": 0.5}, 5)
    assert tr.flush()
    return {"uri": uri, "root": root, "run_ids": run_ids, "media": media}


# ----------------------------------------------------------------------------- sweeps
SEARCH = [sys.executable, str(REPO / "sweeps" / "search.py")]
TINY = ["--preset", "tiny", "--objective", "ssim", "--cpus-per-trial", "1", "--verbose", "0"]
EXPERIMENT = "lmgan-clip6s"     # the sweep_clip fixture's experiment


def sweep(cluster, runs, *args, timeout=600, **kw):
    """`sweeps/search.py` on `cluster` (the ray_cluster fixture) into the runs folder `runs`."""
    cmd = [*SEARCH, "--address", cluster["address"], "--runs-dir", str(runs), *TINY, *map(str, args)]
    return subprocess.run(cmd, env=cluster["env"], capture_output=True, text=True, timeout=timeout, **kw)


def runs_of(uri, experiment):
    """(client, the experiment's sweep runs, its trial runs)."""
    from mlflow.tracking import MlflowClient
    c = MlflowClient(uri)
    exp = c.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment}"
    runs = c.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("lmgan.role") == "sweep"]
    trials = [r for r in runs if r.data.tags.get("lmgan.role") == "trial"]
    return c, parents, trials


def check_sweep(uri, experiment, name, n_trials):
    """The sweep `name` ended with `n_trials` trials that finished or were stopped, each with its
    metrics, params and samples; the trials its driver's kills lost (tracking.settle_lost) are
    closed KILLED. Returns (client, the sweep's run, its trial runs but the lost)."""
    c, parents, trials = runs_of(uri, experiment)
    parent = [p for p in parents if p.data.tags["lmgan.sweep"] == name]
    assert len(parent) == 1
    mine = [t for t in trials if t.data.tags[("mlflow.parentRunId")] == parent[0].info.run_id]
    lost = [t for t in mine if t.data.tags["lmgan.status"] == "lost"]   # see tracking.settle_lost
    assert all(t.info.status == "KILLED" for t in lost), [(t.info.run_name, t.info.status) for t in lost]
    mine = [t for t in mine if t not in lost]
    assert len(mine) == n_trials, [t.info.run_name for t in mine]
    for t in mine:
        assert "ssim" in t.data.metrics and "loss_d_image" in t.data.metrics
        assert t.data.params["image_size"] == "32"
        samples = [a.path for a in c.list_artifacts(t.info.run_id, "samples")]
        assert any(p.endswith(".mp4") for p in samples), samples
        assert t.data.tags["lmgan.status"] in ("finished", "stopped"), t.data.tags.get("lmgan.error")
    parent_files = [a.path for a in c.list_artifacts(parent[0].info.run_id)]
    assert {"search_space.yaml", "summary.csv", "summary.md"} <= set(parent_files)
    assert parent[0].data.tags["lmgan.best_trial"] in {t.data.tags["lmgan.trial_id"] for t in mine}
    return c, parent[0], mine


def assert_continued(sweep_dir, iters, trials):
    """Every finished trial among the MLflow runs `trials` (tag lmgan.status=finished) has its
    last local checkpoint (<sweep_dir>/<its lmgan.trial_id>/lmgan/checkpoints) at `iters`, with
    `iters` Adam steps in both optimisers and each iteration once in its history: whatever
    restarted, continued. Only the finished: a trial the driver's kill left unrecorded by Tune
    (lost, tracking.settle_lost) keeps a folder that stops at its last checkpoint."""
    from lmgan.training import checkpoint
    finished = sorted(t.data.tags["lmgan.trial_id"] for t in trials if t.data.tags.get("lmgan.status") == "finished")
    assert finished, [(t.info.run_name, t.data.tags.get("lmgan.status")) for t in trials]
    for trial_id in finished:
        folder = Path(sweep_dir) / trial_id / "lmgan" / "checkpoints"
        assert folder.is_dir(), (folder, sorted(p.name for p in Path(sweep_dir).iterdir()))
        ck = checkpoint.load(checkpoint.latest(folder))
        assert ck["iteration"] == iters, folder
        for opt in ("opt_g", "opt_d"):
            steps = {int(v["step"]) for v in ck[opt]["state"].values()}
            assert steps == {iters}, (folder, opt, steps)
        logged = [r["iter"] for r in ck["history"] if r["kind"] == "loss"]
        assert logged == sorted(set(logged)) and logged[-1] == iters, (folder, logged)


def small_vgg(path: Path) -> Path:
    """VGG16's layers up to relu2_2 (all the perceptual loss loads), randomly initialised."""
    import torch
    import torchvision
    layers = torchvision.models.vgg16(weights=None).features[:9]
    torch.save({f"features.{k}": v for k, v in layers.state_dict().items()}, path)
    return path


def trials_of(uri, experiment=EXPERIMENT) -> list:
    """The experiment's trial runs; none while its store or experiment does not exist yet."""
    try:
        _, _, trials = runs_of(uri, experiment)
    except Exception:
        return []
    return trials


def finished_trials(uri, experiment=EXPERIMENT) -> int:
    return sum(t.data.tags.get("lmgan.status") == "finished" for t in trials_of(uri, experiment))


def kill_when_finished(cmd, env, uri, n, experiment=EXPERIMENT, timeout=300):
    """Run the driver `cmd` and SIGKILL it (and its process group) once n trials of `experiment`
    have finished in the store `uri`."""
    driver = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.time() + timeout
        while time.time() < deadline and finished_trials(uri, experiment) < n:
            time.sleep(0.5)
        assert driver.poll() is None, "the sweep ended before it could be killed"
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()


def random_video_data(cfg, windows: int, train_windows: int):
    """A VideoData of random frames and features, `windows` windows long, the first
    `train_windows` of them training: a Trainer on it needs no decoding (cfg.n_mels features,
    cfg.image_size frames, silent audio)."""
    import numpy as np
    import torch
    from lmgan.data.dataset import VideoData

    n, s = windows * cfg.seq_len, cfg.image_size
    g = torch.Generator().manual_seed(0)
    return VideoData(frames=torch.randint(0, 256, (n, s, s, 3), dtype=torch.uint8, generator=g),
                     feats=torch.randn(n, cfg.n_mels, generator=g) * 10 - 40,
                     audio=np.zeros(round(n / cfg.fps * cfg.sample_rate), np.float32), fps=cfg.fps,
                     sample_rate=cfg.sample_rate, n_train=train_windows * cfg.seq_len, key="k", source="",
                     cached=False)
