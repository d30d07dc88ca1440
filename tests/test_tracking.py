"""What a trial could not send to MLflow survives its process: saved beside the reported
checkpoint, taken back by a restart, sent by the driver's summary, and never logged twice."""

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from support import free_port, start_mlflow_server
from lmgan.sweep import tracking
from lmgan.sweep.outbox import send_saved
from lmgan.sweep.schema import UNSENT


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
    assert send_saved(c, tr.run_id, ckpt) == 2
    assert send_saved(c, tr.run_id, ckpt) == 0    # the driver twice, or after a restart
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
    assert [(m.key, m.step) for m in again.outbox.metrics] == [("ssim", 15)]
    assert again.flush()
    assert [m.step for m in c.get_metric_history(tr.run_id, "ssim")] == [5, 10, 15]


def test_nothing_unsent_writes_nothing(tmp_path):
    _, _, tr = _trial(tmp_path, tracking.default_uri(tmp_path))
    tr.save_unsent(tmp_path)
    assert not (tmp_path / UNSENT).exists()
    assert send_saved(tr.c, tr.run_id, tmp_path) == 0


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
        assert failing.is_alive() and tr.outbox.tags and tr.failed_sends >= 1, \
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


# ----------------------------------------------------------------- what `mlflow ui` opens on


def test_the_experiment_is_a_model_training_experiment_new_or_old(tmp_path):
    uri = tracking.default_uri(tmp_path)
    c = tracking.client(uri)
    eid = tracking.ensure_experiment(uri, "clip", tmp_path / "mlartifacts")
    tags = c.get_experiment(eid).tags
    assert tags[tracking.KIND] == "custom_model_development"
    assert "lmgan sweeps on `clip`" in tags[tracking.NOTE]
    # An experiment an older lmgan (or MLflow's GenAI default) made: marked when a sweep starts,
    # also on --resume (which skips ensure_experiment); a description a person wrote is kept.
    old = c.create_experiment("lmgan-old", tags={tracking.KIND: "genai_development",
                                                 tracking.NOTE: "mine"})
    tracking.start_sweep_run(uri, old, "s", {"lmgan.video": "old"}, {}, {})
    assert c.get_experiment(old).tags[tracking.KIND] == "custom_model_development"
    assert c.get_experiment(old).tags[tracking.NOTE] == "mine"
    c.set_experiment_tag(old, tracking.KIND, "genai_development")
    assert tracking.ensure_experiment(uri, "old", None) == old
    assert c.get_experiment(old).tags[tracking.KIND] == "custom_model_development"


@pytest.mark.parametrize("values, name", [
    ({"lr_g": 1.2345e-4, "vp_kernel": 7}, "t03 lr_g=1.2e-4 K=7"),
    ({"lr_g": "0.00012345", "vp_kernel": "7"}, "t03 lr_g=1.2e-4 K=7"),     # as MLflow params
    ({"lambda_l1": 0.5, "rnn_layers": 2, "mfs": True}, "t03 lambda_l1=0.5 mfs=on L_R=2"),
    ({"lambda_l1": 3.14159, "lr_g": 2e-3}, "t03 lambda_l1=3.1 lr_g=2e-3"),
])
def test_trial_run_names(values, name):
    assert tracking.trial_run_name(3, values, sorted(values)) == name
    assert tracking.trial_run_name(12, values, sorted(values), "stopped", 15).startswith("t12 ")
    assert tracking.trial_run_name(12, values, sorted(values), "stopped", 15).endswith(" stopped@15")
    assert tracking.trial_run_name(3, values, sorted(values), "errored") == name + " errored"
    assert tracking.trial_run_name(3, values, sorted(values), "finished") == name


def test_trial_runs_are_numbered_named_and_end_told_apart(tmp_path):
    uri = tracking.default_uri(tmp_path)
    c = tracking.client(uri)
    eid = tracking.ensure_experiment(uri, "clip", tmp_path / "mlartifacts")
    parent = tracking.start_sweep_run(uri, eid, "s", {}, {}, {})
    searched = ["lr_g", "vp_kernel"]
    runs = {}
    for tid, lr, k in [("a1b2c3d4", 1e-4, 3), ("ffee0011", 2.5e-4, 5), ("0badc0de", 3e-4, 7),
                       ("12345678", 1e-3, 3)]:
        time.sleep(0.01)                                # distinct start times
        runs[tid] = tracking.TrialRun(uri, eid, parent, "s", tid, {"lr_g": lr, "vp_kernel": k,
                                                                   "image_size": 32}, searched)
    names = {t: c.get_run(r.run_id).info.run_name for t, r in runs.items()}
    assert names == {"a1b2c3d4": "t01 lr_g=1e-4 K=3", "ffee0011": "t02 lr_g=2.5e-4 K=5",
                     "0badc0de": "t03 lr_g=3e-4 K=7", "12345678": "t04 lr_g=1e-3 K=3"}
    # Tune's id stays the key: found by tag, and a restart continues the same run and name.
    again = tracking.TrialRun(uri, eid, parent, "s", "ffee0011", {"lr_g": 2.5e-4, "vp_kernel": 5}, searched)
    assert again.resumed and again.run_id == runs["ffee0011"].run_id
    assert tracking.find_run(c, eid, **{tracking.TRIAL_ID: "ffee0011"}).info.run_name == "t02 lr_g=2.5e-4 K=5"

    runs["a1b2c3d4"].finish("finished")
    runs["ffee0011"].finish("stopped")                  # ASHA: FINISHED, not KILLED (red in the UI)
    runs["0badc0de"].fail("ValueError: boom", {"lr_g": 3e-4}, tmp_path / "e")
    assert tracking.settle_lost(c, eid, parent, {"a1b2c3d4", "ffee0011", "0badc0de"}) == ["12345678"]
    # Two trials that started at the same moment took the same number: the end renumbers.
    c.set_tag(runs["12345678"].run_id, tracking.INDEX, "3")
    c.update_run(runs["12345678"].run_id, name="t03 lr_g=1e-3 K=3")
    got = tracking.name_trials(c, eid, parent, {runs["ffee0011"].run_id: 15})
    want = {"a1b2c3d4": ("t01 lr_g=1e-4 K=3", "FINISHED"),
            "ffee0011": ("t02 lr_g=2.5e-4 K=5 stopped@15", "FINISHED"),
            "0badc0de": ("t03 lr_g=3e-4 K=7 errored", "FAILED"),
            "12345678": ("t04 lr_g=1e-3 K=3 lost", "KILLED")}
    for tid, (name, status) in want.items():
        run = c.get_run(runs[tid].run_id)
        assert (run.info.run_name, run.info.status) == (name, status)
        assert run.data.tags[tracking.TRIAL_ID] == tid and got[run.info.run_id] == name
        assert run.data.tags["mlflow.runName"] == name
        assert run.data.tags[tracking.INDEX] == name.split()[0][1:].lstrip("0")
        assert run.info.end_time is not None            # renaming keeps the run's end


def test_the_sweep_view_and_links(tmp_path):
    import json
    from urllib.parse import unquote
    uri = tracking.default_uri(tmp_path)
    c = tracking.client(uri)
    eid = tracking.ensure_experiment(uri, "clip", None)
    key = tracking.save_sweep_view(c, eid, "clip-2026 01", "motion_corr", "max", ["lr_g", "vp_kernel"])
    state = json.loads(c.get_experiment(eid).tags[tracking.VIEW_PREFIX + key])
    assert state == {"searchFilter": "tags.`lmgan.sweep` = 'clip-2026 01' and tags.`lmgan.role` = 'trial'",
                     "orderByKey": "metrics.`best_motion_corr`", "orderByAsc": False,
                     "selectedColumns": ["metrics.`best_motion_corr`", "metrics.`motion_corr`",
                                         "params.`lr_g`", "params.`vp_kernel`", "tags.`lmgan.status`"]}
    assert key == "lmgan-clip-2026_01"
    base = tracking.ui_base(uri)
    assert base == "http://127.0.0.1:5000" and tracking.ui_base("http://host:8080/") == "http://host:8080"
    assert tracking.experiment_url(base, eid, key) == (
        f"http://127.0.0.1:5000/#/experiments/{eid}/runs?viewStateShareKey={key}&workflowType=machine_learning")
    url = tracking.compare_url(base, eid, ["r1", "r2"])
    assert url.startswith("http://127.0.0.1:5000/#/compare-runs?runs=%5B%22r1%22")
    assert unquote(url).endswith(f'/#/compare-runs?runs=["r1","r2"]&experiments=["{eid}"]&workflowType=machine_learning')


def test_pbt_clones_are_recorded_and_a_resumed_sweep_undoes_the_ones_it_did_not_keep(tmp_path):
    """A clone is a numbered tag and lineage.json on the trial's run; the same clone restarted
    is not recorded twice; restoring the trial's own older checkpoint removes later clones."""
    from lmgan.sweep import lineage as lineages
    from lmgan.sweep.schema import Exploit
    uri = tracking.default_uri(tmp_path)
    c = tracking.client(uri)
    eid = tracking.ensure_experiment(uri, "clip", tmp_path / "mlartifacts")
    parent = tracking.start_sweep_run(uri, eid, "sw", {}, {}, {})
    tr = tracking.TrialRun(uri, eid, parent, "sw", "t_a", {"lr_g": 1e-4}, ["lr_g"])
    run_dir = tmp_path / "t_a" / "lmgan"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.yaml").write_text("lr_g: 1.0e-4\n")
    for it in (5, 10):                                   # its own checkpoints; 10 is past the clone
        (run_dir / "checkpoints" / f"ckpt_{it:07d}.pt").write_bytes(b"x")
    donor = {"trial": "t_b", "values": {"lr_g": 2e-4}}
    clone = lineages.exploit_of(donor, run_dir, 5, {"lr_g": 2.4e-4}, ["lr_g"])
    assert clone.to_dict() == {"iter": 5, "at": 10, "from": "t_b", "was": {"lr_g": 1e-4}, "donor": {"lr_g": 2e-4},
                               "new": {"lr_g": 2.4e-4}}
    assert [p.name for p in sorted((run_dir / "checkpoints").iterdir())] == ["ckpt_0000005.pt"]
    lineage = lineages.record(tr, run_dir, [], clone)
    assert lineages.record(tr, run_dir, lineage, Exploit.from_dict(clone.to_dict())) == lineage   # a restart of it
    second = Exploit(iter=15, from_trial="t_c", at=clone.at, was=clone.was, donor=clone.donor, new=clone.new)
    lineage = lineages.record(tr, run_dir, lineage, second)
    tr.flush()
    tags = c.get_run(tr.run_id).data.tags
    assert Exploit.from_json(tags["lmgan.exploit.01"]) == clone and json.loads(tags["lmgan.exploit.02"])["from"] == "t_c"
    assert json.loads((run_dir / "lineage.json").read_text()) == [clone.to_dict(), second.to_dict()]
    # The sweep is resumed from a snapshot whose checkpoint of this trial had one clone behind it.
    kept = lineages.undo_after(tr, run_dir, lineages.read_lineage(run_dir), 1)
    tr.flush()
    tags = c.get_run(tr.run_id).data.tags
    assert kept == [clone] and "lmgan.exploit.02" not in tags and "lmgan.exploit.01" in tags
    assert json.loads((run_dir / "lineage.json").read_text()) == [clone.to_dict()]
    assert [a.path for a in c.list_artifacts(tr.run_id)] == ["lineage.json"]
