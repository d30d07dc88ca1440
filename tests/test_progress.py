"""The sweep's console: one line per trial evaluation and one for the sweep, stops said as
stops (with their rung), errors with their reason. Fed the way Tune calls its callbacks."""

import io
from types import SimpleNamespace

from lmgan.config import Config
from lmgan.sweep.plan import SweepPlan
from lmgan.sweep.progress import SweepProgress, asha_rungs, trial_name


def plan(**kw):
    return SweepPlan(name="demo-1", video="demo", source="x.mp4", objective="motion_corr", mode="max",
                     trials=3, max_iters=1000, grace_iters=200, eval_every=100, space={}, space_file="",
                     config=Config(), seed=0, **kw)


def trial(tid, n, **kw):
    return SimpleNamespace(trial_id=tid, experiment_tag=f"{n}_lr_g=0.0001", last_result={}, error_file=None, **kw)


def test_lines_a_person_reads(tmp_path):
    out = io.StringIO()
    p = SweepProgress(plan(), out)
    a, b, c = trial("aaaa1111", 1), trial("bbbb2222", 2), trial("cccc3333", 3)
    for t in (a, b, c):
        p.on_trial_start(0, [a, b, c], t)
    p.on_trial_result(0, [a, b, c], a, {"iter": 200, "it_per_s": 2.0, "motion_corr": 0.25})
    p.on_trial_result(0, [a, b, c], b, {"iter": 200, "it_per_s": 1.0, "motion_corr": 0.05})
    b.last_result = {"iter": 200}
    p.on_trial_complete(0, [a, b, c], b)
    (tmp_path / "error.txt").write_text("Traceback ...\nTrainingDiverged: training diverged: non-finite loss_gp at iteration 30\n")
    c.error_file = str(tmp_path / "error.txt")
    p.on_trial_error(0, [a, b, c], c)
    p.on_trial_result(0, [a, b, c], a, {"iter": 1000, "it_per_s": 2.0, "motion_corr": 0.2})
    a.last_result = {"iter": 1000}
    p.on_trial_complete(0, [a, b, c], a)
    lines = out.getvalue().splitlines()
    assert lines[0] == "t01 aaaa1111  iter  200/1000  2.00 it/s  motion_corr 0.25 (its best 0.25; sweep 0.25)  ~6.7 min left"
    assert lines[1].startswith("sweep demo-1: 3 running of 3; 0.0 min elapsed, ≤ ")
    assert lines[3].startswith("sweep demo-1: 3 running of 3; ") and "left" in lines[3]
    assert lines[4] == "t02 bbbb2222 stopped by ASHA at the 200-iteration rung (below the rung's best third); best motion_corr 0.05"
    assert lines[5] == ("t03 cccc3333 errored: TrainingDiverged: training diverged: non-finite loss_gp at "
                        "iteration 30 (its MLflow run has the reason)")
    assert lines[6].startswith("t01 aaaa1111  iter 1000/1000") and "(its best 0.25; sweep 0.25)" in lines[6]
    assert lines[7].startswith("sweep demo-1: 1 stopped, 1 errored, 1 running of 3; ")
    assert lines[8] == "t01 aaaa1111 finished at iteration 1000; best motion_corr 0.25"


def test_names_and_rungs():
    assert trial_name(trial("x", 7)) == "t07"
    assert asha_rungs(200, 1000) == [200, 600]
    assert asha_rungs(5, 30) == [5, 15]


def test_a_pbt_exploit_is_said_with_its_values_before_and_after_and_a_trial_counts_its_last():
    from lmgan.sweep.schema import EXPLOITED, Exploit
    out = io.StringIO()
    p = SweepProgress(plan(scheduler="pbt"), out)
    a, b = trial("aaaa1111", 1), trial("bbbb2222", 2)
    p.on_trial_result(0, [a, b], a, {"iter": 200, "it_per_s": 2.0, "motion_corr": 0.30})
    e = Exploit(iter=200, from_trial="aaaa1111", at=200, was={"lr_g": 1e-4}, new={"lr_g": 1.2e-4})
    p.on_trial_result(0, [a, b], b, {"iter": 200, "it_per_s": 2.0, "motion_corr": 0.1, EXPLOITED: e.to_json()})
    p.on_trial_result(0, [a, b], a, {"iter": 400, "it_per_s": 2.0, "motion_corr": 0.20})
    lines = out.getvalue().splitlines()
    assert "t02 bbbb2222 continues from t01 aaaa1111's checkpoint of iteration 200 (PBT): lr_g 1e-4 → 1.2e-4" in lines
    assert "motion_corr 0.2 (its last 0.2; sweep 0.2)" in lines[-2]      # PBT judges a trial by its last
