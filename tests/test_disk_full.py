"""A full disk, on real small file systems (a tmpfs mounted per test, as root): `lmgan train`,
`render` and `demo-video` end with one line naming the file that could not be written and "no
space left on device", exit 2; what was there stays whole, no temporary is left, and a run
continues with `--resume` once there is space. A sweep trial records the same line as its MLflow
error and keeps its last checkpoint."""

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from lmgan.cli import main
from lmgan.training import checkpoint

FULL = "no space left on device"
TINY = ["--preset", "tiny", "--set", "iters=8", "--set", "ckpt_every=2", "--set", "eval_every=100",
        "--set", "sample_every=100"]


@pytest.fixture
def small_fs(tmp_path):
    """mount(size) → a new empty tmpfs of `size` ("8m", "64k") under tmp_path; every one is
    unmounted at teardown, whatever the test did. Skips, saying why, where mounting is refused."""
    mounted = []

    def mount(size: str):
        if not shutil.which("mount"):
            pytest.skip("no mount command: the full-disk tests mount a small tmpfs")
        d = tmp_path / f"fs{len(mounted)}"
        d.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(d)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            why = (r.stderr.strip().splitlines() or ["mount failed"])[0]
            pytest.skip(f"mounting a tmpfs is not permitted here (uid {os.geteuid()}: {why}): "
                        "the full-disk tests need a real small file system (root, or CAP_SYS_ADMIN)")
        mounted.append(d)
        return d

    yield mount
    for d in reversed(mounted):
        if subprocess.run(["umount", str(d)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(d)], capture_output=True)   # busy: detach it anyway


def fill(fs, leave: int) -> None:
    """Write fs/filler until `leave` bytes (rounded to pages) are free on the file system."""
    st = os.statvfs(fs)
    n = max(0, st.f_bavail * st.f_frsize - leave)
    with open(fs / "filler", "wb") as f:
        while n > 0:
            chunk = min(n, 1 << 20)
            f.write(b"\0" * chunk)
            n -= chunk
    assert os.statvfs(fs).f_bavail * os.statvfs(fs).f_frsize <= leave + 4096


def leftovers(folder) -> list:
    """Temporaries under folder: lmgan.atomic's `.name.tmpPID.ext`, VideoWriter's, the data
    cache's, a Tune report's tempfile folder."""
    return [p for p in folder.rglob("*") if ".tmp" in p.name or p.name.startswith("tmp")]


def error_line(err: str) -> str:
    """The error of a command's stderr, which must be one line and no traceback (a training run's
    config notes come before it)."""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("lmgan:")]
    assert len(errors) == 1 and errors[0].startswith("lmgan: error: "), err
    assert err.strip().splitlines()[-1] == errors[0], err
    return errors[0][len("lmgan: error: "):]


@pytest.mark.slow
def test_train_stops_with_one_line_keeps_its_checkpoint_and_resumes(small_fs, demo_clip, capsys, monkeypatch):
    """The disk fills up after the second checkpoint: the third fails for want of space."""
    from lmgan.training.loop import Trainer
    fs = small_fs("8m")
    run = fs / "run"
    save, saved = Trainer.save_checkpoint, []

    def save_then_fill(self):
        path = save(self)
        saved.append(path)
        if len(saved) == 2:
            fill(fs, leave=path.stat().st_size // 2)    # half a checkpoint is left
        return path

    monkeypatch.setattr(Trainer, "save_checkpoint", save_then_fill)
    rc = main(["train", "--quiet", "--video", str(demo_clip), "--out", str(run), *TINY])
    line = error_line(capsys.readouterr().err)
    third = run / "checkpoints" / checkpoint.name_for(6)
    assert rc == 2
    assert line == (f"{third}: {FULL} (checkpoint {checkpoint.name_for(4)} is kept; make space, then: "
                    f"lmgan train --resume {run})")
    assert checkpoint.all_checkpoints(run / "checkpoints") == saved
    assert checkpoint.load(saved[-1])["iteration"] == 4
    assert leftovers(run) == []

    monkeypatch.undo()
    (fs / "filler").unlink()                            # space again: the run continues
    assert main(["train", "--quiet", "--resume", str(run)]) == 0, capsys.readouterr().err
    ck, path = checkpoint.load_latest(run)
    assert ck["iteration"] == 8 and path.name == checkpoint.name_for(8)
    logged = [r["iter"] for r in ck["history"] if r["kind"] == "loss"]
    assert logged == [5, 8], logged                     # iteration 5 again, logged once
    assert leftovers(run) == []


def test_render_onto_a_full_disk_keeps_the_earlier_file(small_fs, tiny_run, demo_clip, capsys):
    fs = small_fs("64k")
    out = fs / "out.mp4"
    out.write_bytes(b"an earlier result")
    fill(fs, leave=8192)
    rc = main(["render", "--quiet", "--checkpoint", str(tiny_run), "--audio", str(demo_clip), "--out", str(out)])
    assert rc == 2 and error_line(capsys.readouterr().err) == f"{out}: {FULL}"
    assert out.read_bytes() == b"an earlier result"
    assert sorted(p.name for p in fs.iterdir()) == ["filler", "out.mp4"]


def test_demo_video_onto_a_full_disk(small_fs, capsys):
    fs = small_fs("16k")                                # a 1 s clip is about 30 kB
    out = fs / "clip.mp4"
    rc = main(["demo-video", str(out), "--seconds", "1"])
    assert rc == 2 and error_line(capsys.readouterr().err) == f"{out}: {FULL}"
    assert list(fs.iterdir()) == []


def test_eval_with_its_statistics_cache_on_a_full_disk(small_fs, tiny_run, demo_clip, capsys, monkeypatch):
    """`lmgan eval` caches the real video's statistics (fdd): the cache's disk is full."""
    from lmgan import weights
    fs = small_fs("1m")
    key = checkpoint.load(tiny_run)["data"]["key"]
    shutil.copytree(weights.cache_dir() / "data" / key, fs / "data" / key)     # the decoded video fits
    monkeypatch.setenv("LMGAN_CACHE", str(fs))
    fill(fs, leave=0)
    rc = main(["eval", "--quiet", "--checkpoint", str(tiny_run), "--video", str(demo_clip), "--metrics", "ssim,fdd"])
    line = error_line(capsys.readouterr().err)
    assert rc == 2 and line.startswith(f"{fs / 'stats'}/") and line.endswith(f"-fdd.npz: {FULL}"), line
    assert list((fs / "stats").iterdir()) == []


def test_report_onto_a_full_disk_keeps_the_earlier_page(small_fs, fresh_store, capsys):
    from lmgan.sweep import tracking
    uri = tracking.default_uri(fresh_store)
    eid = tracking.ensure_experiment(uri, "clip", fresh_store / "mlartifacts")
    parent = tracking.start_sweep_run(uri, eid, "s", {"lmgan.objective": "ssim", "lmgan.mode": "max"}, {}, {})
    trial = tracking.TrialRun(uri, eid, parent, "s", "a1b2c3d4", {"lr_g": 1e-4}, ["lr_g"])
    trial.metrics({"ssim": 0.5}, 10)
    trial.finish("finished")
    fs = small_fs("1m")                                 # plotly.min.js alone is 4.6 MB
    page = fs / "page.html"
    page.write_text("an earlier page")
    rc = main(["report", "--experiment", "clip", "--sweep", "s", "--out", str(page), "--tracking-uri", uri])
    line = error_line(capsys.readouterr().err)
    assert rc == 2 and line.startswith(str(fs)) and line.endswith(f": {FULL}"), line
    assert page.read_text() == "an earlier page" and leftovers(fs) == []


def test_a_full_disk_in_the_decoded_data_cache_leaves_no_entry(small_fs, monkeypatch, demo_clip):
    """The decode's cache entry on a full disk: the entry is named, no half-written entry or
    temporary folder is left, and a cache with room takes it afterwards."""
    from lmgan.config import build_config
    from lmgan.data.dataset import load_video_data
    fs = small_fs("64k")
    monkeypatch.setenv("LMGAN_CACHE", str(fs))
    cfg = build_config("tiny")
    with pytest.raises(OSError) as e:
        load_video_data(demo_clip, cfg, progress=False)
    assert e.value.strerror == "No space left on device" and Path(e.value.filename).parent == fs / "data"
    assert list((fs / "data").iterdir()) == []


def test_torch_saving_by_name_onto_a_full_disk_is_recognised(small_fs):
    """torch's own stream loses the errno ("unexpected pos"): the folder's free space tells."""
    import errno
    import gc

    import torch

    from lmgan import atomic
    fs = small_fs("1m")
    try:
        torch.save({"w": torch.zeros(600_000)}, fs / "w.pt")     # 2.4 MB
    except RuntimeError as e:
        assert not atomic.disk_full(e)                  # no errno anywhere in it
        assert atomic.disk_full(e, fs) == errno.ENOSPC
        message = str(e)
    else:
        pytest.fail("torch.save onto a full disk did not fail")
    gc.collect()                                        # the exception's frames held the file open
    (fs / "w.pt").unlink()
    assert atomic.disk_full(RuntimeError(message), fs) == 0     # room again: not a full disk


def _fake_tune(monkeypatch, trial_id: str, on_report):
    """What a trial asks Ray Tune for, without Ray: its ids, no checkpoint to restore, and
    tune.report handed to `on_report(metrics, checkpoint folder)`."""
    import ray
    from ray import tune

    from lmgan.sweep import telemetry

    class Context:
        def get_trial_id(self):
            return trial_id

        def get_trial_name(self):
            return "t01"

    class Gauges:
        def __init__(self, *a, **k):
            pass

        def on_log(self, *a):
            pass

        def on_eval(self, *a):
            pass

        def close(self):
            pass

    class Runtime:
        def get_node_id(self):
            return "node"

    monkeypatch.setattr(tune, "get_context", lambda: Context())
    monkeypatch.setattr(tune, "get_checkpoint", lambda: None)
    monkeypatch.setattr(tune, "report", lambda metrics, checkpoint: on_report(metrics, checkpoint.path))
    monkeypatch.setattr(ray, "get_runtime_context", lambda: Runtime())
    monkeypatch.setattr(telemetry, "TrialGauges", Gauges)


@pytest.mark.slow
def test_a_sweep_trial_on_a_full_disk_records_the_line_and_keeps_its_checkpoint(
        small_fs, fresh_store, demo_clip, monkeypatch):
    """lmgan.sweep.trainable.train_trial as Tune runs it (Tune's calls faked, training, MLflow
    and the file system real), its trial folder on a disk that fills up after its second report."""
    from lmgan.config import build_config
    from lmgan.sweep import tracking
    from lmgan.sweep.trainable import CKPT_FILE, TrialSpec, train_trial, trial_run_dir

    monkeypatch.setenv("LMGAN_MLFLOW_WAIT_S", "5")
    fs = small_fs("8m")
    uri = tracking.default_uri(fresh_store)
    eid = tracking.ensure_experiment(uri, "demo4s", fresh_store / "mlartifacts")
    parent = tracking.start_sweep_run(uri, eid, "full", {}, {}, {})
    video = demo_clip.read_bytes()
    fixed = build_config("tiny").to_dict() | {"iters": 8, "eval_every": 2, "ckpt_every": 2, "sample_every": 2,
                                              "log_every": 2}
    spec = TrialSpec(sweep="full", video="demo4s", source_name=demo_clip.name,
                     source_sha=hashlib.sha256(video).hexdigest(), fixed=fixed, objective="ssim",
                     tracking_uri=uri, experiment_id=eid, parent_run_id=parent, trials_dir=str(fs))
    reported = []

    def report(metrics, folder):
        reported.append(checkpoint.load(Path(folder) / CKPT_FILE)["iteration"])
        if len(reported) == 2:        # the evaluation's files fit in what is left, a checkpoint not
            fill(fs, leave=2 * (Path(folder) / CKPT_FILE).stat().st_size // 3)

    _fake_tune(monkeypatch, "a1b2c3d4", report)
    with pytest.raises(OSError):
        train_trial({}, spec, video)
    run_dir = trial_run_dir(spec, "a1b2c3d4")
    third = run_dir / "checkpoints" / checkpoint.name_for(6)
    c = tracking.client(uri)
    run = tracking.find_run(c, eid, **{tracking.TRIAL_ID: "a1b2c3d4"})
    assert run.data.tags[tracking.ERROR] == f"{third}: {FULL}"
    assert run.data.tags[tracking.STATUS] == "errored" and run.info.status == "FAILED"
    assert reported == [2, 4]                             # Tune holds the checkpoint of iteration 4
    kept = checkpoint.all_checkpoints(run_dir / "checkpoints")
    assert [checkpoint.iteration_of(p) for p in kept] == [2, 4]
    assert checkpoint.load(kept[-1])["iteration"] == 4
    assert leftovers(fs) == []
