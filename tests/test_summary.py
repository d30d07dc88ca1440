"""The end of a sweep picks each trial's best evaluation and the checkpoint reported with it
(real Tune Result and Checkpoint objects over real folders; no cluster needed)."""

from types import SimpleNamespace

import pandas as pd
import pytest
from ray import tune

from lmgan.sweep.summary import judged


def _result(tmp_path, reports):
    """A trial's Result as Tune hands it over: one checkpoint per report, oldest first."""
    kept = []
    for r in reports:
        folder = tmp_path / f"checkpoint_{r['iter']:06d}"
        folder.mkdir()
        kept.append((tune.Checkpoint.from_directory(str(folder)), r))
    return tune.Result(metrics=reports[-1], checkpoint=kept[-1][0], error=None, path=str(tmp_path),
                       metrics_dataframe=pd.DataFrame(reports), best_checkpoints=kept)


@pytest.mark.parametrize("mode, value, it", [("max", 0.30, 10), ("min", 0.05, 15)])
def test_best_is_the_best_evaluation_and_its_own_checkpoint(tmp_path, mode, value, it):
    reports = [{"iter": 5, "motion_corr": 0.10}, {"iter": 10, "motion_corr": 0.30},
               {"iter": 15, "motion_corr": 0.05}, {"iter": 20, "motion_corr": 0.20}]
    plan = SimpleNamespace(objective="motion_corr", mode=mode, judged_by_last=False)
    got_value, got_iter, ckpt = judged(_result(tmp_path, reports), plan)
    assert (got_value, got_iter) == (value, it)
    assert ckpt is not None and ckpt.path.endswith(f"checkpoint_{it:06d}")     # not the latest


def test_no_objective_value_means_no_best(tmp_path):
    result = _result(tmp_path, [{"iter": 5, "loss_g_adv": 1.0}])
    assert judged(result, SimpleNamespace(objective="motion_corr", mode="max", judged_by_last=False)) == (None, None, None)


class _Results(list):
    """What Tuner.fit() hands finish_sweep: the trials' Results, and how many ended."""
    num_errors = property(lambda self: sum(r.error is not None for r in self))
    num_terminated = property(lambda self: sum(r.error is None for r in self))


def test_the_sweep_ends_with_named_trials_and_links_to_mlflow_ui(tmp_path, capsys):
    from urllib.parse import unquote

    from lmgan.sweep import summary, tracking
    uri = tracking.default_uri(tmp_path)
    c = tracking.client(uri)
    eid = tracking.ensure_experiment(uri, "clip", tmp_path / "mlartifacts")
    parent = tracking.start_sweep_run(uri, eid, "sw", {}, {}, {})
    searched = ["lr_g", "vp_kernel"]
    session = SimpleNamespace(tracking_uri=uri, experiment_id=eid, parent_run_id=parent)
    plan = SimpleNamespace(name="sw", video="clip", objective="motion_corr", mode="max", trials=3, max_iters=20,
                           searched=searched, baseline={"lr_g": 1e-4, "vp_kernel": 3},   # aaaa0001's values
                           goals=[("motion_corr", "max")], multi_objective=False, judged_by_last=False)
    results = _Results()
    for tid, lr, k, peak, reached, error in [("aaaa0001", 1e-4, 3, 0.2, 20, None),
                                             ("bbbb0002", 2e-4, 5, 0.4, 10, None),
                                             ("cccc0003", 3e-4, 7, None, 5, RuntimeError("boom"))]:
        tr = tracking.TrialRun(uri, eid, parent, "sw", tid, {"lr_g": lr, "vp_kernel": k}, searched)
        tr.finish("errored" if error else "finished" if reached == 20 else "stopped")
        reports = [{"iter": reached, "motion_corr": peak, "config": {"lr_g": lr, "vp_kernel": k}}]
        (tmp_path / tid).mkdir()
        results.append(tune.Result(metrics=reports[-1], checkpoint=None, error=error, path=str(tmp_path / tid),
                                   metrics_dataframe=pd.DataFrame(reports) if peak else None, best_checkpoints=[]))
    assert summary.finish_sweep(results, plan, session, 60.0) == 0
    out = capsys.readouterr().out

    trials = {r.data.tags[tracking.TRIAL_ID]: r for r in tracking.trial_runs(c, eid, parent)}
    assert {t: (r.info.run_name, r.info.status) for t, r in trials.items()} == {
        "aaaa0001": ("t01 lr_g=1e-4 K=3", "FINISHED"),
        "bbbb0002": ("t02 lr_g=2e-4 K=5 stopped@10", "FINISHED"),
        "cccc0003": ("t03 lr_g=3e-4 K=7 errored", "FAILED")}
    run = c.get_run(parent)
    assert run.data.tags["lmgan.best_trial"] == "bbbb0002"                  # Tune's id, as before
    assert run.data.tags["lmgan.best_run_id"] == trials["bbbb0002"].info.run_id
    assert "| t02 lr_g=2e-4 K=5 stopped@10 | bbbb0002 | stopped |" in run.data.tags[tracking.NOTE]
    assert "best: bbbb0002 (t02 lr_g=2e-4 K=5 stopped@10) motion_corr=0.4" in out
    # The preset's own values ran as a trial: how far the best beat it is said and recorded.
    assert "baseline: aaaa0001 (the preset's own values) motion_corr=0.2; the best beat it by 0.2" in out
    assert run.data.tags["lmgan.baseline_trial"] == "aaaa0001" and run.data.metrics["baseline_motion_corr"] == 0.2
    assert f"mlflow ui --backend-store-uri {uri}" in out
    links = [w for w in out.split() if w.startswith("http://127.0.0.1:5000/#/")]
    assert links[0] == (f"http://127.0.0.1:5000/#/experiments/{eid}/runs?viewStateShareKey=lmgan-sw"
                        f"&workflowType=machine_learning")
    assert tracking.VIEW_PREFIX + "lmgan-sw" in c.get_experiment(eid).tags
    ids = [trials[t].info.run_id for t in ("bbbb0002", "aaaa0001", "cccc0003")]     # best first
    assert unquote(links[1]) == (f"http://127.0.0.1:5000/#/compare-runs?runs=[{','.join(map(repr, ids))}]"
                                 f"&experiments=['{eid}']&workflowType=machine_learning").replace("'", '"')


def test_the_gain_over_the_baseline_follows_the_objectives_direction():
    from lmgan.sweep.outcome import TrialOutcome, decide
    from lmgan.sweep.summary import baseline_line
    base = TrialOutcome("a", "finished", 20, 90.0, 20, baseline=True)
    out = decide([base, TrialOutcome("b", "finished", 20, 60.0, 20)], [("fvd", "min")])
    assert out.best.trial == "b" and out.gain == 30
    assert baseline_line(out.baseline, out.best, out.gain, "fvd").endswith("fvd=90; the best beat it by 30")
    alone = decide([base], [("fvd", "min")])
    assert baseline_line(alone.baseline, alone.best, alone.gain, "fvd").endswith("nothing the sweep found beat it")
    failed = TrialOutcome("a", "errored", 3, baseline=True)
    assert baseline_line(failed, out.best, None, "fvd").endswith("has no fvd (errored)")


def test_a_multi_objective_sweep_ends_with_its_pareto_front(tmp_path, capsys):
    """Two objectives: the trials no other beats on both are listed, tagged, and none is "best"."""
    from lmgan.sweep import summary, tracking
    uri = tracking.default_uri(tmp_path)
    c = tracking.client(uri)
    eid = tracking.ensure_experiment(uri, "clip", tmp_path / "mlartifacts")
    parent = tracking.start_sweep_run(uri, eid, "mo", {}, {}, {})
    session = SimpleNamespace(tracking_uri=uri, experiment_id=eid, parent_run_id=parent)
    plan = SimpleNamespace(name="mo", video="clip", objective="motion_corr", mode="max", trials=4, max_iters=20,
                           searched=["lr_g"], baseline=None, goals=[("motion_corr", "max"), ("fvd", "min")],
                           multi_objective=True, judged_by_last=True)
    results = _Results()
    # (motion_corr, fvd): a and c trade off; b is beaten by a on both; d never evaluated
    for tid, lr, corr, fvd in [("a", 1e-4, 0.30, 50.0), ("b", 2e-4, 0.20, 60.0), ("c", 3e-4, 0.10, 20.0),
                               ("d", 4e-4, None, None)]:
        tracking.TrialRun(uri, eid, parent, "mo", tid, {"lr_g": lr}, ["lr_g"]).finish("finished")
        last = {"iter": 20, "config": {"lr_g": lr}, **({"motion_corr": corr, "fvd": fvd} if corr else {})}
        (tmp_path / tid).mkdir()
        results.append(tune.Result(metrics=last, checkpoint=None, error=None, path=str(tmp_path / tid),
                                   metrics_dataframe=pd.DataFrame([last]), best_checkpoints=[]))
    assert summary.finish_sweep(results, plan, session, 60.0) == 0
    out = capsys.readouterr().out
    assert "Pareto front (2 of 4 trials" in out and "best:" not in out
    assert "  a (" in out and "motion_corr=0.3 fvd=50 at iteration 20" in out and "  c (" in out
    run = c.get_run(parent)
    assert run.data.tags["lmgan.pareto_trials"] == "a,c" and "lmgan.best_trial" not in run.data.tags
    tagged = {r.data.tags[tracking.TRIAL_ID] for r in tracking.trial_runs(c, eid, parent)
              if r.data.tags.get("lmgan.pareto") == "true"}
    assert tagged == {"a", "c"}
    assert "| trial | status | iter | motion_corr | fvd | pareto | lr_g |" in out
