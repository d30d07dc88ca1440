"""The sweep platform end to end, with real parts: a two-node Ray cluster started by the test,
Optuna + ASHA through Ray Tune, a real MLflow store (SQLite, and a tracking server on
PostgreSQL), real mp4 artifacts. Each sweep is a few tiny trials of a handful of iterations."""

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from support import (REPO, SEARCH, TINY, assert_continued, check_sweep, free_port, kill_when_finished, runs_of,
                     small_vgg, sweep, trials_of)

pytestmark = [pytest.mark.slow,   # Ray clusters and whole sweeps: minutes
              pytest.mark.usefixtures("fresh_store")]

def test_two_node_sweep(ray_cluster, sweep_clip, tmp_path):
    optuna_db = f"sqlite:///{tmp_path / 'optuna.db'}"
    vgg = small_vgg(tmp_path / "my-vgg.pth")
    r = sweep(ray_cluster, tmp_path, "--video", sweep_clip, "--trials", 3, "--max-iters", 10,
              "--grace-iters", 5, "--eval-every", 5, "--name", "two-node", "--optuna-storage", optuna_db,
              "--objective", "motion_corr", "--set", "lambda_pl=10", "--set", f"vgg_weights={vgg}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert re.search(r"^sweep two-node: estimate \(measured on this CPU with the trials' 1 thread, .* s/it; "
                     r".*: at most 3 trials × 10 iterations ≈ .*, 2 at a time", r.stderr, re.M), r.stderr[-3000:]
    # The driver shipped the VGG16 file through Ray's object store; the trials wrote it, once, into
    # their nodes' lmgan cache under its content's name (trials never download a weight).
    shipped = list((Path(ray_cluster["env"]["LMGAN_CACHE"]) / "weights" / "shipped").glob("*-vgg16-397923af.pth"))
    assert [p.read_bytes() for p in shipped if p.read_bytes() == vgg.read_bytes()], shipped
    assert_exported_to_prometheus(ray_cluster, "two-node")   # before Ray's gauges expire (~20 s)
    assert "best:" in r.stdout and "mlflow ui --backend-store-uri sqlite:///" in r.stdout
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c, parent, trials = check_sweep(uri, "lmgan-clip6s", "two-node", 3)
    assert len({t.data.tags["lmgan.node_id"] for t in trials}) == 2, "trials did not use both nodes"
    assert sorted(t.info.run_name.split()[0] for t in trials) == ["t01", "t02", "t03"]   # Tune's numbers
    # The first trial ran the tiny preset's own values of the searched keys (the baseline).
    base = [t for t in trials if t.data.tags.get("lmgan.baseline") == "true"]
    assert len(base) == 1 and base[0].info.run_name.startswith("t01 "), [t.info.run_name for t in trials]
    assert {k: float(base[0].data.params[k]) for k in ("lr_g", "lr_d", "rnn_layers", "vp_kernel")} == \
        {"lr_g": 1e-4, "lr_d": 4e-4, "rnn_layers": 2, "vp_kernel": 3}
    assert "baseline: " in r.stdout and parent.data.tags["lmgan.baseline_trial"] == base[0].data.tags["lmgan.trial_id"]
    assert re.search(r"^t0[123] \S+  iter 10/10 ", r.stderr, re.M), r.stderr[-2000:]       # progress lines
    assert parent.data.tags["lmgan.objective"] == "motion_corr"          # a sync metric as the objective
    for t in trials:
        assert -1 <= t.data.metrics["motion_corr"] <= 1
        assert t.data.metrics["loss_pl"] > 0                  # the perceptual loss ran on the shipped VGG16
        assert any(a.path.endswith("-motion.png") for a in c.list_artifacts(t.info.run_id, "samples"))
    # The best trial is the one with the highest motion_corr at any evaluation (mode max), and
    # its best.pt is the checkpoint of that very evaluation.
    peaks = {}
    for t in trials:
        hist = c.get_metric_history(t.info.run_id, "motion_corr")
        top = max(hist, key=lambda m: (m.value, -m.step))
        peaks[t.data.tags["lmgan.trial_id"]] = (top.value, top.step)
    winner = max(peaks, key=lambda k: peaks[k][0])
    assert len({v for v, _ in peaks.values()}) == len(peaks), peaks        # no tie to hide behind
    assert parent.data.tags["lmgan.best_trial"] == winner, peaks
    assert parent.data.metrics["best_motion_corr"] == pytest.approx(peaks[winner][0], abs=1e-9)
    best = next(t for t in trials if t.data.tags["lmgan.trial_id"] == winner)
    assert [a.path for a in c.list_artifacts(best.info.run_id, "checkpoints")] == ["checkpoints/best.pt"]
    ckpt = c.download_artifacts(best.info.run_id, "checkpoints/best.pt", str(tmp_path))
    from lmgan.training import checkpoint
    ck = checkpoint.load(ckpt)                 # an ordinary lmgan checkpoint: it renders, resumes
    assert ck["iteration"] == peaks[winner][1], (ck["iteration"], peaks)
    last_eval = [r for r in ck["history"] if r["kind"] == "eval"][-1]
    assert last_eval["iter"] == ck["iteration"]
    assert last_eval["motion_corr"] == pytest.approx(peaks[winner][0], abs=1e-9)
    state = json.loads((tmp_path / "sweeps" / "two-node" / "lmgan-sweep.json").read_text())
    assert state["session"]["parent_run_id"] == parent.info.run_id
    # The Optuna study is in its own database too, for optuna-dashboard.
    import optuna
    study = optuna.load_study(study_name="two-node", storage=optuna_db)
    assert len(study.trials) == 3 and set(study.trials[0].params) == {"lr_g", "lr_d", "rnn_layers", "vp_kernel"}


def assert_exported_to_prometheus(cluster, sweep_name):
    """The gauges reach the nodes' Prometheus endpoints under the names the dashboard uses."""
    from lmgan.sweep.telemetry import prometheus_names
    seen = ""
    for _ in range(30):   # the metrics agent exports every few seconds
        seen = "".join(urllib.request.urlopen(f"http://127.0.0.1:{p}/metrics", timeout=10).read().decode()
                       for p in cluster["metrics_ports"])
        if "ray_lmgan_eval" in seen:
            break
        time.sleep(2)
    exported = {line.split("{")[0] for line in seen.splitlines() if line.startswith("ray_lmgan_")}
    assert {"ray_lmgan_iteration", "ray_lmgan_iterations_per_second", "ray_lmgan_loss",
            "ray_lmgan_eval"} <= exported <= prometheus_names()
    assert f'sweep="{sweep_name}"' in seen


def test_resume_after_the_driver_is_killed_twice(ray_cluster, sweep_clip, tmp_path):
    args = ["--video", sweep_clip, "--trials", 4, "--max-iters", 20, "--grace-iters", 20,
            "--eval-every", 5, "--name", "killed"]
    base = [*SEARCH, "--address", ray_cluster["address"], "--runs-dir", str(tmp_path)]
    resume = [*base, "--verbose", "0", "--resume", "--name", "killed"]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    kill_when_finished([*base, *TINY, *map(str, args)], ray_cluster["env"], uri, 1)
    kill_when_finished(resume, ray_cluster["env"], uri, 2)
    finished_before = {t.info.run_id: t.data.metrics["ssim"] for t in trials_of(uri)
                       if t.data.tags.get("lmgan.status") == "finished"}
    assert len(finished_before) >= 2
    r = subprocess.run(resume, env=ray_cluster["env"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    errors = {p.parent.name: p.read_text()[-300:] for p in (tmp_path / "sweeps" / "killed").glob("*/error.txt")}
    assert not errors, errors     # e.g. a checkpoint Tune deleted after its last snapshot (snapshot.py)
    c, parent, trials = check_sweep(uri, "lmgan-clip6s", "killed", 4)     # and the lost ones KILLED
    for t in trials:
        assert t.data.tags["lmgan.status"] == "finished"
        steps = [m.step for m in c.get_metric_history(t.info.run_id, "ssim")]
        assert steps == list(range(5, 21, 5)), steps   # continued, not redone, nothing lost
    for run_id, ssim in finished_before.items():
        assert c.get_run(run_id).data.metrics["ssim"] == ssim
    # What the kills interrupted continued from its checkpoints (not only de-duplicated metrics);
    # a trial a kill lost (closed KILLED above) keeps a folder that ends at its last checkpoint.
    assert_continued(tmp_path / "sweeps" / "killed", 20, trials)


@pytest.mark.parametrize("args, message", [
    (["--video", "no-such-video"], "known: "),
    (["--video", "CLIP", "--space", "SPACE:{nonsense: {int: [1, 2]}}"], "unknown search-space key 'nonsense'"),
    (["--video", "CLIP", "--space", "SPACE:{lr_g: {loguniform: [1.0e-3, 1.0e-4]}}"], "empty range"),
    (["--video", "CLIP", "--space", "SPACE:{vp_kernel: {choice: [3, 4]}}"], "vp_kernel=4"),
    (["--video", "CLIP", "--gpus-per-trial", "4"], "more GPUs than any node has"),
    (["--resume", "--name", "never-ran"], "no sweep named 'never-ran'"),
    (["--resume", "--name", "../../etc"], "--name '../../etc': use letters"),
    (["--video", "CLIP", "--name", "..hidden"], "not starting with '.'"),
    (["--video", "CLIP", "--objective", "nope"], "unknown metric"),
])
def test_bad_input_is_one_line_exit_2(ray_cluster, sweep_clip, tmp_path, args, message):
    space = tmp_path / "space.yaml"
    args = [str(sweep_clip) if a == "CLIP" else a for a in args]
    if any(a.startswith("SPACE:") for a in args):
        space.write_text(next(a for a in args if a.startswith("SPACE:"))[6:])
        args = [str(space) if a.startswith("SPACE:") else a for a in args]
    r = sweep(ray_cluster, tmp_path, *args, "--trials", 1, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) >= 1 and lines[-1].startswith("sweep: error: ") and message in lines[-1], r.stderr
    assert "Traceback" not in r.stderr


def test_dry_run_reads_the_clusters_nodes_and_creates_nothing(ray_cluster, sweep_clip, tmp_path):
    r = sweep(ray_cluster, tmp_path, "--video", sweep_clip, "--trials", 2, "--max-iters", 10, "--dry-run",
              timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"2 at once on the cluster at {ray_cluster['address']} (2 CPUs, 0 GPUs)" in r.stdout, r.stdout
    assert "estimate     (measured on this CPU" in r.stdout and "at most 2 trials × 10 iterations" in r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"]     # the fixture's: no sweep folder


def test_sweep_logs_to_an_mlflow_server_on_postgresql(ray_cluster, mlflow_server, sweep_clip, tmp_path):
    uri = mlflow_server["uri"]
    r = sweep(ray_cluster, tmp_path, "--video", sweep_clip, "--trials", 3, "--max-iters", 10,
              "--grace-iters", 5, "--eval-every", 5, "--name", "on-postgres", "--tracking-uri", uri)
    assert r.returncode == 0, r.stderr[-3000:]
    c, parent, trials = check_sweep(uri, "lmgan-clip6s", "on-postgres", 3)
    # The links the sweep ends with are the server's own: its trials' view and their comparison.
    exp = parent.info.experiment_id
    assert f"{uri}/#/experiments/{exp}/runs?viewStateShareKey=lmgan-on-postgres&workflowType=machine_learning" in r.stdout
    assert f"{uri}/#/compare-runs?runs=" in r.stdout and "mlflow ui" not in r.stdout
    # Artifacts went through the server into its artifact store, not beside the runs folder.
    assert list(Path(mlflow_server["artifacts"]).rglob("*.mp4"))
    assert not (tmp_path / "mlartifacts").exists()


def test_unreachable_tracking_server_fails_before_any_trial(ray_cluster, sweep_clip, tmp_path):
    r = sweep(ray_cluster, tmp_path, "--video", sweep_clip, "--trials", 1,
              "--tracking-uri", f"http://127.0.0.1:{free_port()}", timeout=120)
    assert r.returncode == 2
    assert "is unreachable" in r.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "sweeps").exists()


def _args(**kw):
    import argparse
    return argparse.Namespace(**{"gpus_per_trial": None, "cpus_per_trial": None, **kw})


def test_resources_count_the_nodes_an_autoscaler_can_start(monkeypatch):
    """Right after `ray up` only the CPU-less head is alive; the GPU worker types of
    cluster.yaml still count, so the sweep asks for GPUs and the autoscaler starts them."""
    from lmgan.errors import LmganError
    from lmgan.sweep.resources import per_trial as _resources
    head = [{"Alive": True, "Resources": {"CPU": 0.0}}]
    monkeypatch.setenv("LMGAN_AUTOSCALER_CONFIG", str(REPO / "cluster.yaml"))
    cpus, gpus, fit = _resources(_args(), head, image_size=256)
    assert (cpus, gpus) == (2.0, 1.0) and fit == 12       # 8 A10G + 4 L40S workers, one trial each
    assert _resources(_args(gpus_per_trial=0.5), head, image_size=256)[2] == 24
    assert _resources(_args(), head, image_size=128)[1:] == (0.5, 24)     # small trials share a GPU
    assert _resources(_args(), head, image_size=64)[1] == 0.25
    with pytest.raises(LmganError, match="more GPUs than any node has"):
        _resources(_args(gpus_per_trial=2), head)
    monkeypatch.setenv("LMGAN_AUTOSCALER_CONFIG", str(REPO / "no-such-file.yaml"))
    with pytest.raises(LmganError, match="no node has a GPU"):
        _resources(_args(gpus_per_trial=1), head + [{"Alive": True, "Resources": {"CPU": 8.0}}])
    assert _resources(_args(), [{"Alive": True, "Resources": {"CPU": 8.0}},
                                {"Alive": True, "Resources": {"CPU": 4.0}}]) == (4.0, 0.0, 3)


def test_pbt_sweep_clones_checkpoints_records_lineage_and_resumes(ray_cluster, sweep_clip, tmp_path):
    """--scheduler pbt: weak trials continue from strong ones' checkpoints with mutated learning
    rates; every clone is on the trial's MLflow run, and a killed driver's sweep resumes."""
    args = ["--video", sweep_clip, "--trials", 4, "--max-iters", 20, "--grace-iters", 5, "--eval-every", 5,
            "--name", "pbt", "--scheduler", "pbt"]
    base = [*SEARCH, "--address", ray_cluster["address"], "--runs-dir", str(tmp_path)]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    kill_when_finished([*base, *TINY, *map(str, args)], ray_cluster["env"], uri, 1)
    r = subprocess.run([*base, "--resume", "--name", "pbt"], env=ray_cluster["env"], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    c, parent, trials = check_sweep(uri, "lmgan-clip6s", "pbt", 4)
    assert parent.data.tags["lmgan.scheduler"] == "pbt"
    ids = {t.data.tags["lmgan.trial_id"] for t in trials}
    clones = []
    for t in trials:
        assert all(tag["lmgan.status"] == "finished" for tag in [t.data.tags])
        schedule = c.get_metric_history(t.info.run_id, "schedule.lr_g")
        assert schedule and schedule[0].step == 0, "a PBT trial logs its schedule from the start"
        for key in sorted(k for k in t.data.tags if k.startswith("lmgan.exploit.")):
            clone = json.loads(t.data.tags[key])
            clones.append(clone)
            assert clone["from"] in ids - {t.data.tags["lmgan.trial_id"]}
            assert set(clone["new"]) == {"lr_g", "lr_d"} and clone["new"] != clone["donor"]
            assert set(clone["was"]) == {"lr_g", "lr_d"}        # read from the trial's own folder
            # the schedule changes where the clone continued, to the explored values (a trial
            # cloned twice at one iteration, around the driver's kill, logs both there)
            at = [m.value for m in schedule if m.step == clone["iter"]]
            assert any(v == pytest.approx(clone["new"]["lr_g"], rel=1e-6) for v in at[1:] or at), (clone, at)
            assert 1e-5 <= clone["new"]["lr_g"] <= 1e-3       # explore stays inside the space
    assert clones, "no trial was cloned in a PBT sweep of 4 trials and 3 exploit steps"
    # Every trial's run folder is beside its Tune checkpoints, whichever process ran it.
    folders = {p.parent.parent.name for p in (tmp_path / "sweeps" / "pbt").glob("*/lmgan/config.yaml")}
    assert folders == ids, folders
    # The report draws the lineage and the schedules.
    out = tmp_path / "report.html"
    rep = subprocess.run([sys.executable, "-m", "lmgan", "report", "--experiment", "clip6s", "--sweep", "pbt",
                          "--tracking-uri", uri, "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert rep.returncode == 0, rep.stderr[-2000:]
    page = out.read_text()
    assert 'id="lineage"' in page and 'id="schedules"' in page and "cloned" in page


def test_multi_objective_sweep_ends_with_a_pareto_front(ray_cluster, sweep_clip, tmp_path):
    optuna_db = f"sqlite:///{tmp_path / 'optuna.db'}"
    r = sweep(ray_cluster, tmp_path, "--video", sweep_clip, "--trials", 3, "--max-iters", 10, "--eval-every", 5,
              "--name", "mo", "--objective", "ssim,motion_corr", "--optuna-storage", optuna_db)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Pareto front (" in r.stdout and "best:" not in r.stdout
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c, parents, trials = runs_of(uri, "lmgan-clip6s")
    parent = next(p for p in parents if p.data.tags["lmgan.sweep"] == "mo")
    assert parent.data.tags["lmgan.objectives"] == "ssim,motion_corr" and parent.data.tags["lmgan.scheduler"] == "fifo"
    front = parent.data.tags["lmgan.pareto_trials"].split(",")
    mine = [t for t in trials if t.data.tags["mlflow.parentRunId"] == parent.info.run_id]
    assert front and {t.data.tags["lmgan.trial_id"] for t in mine if t.data.tags.get("lmgan.pareto")} == set(front)
    for t in mine:                                                     # no early stopping
        assert max(m.step for m in c.get_metric_history(t.info.run_id, "ssim")) == 10
    import optuna
    study = optuna.load_study(study_name="mo", storage=optuna_db)
    assert len(study.directions) == 2 and len(study.best_trials) >= 1
    out = tmp_path / "report.html"
    rep = subprocess.run([sys.executable, "-m", "lmgan", "report", "--experiment", "clip6s", "--sweep", "mo",
                          "--tracking-uri", uri, "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert rep.returncode == 0, rep.stderr[-2000:]
    assert 'id="pareto"' in out.read_text()
