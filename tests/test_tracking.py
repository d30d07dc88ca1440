"""What a trial could not send to MLflow survives its process: saved beside the reported
checkpoint, taken back by a restart, sent by the driver's summary, and never logged twice."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from conftest import free_port, start_mlflow_server
from lmgan.sweep import tracking


def _trial(tmp_path, uri):
    eid = tracking.ensure_experiment(uri, "clip", tmp_path / "mlartifacts")
    parent = tracking.start_sweep_run(uri, eid, "s", {}, {}, {})
    return eid, parent, tracking.TrialRun(uri, eid, parent, "s", "trial_0", {"lr_g": 1e-4}, ["lr_g"])


def test_unsent_results_are_saved_with_the_checkpoint_and_sent_once(tmp_path):
    uri = tracking.default_uri(tmp_path)
    eid, parent, tr = _trial(tmp_path, uri)
    tr.metrics({"ssim": 0.5, "loss_g_adv": 1.0}, 5)
    assert tr.flush()                                       # sent while the server is up
    sample = tmp_path / "iter_10.mp4"
    sample.write_bytes(b"not really a video, but a file")
    tr.metrics({"ssim": 0.6, "loss_g_adv": 0.9}, 10)        # the server is down from here
    tr.artifact(sample, "samples")
    tr.artifact(sample, "samples")                          # queued twice, saved once
    ckpt = tmp_path / "checkpoint_000001"
    ckpt.mkdir()
    tr.save_unsent(ckpt)
    sample.unlink()                                         # the trial's folder is gone with its node

    c = tracking.client(uri)
    assert tracking.send_unsent(c, tr.run_id, ckpt) == 2
    assert tracking.send_unsent(c, tr.run_id, ckpt) == 0    # the driver twice, or after a restart
    assert [(m.step, m.value) for m in c.get_metric_history(tr.run_id, "ssim")] == [(5, 0.5), (10, 0.6)]
    assert [a.path for a in c.list_artifacts(tr.run_id, "samples")] == ["samples/iter_10.mp4"]

    # A restarted trial takes back what is still unsent at its restored checkpoint.
    tr.metrics({"ssim": 0.7}, 15)
    ckpt2 = tmp_path / "checkpoint_000002"
    ckpt2.mkdir()
    tr.save_unsent(ckpt2)
    again = tracking.TrialRun(uri, eid, parent, "s", "trial_0", {"lr_g": 1e-4}, ["lr_g"])
    assert again.resumed and again.run_id == tr.run_id
    again.take_back(ckpt2, tmp_path / "unsent")
    assert [(m.key, m.step) for m in again.pending] == [("ssim", 15)]
    assert again.flush()
    assert [m.step for m in c.get_metric_history(tr.run_id, "ssim")] == [5, 10, 15]


def test_nothing_unsent_writes_nothing(tmp_path):
    _, _, tr = _trial(tmp_path, tracking.default_uri(tmp_path))
    tr.save_unsent(tmp_path)
    assert not (tmp_path / tracking.UNSENT).exists()
    assert tracking.send_unsent(tr.c, tr.run_id, tmp_path) == 0


@pytest.mark.slow
def test_an_errored_trial_keeps_its_reason_and_config_through_an_outage(tmp_path, monkeypatch):
    """TrialRun.fail while the tracking server does not answer (frozen with SIGSTOP: a hung
    server, one start-up instead of two): the reason (tag) and the config that hit it
    (error_config.yaml) are queued and sent once the server answers again, not dropped."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.setenv("LMGAN_MLFLOW_WAIT_S", "120")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = start_mlflow_server(port, f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts")
    try:
        eid = tracking.ensure_experiment(uri, "clip", None)
        parent = tracking.start_sweep_run(uri, eid, "s", {}, {}, {})
        tr = tracking.TrialRun(uri, eid, parent, "s", "trial_0", {"lr_g": 1e-4}, ["lr_g"])
        os.killpg(server.pid, signal.SIGSTOP)
        failing = threading.Thread(target=tr.fail, args=("ValueError: boom", {"lr_g": 1e-30}, tmp_path / "run"))
        failing.start()
        time.sleep(5)
        assert failing.is_alive() and tr.pending_tags and tr.failed_sends >= 1, \
            "fail() must wait for the server, holding the reason"
        os.killpg(server.pid, signal.SIGCONT)
        failing.join(150)
        assert not failing.is_alive()
        run = tracking.client(uri).get_run(tr.run_id)
        assert run.data.tags[tracking.ERROR] == "ValueError: boom"
        assert run.data.tags[tracking.STATUS] == "errored" and run.info.status == "FAILED"
        saved = tracking.client(uri).download_artifacts(tr.run_id, "error_config.yaml", str(tmp_path))
        assert yaml.safe_load(Path(saved).read_text()) == {"lr_g": 1e-30}
    finally:
        os.killpg(server.pid, signal.SIGCONT)
        os.killpg(server.pid, signal.SIGKILL)
