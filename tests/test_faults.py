"""Faults during a sweep, on the local two-node Ray cluster: a trial's worker killed with SIGKILL
restarts from its last checkpoint, a diverging trial ends as errored with its reason on its
MLflow run while the sweep goes on."""

import os
import signal
import subprocess
import time

from tests.test_sweep import SEARCH, TINY, runs_of


def test_killed_worker_restarts_from_its_last_checkpoint(ray_cluster, sweep_clip, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cmd = [*SEARCH, "--address", ray_cluster["address"], "--runs-dir", str(tmp_path), *TINY,
           "--video", str(sweep_clip), "--trials", "1", "--max-iters", "30", "--grace-iters", "30",
           "--eval-every", "5", "--name", "worker-killed"]
    driver = subprocess.Popen(cmd, env=ray_cluster["env"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    killed, deadline = None, time.time() + 300
    while killed is None and time.time() < deadline and driver.poll() is None:
        time.sleep(0.5)
        try:
            c, _, trials = runs_of(uri, "lmgan-clip6s")
        except Exception:
            continue
        if trials and "ssim" in trials[0].data.metrics and "lmgan.pid" in trials[0].data.tags:
            killed = int(trials[0].data.tags["lmgan.pid"])
            os.kill(killed, signal.SIGKILL)     # mid-training, after its first checkpoint
    out, _ = driver.communicate(timeout=600)
    assert killed, "the trial never reported"
    assert driver.returncode == 0, out[-3000:]
    c, _, trials = runs_of(uri, "lmgan-clip6s")
    assert len(trials) == 1, "the restarted trial must continue its MLflow run, not open another"
    t = trials[0]
    assert t.data.tags["lmgan.status"] == "finished" and int(t.data.tags["lmgan.pid"]) != killed
    steps = [m.step for m in c.get_metric_history(t.info.run_id, "ssim")]
    assert steps == list(range(5, 31, 5)), steps     # every evaluation once: nothing lost or repeated


def test_diverging_trial_errors_with_its_reason_and_the_sweep_goes_on(ray_cluster, sweep_clip, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("lr_d: {choice: [4.0e-4, 1.0e+12]}\nlr_g: {choice: [1.0e-4, 1.0e+12]}\n")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    r = subprocess.run([*SEARCH, "--address", ray_cluster["address"], "--runs-dir", str(tmp_path), *TINY,
                        "--video", str(sweep_clip), "--space", str(space), "--trials", "4",
                        "--max-iters", "10", "--grace-iters", "10", "--eval-every", "5",
                        "--max-failures", "0", "--name", "diverging"],
                       env=ray_cluster["env"], capture_output=True, text=True, timeout=600)
    c, parents, trials = runs_of(uri, "lmgan-clip6s")
    by_status = {}
    for t in trials:
        by_status.setdefault(t.data.tags["lmgan.status"], []).append(t)
    assert by_status.get("errored") and by_status.get("finished"), {k: len(v) for k, v in by_status.items()}
    assert r.returncode == 0, r.stderr[-3000:]      # some trials finished: the sweep succeeded
    for t in by_status["errored"]:
        assert "non-finite" in t.data.tags["lmgan.error"], t.data.tags["lmgan.error"]
        assert t.info.status == "FAILED"
        assert "1e+12" in (t.data.params["lr_d"] + t.data.params["lr_g"]).replace("1000000000000.0", "1e+12")
    for t in by_status["finished"]:
        assert float(t.data.params["lr_d"]) < 1 and float(t.data.params["lr_g"]) < 1
    assert "errored" in r.stdout
