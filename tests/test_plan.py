"""The sweep plan's JSON round trip: what --resume reads back is the plan that started the sweep."""

import json

import pytest

from lmgan.config import Config, apply_overrides
from lmgan.errors import LmganError
from lmgan.sweep.plan import STATE, SweepPlan, load_state, parse_state, save_state, state_json
from lmgan.sweep.space import parse_space

SPACE = {"lr_g": {"loguniform": [1e-5, 1e-3]}, "rnn_layers": {"int": [1, 4]}, "vp_kernel": {"choice": [3, 5]}}


def plan(**kw) -> SweepPlan:
    config = apply_overrides(Config(), {"image_size": 64, "crop": [1, 2, 30, 30], "iters": 40}, "test")
    return SweepPlan(name="s", video="demo", source="/data/demo.mp4", objective="motion_corr", mode="max",
                     trials=4, max_iters=40, grace_iters=20, eval_every=20,
                     space=parse_space(SPACE, "test", config), space_file="demo.yaml", config=config,
                     seed=3, **kw)


def load_plan(storage, name):
    return load_state(storage, name)[0]


def test_round_trip_is_equal(tmp_path):
    p = plan(max_failures=5, optuna_storage="sqlite:///o.db", verbose=1)
    session = {"tracking_uri": "sqlite:///x.db", "experiment_id": "1", "parent_run_id": "abc",
               "address": None, "cpus_per_trial": 2.0, "gpus_per_trial": 0.5}
    save_state(str(tmp_path), p, session)
    back, saved = load_state(str(tmp_path), "s")
    assert back == p and saved == session and back.space["vp_kernel"].values == (3, 5)
    assert (back.max_failures, back.optuna_storage, back.verbose) == (5, "sqlite:///o.db", 1)
    assert back.searched == ["lr_g", "rnn_layers", "vp_kernel"]
    assert "lr_g" not in back.fixed and back.fixed["crop"] == [1, 2, 30, 30]


def test_a_plan_written_before_it_was_typed_still_resumes(tmp_path):
    """lmgan-sweep.json as the driver wrote it before: {"name", "plan": {...}, "resources", ...}."""
    p = plan()
    old = {"name": "s", "plan": {"video": "demo", "source": p.source, "objective": "motion_corr", "mode": "max",
                                 "trials": 4, "max_iters": 40, "grace_iters": 20, "eval_every": 20,
                                 "space": SPACE, "space_file": "demo.yaml", "fixed": p.fixed, "seed": 3},
           "tracking_uri": "sqlite:///x.db", "experiment_id": "1", "parent_run_id": "abc", "address": None,
           "resources": {"cpus_per_trial": 2.0, "gpus_per_trial": 0.0}}
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / STATE).write_text(json.dumps(old))
    back, saved = load_state(str(tmp_path), "s")
    assert back.fixed == p.fixed and back.space == p.space and saved["parent_run_id"] == "abc"
    assert saved["gpus_per_trial"] == 0.0 and back.max_failures == 2


def test_a_plan_of_format_2_keeps_its_session(tmp_path):
    """lmgan-sweep.json as the driver wrote it before the session was split off: one flat dict."""
    d = json.loads(state_json(plan(), None))["plan"]
    d.update(format=2, tracking_uri="sqlite:///x.db", experiment_id="1", parent_run_id="abc", address="h:1",
             cpus_per_trial=1.0, gpus_per_trial=0.0)
    back, saved = parse_state(json.dumps(d))
    assert back == plan() and saved["parent_run_id"] == "abc" and saved["address"] == "h:1"
    assert not back.extra


def test_unknown_sweep_and_unreadable_plan_are_one_line(tmp_path):
    save_state(str(tmp_path), plan(), None)
    with pytest.raises(LmganError, match=r"no sweep named 'x' .*\(known: s\)"):
        load_plan(str(tmp_path), "x")
    (tmp_path / "s" / STATE).write_text('{"format": 3, "plan": {"name": "s"}}')
    with pytest.raises(LmganError, match="not a sweep plan lmgan can read"):
        load_plan(str(tmp_path), "s")


def test_scheduler_and_objectives_round_trip_and_older_plans_are_asha(tmp_path):
    p = plan(scheduler="fifo", objectives=("motion_corr", "fvd"), modes=("max", "min"))
    save_state(str(tmp_path), p, None)
    back = load_plan(str(tmp_path), "s")
    assert back == p and back.goals == [("motion_corr", "max"), ("fvd", "min")] and back.multi_objective
    older = json.loads(state_json(p, None))
    for key in ("scheduler", "objectives", "modes"):
        del older["plan"][key]
    old = parse_state(json.dumps(older))[0]
    assert old.scheduler == "asha" and old.goals == [("motion_corr", "max")] and not old.judged_by_last
    assert plan(scheduler="pbt").mutable == ["lr_g"]      # rnn_layers and vp_kernel are drawn once


def test_resume_restores_how_the_sweep_runs_and_refuses_a_contradiction(tmp_path):
    """--max-failures, --optuna-storage and --verbose are the plan's: --resume keeps them, accepts
    them given again with the same value, and refuses another in one line."""
    from lmgan.sweep.arguments import build_parser
    from lmgan.sweep.plan import resumed_plan
    save_state(str(tmp_path), plan(max_failures=0, verbose=1), {"parent_run_id": "abc"})

    def resume(*extra):
        return resumed_plan(build_parser().parse_args(["--resume", "--name", "s", *extra]), str(tmp_path))
    back, saved = resume()
    assert (back.max_failures, back.verbose, saved["parent_run_id"]) == (0, 1, "abc")
    assert resume("--max-failures", "0", "--verbose")[0].verbose == 1
    with pytest.raises(LmganError, match=r"^--resume: the sweep was planned with --max-failures 0; drop --max-failures 3$"):
        resume("--max-failures", "3")
    with pytest.raises(LmganError, match=r"drop --optuna-storage sqlite:///o.db$"):
        resume("--optuna-storage", "sqlite:///o.db")
