"""The sweep plan's JSON round trip: what --resume reads back is the plan that started the sweep."""

import dataclasses
import json

import pytest

from lmgan.config import Config, apply_overrides
from lmgan.errors import LmganError
from lmgan.sweep.plan import STATE, SweepPlan, load_plan
from lmgan.sweep.space import parse_space

SPACE = {"lr_g": {"loguniform": [1e-5, 1e-3]}, "rnn_layers": {"int": [1, 4]}, "vp_kernel": {"choice": [3, 5]}}


def plan(**kw) -> SweepPlan:
    config = apply_overrides(Config(), {"image_size": 64, "crop": [1, 2, 30, 30], "iters": 40}, "test")
    return SweepPlan(name="s", video="demo", source="/data/demo.mp4", objective="motion_corr", mode="max",
                     trials=4, max_iters=40, grace_iters=20, eval_every=20,
                     space=parse_space(SPACE, "test", config), space_file="demo.yaml", config=config,
                     seed=3, **kw)


def test_round_trip_is_equal(tmp_path):
    p = dataclasses.replace(plan(), tracking_uri="sqlite:///x.db", experiment_id="1", parent_run_id="abc",
                            cpus_per_trial=2.0, gpus_per_trial=0.5)
    p.save(str(tmp_path))
    back = load_plan(str(tmp_path), "s")
    assert back == p and back.space["vp_kernel"].values == (3, 5)
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
    back = load_plan(str(tmp_path), "s")
    assert back.fixed == p.fixed and back.space == p.space and back.parent_run_id == "abc"
    assert back.gpus_per_trial == 0.0


def test_unknown_sweep_and_unreadable_plan_are_one_line(tmp_path):
    plan().save(str(tmp_path))
    with pytest.raises(LmganError, match=r"no sweep named 'x' .*\(known: s\)"):
        load_plan(str(tmp_path), "x")
    (tmp_path / "s" / STATE).write_text('{"format": 2, "name": "s"}')
    with pytest.raises(LmganError, match="not a sweep plan lmgan can read"):
        load_plan(str(tmp_path), "s")


def test_scheduler_and_objectives_round_trip_and_older_plans_are_asha(tmp_path):
    p = plan(scheduler="fifo", objectives=("motion_corr", "fvd"), modes=("max", "min"))
    p.save(str(tmp_path))
    back = load_plan(str(tmp_path), "s")
    assert back == p and back.goals == [("motion_corr", "max"), ("fvd", "min")] and back.multi_objective
    older = json.loads(p.to_json())
    for key in ("scheduler", "objectives", "modes"):
        del older[key]
    old = SweepPlan.from_json(json.dumps(older))
    assert old.scheduler == "asha" and old.goals == [("motion_corr", "max")] and not old.judged_by_last
    assert plan(scheduler="pbt").mutable == ["lr_g"]      # rnn_layers and vp_kernel are drawn once
