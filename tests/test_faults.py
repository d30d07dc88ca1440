"""Faults during a sweep, on the local two-node Ray cluster: a trial's worker killed with SIGKILL
restarts from its last checkpoint, a diverging trial ends as errored with its reason on its
MLflow run while the sweep goes on."""

import json
import os
import signal
import subprocess
import time

import pytest

from support import SEARCH, TINY, assert_continued, free_port, runs_of, start_mlflow_server

pytestmark = [pytest.mark.slow,   # Ray clusters and whole sweeps: minutes
              pytest.mark.usefixtures("fresh_store")]


def test_killed_worker_restarts_from_its_last_checkpoint(ray_cluster, sweep_clip, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cmd = [*SEARCH, "--address", ray_cluster["address"], "--runs-dir", str(tmp_path), *TINY,
           "--video", str(sweep_clip), "--trials", "1", "--max-iters", "60", "--grace-iters", "60",
           "--eval-every", "5", "--name", "worker-killed"]   # 60: time to see it mid-run
    driver = subprocess.Popen(cmd, env=ray_cluster["env"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    killed, deadline = None, time.time() + 300
    while killed is None and time.time() < deadline and driver.poll() is None:
        time.sleep(0.5)
        try:
            c, _, trials = runs_of(uri, "lmgan-clip6s")
        except Exception:
            continue
        # The second evaluation in MLflow: Tune holds the first checkpoint (its report came
        # before training went on); the first alone may be sent just before that report.
        if trials and "lmgan.pid" in trials[0].data.tags and \
                len(c.get_metric_history(trials[0].info.run_id, "ssim")) >= 2:
            killed = int(trials[0].data.tags["lmgan.pid"])
            os.kill(killed, signal.SIGKILL)     # mid-training, after its first checkpoint
    out, _ = driver.communicate(timeout=600)
    assert killed, "the trial never reported"
    assert driver.returncode == 0, out[-3000:]
    c, _, trials = runs_of(uri, "lmgan-clip6s")
    assert len(trials) == 1, "the restarted trial must continue its MLflow run, not open another"
    t = trials[0]
    assert t.data.tags["lmgan.status"] == "finished" and int(t.data.tags["lmgan.pid"]) != killed, (t.data.tags, out[-3000:])
    steps = [m.step for m in c.get_metric_history(t.info.run_id, "ssim")]
    assert steps == list(range(5, 61, 5)), steps     # every evaluation once: nothing lost or repeated
    # Continued from its checkpoint, not redone from scratch: the restart says where it resumed,
    # and the last checkpoint's optimisers took exactly one step per iteration in all.
    assert int(t.data.tags["lmgan.restored_from"]) >= 5
    assert_continued(tmp_path / "sweeps" / "worker-killed", 60, trials)


def _sweep_over(cluster, clip, runs, space: str, iters: int, name: str, *extra):
    """A 4-trial sweep of `space` (YAML text) with no retries; (process, MLflow client, trials)."""
    (runs / "space.yaml").write_text(space)
    r = subprocess.run([*SEARCH, "--address", cluster["address"], "--runs-dir", str(runs), *TINY,
                        "--video", str(clip), "--space", str(runs / "space.yaml"), "--trials", "4",
                        "--max-iters", str(iters), "--grace-iters", str(iters), "--eval-every", "5",
                        "--max-failures", "0", "--name", name, *extra],
                       env=cluster["env"], capture_output=True, text=True, timeout=600)
    c, _, trials = runs_of(f"sqlite:///{runs / 'mlflow.db'}", "lmgan-clip6s")
    return r, c, trials


def test_diverging_trial_errors_with_its_reason_and_the_sweep_goes_on(ray_cluster, sweep_clip, tmp_path):
    r, c, trials = _sweep_over(ray_cluster, sweep_clip, tmp_path,
                               "lr_d: {choice: [4.0e-4, 1.0e+30]}\nlr_g: {choice: [1.0e-4, 1.0e+30]}\n", 10, "diverging")
    by_status = {}
    for t in trials:
        by_status.setdefault(t.data.tags["lmgan.status"], []).append(t)
    assert by_status.get("errored") and by_status.get("finished"), {k: len(v) for k, v in by_status.items()}
    assert r.returncode == 0, r.stderr[-3000:]      # some trials finished: the sweep succeeded
    for t in by_status["errored"]:
        assert "non-finite" in t.data.tags["lmgan.error"], t.data.tags["lmgan.error"]
        assert t.info.status == "FAILED"
        assert max(float(t.data.params["lr_d"]), float(t.data.params["lr_g"])) == 1e30
    for t in by_status["finished"]:
        assert float(t.data.params["lr_d"]) < 1 and float(t.data.params["lr_g"]) < 1
    assert "errored" in r.stdout


def test_trial_out_of_memory_errors_with_the_reason_and_its_config(ray_cluster, sweep_clip, tmp_path):
    """A configuration too big for the machine: the allocator refuses it (on the CPU here; on a
    GPU torch.OutOfMemoryError, mapped the same way), that trial errors, the others finish."""
    r, c, trials = _sweep_over(ray_cluster, sweep_clip, tmp_path, "g_channel_base: {choice: [256, 134217728]}\n", 5,
                               "oom", "--set", "max_channels=4194304")
    status = {t.data.params["g_channel_base"]: t.data.tags["lmgan.status"] for t in trials}
    assert status.get("134217728") == "errored" and status.get("256") == "finished", status
    assert r.returncode == 0, r.stderr[-3000:]
    for t in trials:
        if t.data.params["g_channel_base"] == "134217728":
            assert t.data.tags["lmgan.error"].startswith("out of memory"), t.data.tags["lmgan.error"]
            assert t.info.status == "FAILED"
            files = [a.path for a in c.list_artifacts(t.info.run_id)]
            assert "error_config.yaml" in files, files


def test_fifty_tiny_trials_lose_no_result(ray_cluster, sweep_clip, tmp_path):
    """Load: 50 trials of a few iterations on the two nodes; every one is a finished MLflow run
    with its metrics, and the sweep's summary lists them all."""
    t0 = time.time()
    r = subprocess.run([*SEARCH, "--address", ray_cluster["address"], "--runs-dir", str(tmp_path), *TINY,
                        "--video", str(sweep_clip), "--trials", "50", "--max-iters", "4",
                        "--grace-iters", "4", "--eval-every", "2", "--name", "load"],
                       env=ray_cluster["env"], capture_output=True, text=True, timeout=900)
    wall = time.time() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c, parents, trials = runs_of(uri, "lmgan-clip6s")
    assert len(trials) == 50 and len({t.data.tags["lmgan.trial_id"] for t in trials}) == 50
    for t in trials:
        assert t.data.tags["lmgan.status"] == "finished", t.data.tags
        assert [m.step for m in c.get_metric_history(t.info.run_id, "ssim")] == [2, 4]
    summary = c.download_artifacts(parents[0].info.run_id, "summary.csv", str(tmp_path))
    assert len(open(summary).read().strip().splitlines()) == 51
    overhead = sum(t.data.metrics["time_setup_s"] + t.data.metrics["time_mlflow_s"]
                   + t.data.metrics["time_tune_s"] for t in trials) / 50
    train = sum(t.data.metrics["time_train_s"] for t in trials) / 50
    print(f"\n50 trials in {wall:.0f} s; per trial: {train:.2f} s training, {overhead:.2f} s platform")


def _tracked_sweep(cluster, clip, runs, port, name, *extra):
    """A one-trial sweep of 40 iterations logging to the MLflow server at `port`."""
    return subprocess.Popen([*SEARCH, "--address", cluster["address"], "--runs-dir", str(runs), *TINY,
                             "--video", str(clip), "--trials", "1", "--max-iters", "40",
                             "--grace-iters", "40", "--eval-every", "5", "--name", name,
                             "--tracking-uri", f"http://127.0.0.1:{port}", *extra],
                            env=cluster["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(check, what, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.5)
        try:
            found = check()
        except Exception:
            continue
        if found:
            return found
    raise AssertionError(f"timed out waiting for {what}")


def _evaluated_trial(store):
    _, _, trials = runs_of(store, "lmgan-clip6s")
    return trials[0] if trials and "ssim" in trials[0].data.metrics else None


def test_tracking_server_down_mid_sweep_loses_nothing(ray_cluster, sweep_clip, tmp_path):
    port = free_port()
    store, artifacts = f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts"
    server = start_mlflow_server(port, store, artifacts)
    driver = _tracked_sweep(ray_cluster, sweep_clip, tmp_path, port, "outage")
    try:
        _wait_for(lambda: _evaluated_trial(store), "the first evaluation")
        os.killpg(server.pid, signal.SIGKILL)          # the tracking server goes away mid-trial
        server.wait()
        time.sleep(8)                                   # training goes on meanwhile
        server = start_mlflow_server(port, store, artifacts)  # and it comes back
        out, _ = driver.communicate(timeout=600)
    finally:
        os.killpg(server.pid, signal.SIGKILL)
    assert driver.returncode == 0, out[-3000:]
    c, _, trials = runs_of(store, "lmgan-clip6s")
    assert len(trials) == 1 and trials[0].data.tags["lmgan.status"] == "finished"
    steps = [m.step for m in c.get_metric_history(trials[0].info.run_id, "ssim")]
    assert steps == list(range(5, 41, 5)), steps        # nothing lost, nothing twice
    failed = c.get_metric_history(trials[0].info.run_id, "mlflow_failed_sends")
    assert max(m.value for m in failed) > 0, "no send failed: the trial never saw the outage"


def test_trial_gone_while_the_server_is_down_loses_nothing_it_reported(ray_cluster, sweep_clip, tmp_path):
    """Like a trial that ASHA stops during an outage (Tune tears it down within seconds), a
    trial whose process dies then cannot send its queue: the driver's summary sends what was
    saved beside its last reported checkpoint, once the server is back."""
    port = free_port()
    store, artifacts = f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts"
    server = start_mlflow_server(port, store, artifacts)
    driver = _tracked_sweep(ray_cluster, sweep_clip, tmp_path, port, "gone", "--max-failures", "0")
    try:
        trial = _wait_for(lambda: _evaluated_trial(store), "the first evaluation")
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        pid = int(trial.data.tags["lmgan.pid"])
        c, _, _ = runs_of(store, "lmgan-clip6s")
        sent = max(m.step for m in c.get_metric_history(trial.info.run_id, "ssim"))
        trial_dir = tmp_path / "sweeps" / "gone"
        # A checkpoint holding values evaluated during the outage (the first one's queue may hold
        # only the files whose upload the outage cut).
        _wait_for(lambda: [u for u in trial_dir.glob("*/checkpoint_*/mlflow_unsent/unsent.json")
                           if any(m[3] > sent for m in json.loads(u.read_text())["metrics"])],
                  "a checkpoint reported during the outage")
        os.kill(pid, signal.SIGKILL)                    # gone before it could send its queue
        server = start_mlflow_server(port, store, artifacts)
        out, _ = driver.communicate(timeout=600)
    finally:
        os.killpg(server.pid, signal.SIGKILL)
    assert "left unsent" in out, out[-3000:]
    c, _, trials = runs_of(store, "lmgan-clip6s")
    assert len(trials) == 1 and trials[0].data.tags["lmgan.status"] == "errored"
    rid = trials[0].info.run_id
    steps = [m.step for m in c.get_metric_history(rid, "ssim")]
    assert steps == list(range(5, steps[-1] + 1, 5)) and steps[-1] > sent, steps   # nothing lost, nothing twice
    samples = [p.name for p in artifacts.rglob(f"{rid}/artifacts/samples/*.mp4")]
    assert f"iter_{steps[-1]:07d}.mp4" in samples, samples   # the outage's files too
