"""The one rule for how a sweep came out (lmgan/sweep/outcome.py), as docs/sweeps.md states it."""

import math

from lmgan.sweep.outcome import TrialOutcome, decide, judged, latest_by_step, non_dominated

REPORTS = [(5, 0.10), (10, 0.30), (15, 0.05), (20, 0.20)]


def test_asha_and_fifo_judge_a_trial_by_its_best_evaluation():
    assert judged(REPORTS, "max", by_last=False) == (0.30, 10)
    assert judged(REPORTS, "min", by_last=False) == (0.05, 15)
    assert judged([(5, 0.3), (10, 0.3)], "max", by_last=False) == (0.3, 5)     # the earliest of equals


def test_pbt_and_several_objectives_judge_a_trial_by_its_last():
    assert judged(REPORTS, "max", by_last=True) == (0.20, 20)


def test_a_repeated_iteration_counts_its_last_report_and_nan_never_counts():
    """A PBT clone continues from an earlier iteration: its new lineage's values replace the old."""
    clone = [(5, 0.1), (10, 0.9), (5, 0.2), (10, 0.15)]
    assert latest_by_step(clone) == [(5, 0.2), (10, 0.15)]
    assert judged(clone, "max", by_last=False) == (0.2, 5)
    assert judged([(5, math.nan), (10, 0.4)], "max", by_last=False) == (0.4, 10)
    assert judged([(5, math.nan)], "max", by_last=True) is None and judged([], "min", False) is None


def test_the_best_the_baseline_gain_and_trials_without_a_value():
    base = TrialOutcome("a", "finished", 20, 90.0, 20, baseline=True)
    out = decide([TrialOutcome("c", "errored", 3), base, TrialOutcome("b", "stopped", 10, 60.0, 10)],
                 [("fvd", "min")])
    assert [t.trial for t in out.ranked] == ["b", "a", "c"] and out.best.trial == "b"
    assert out.gain == 30.0 and out.front == []
    worse = decide([base, TrialOutcome("b", "finished", 20, 95.0, 20)], [("fvd", "min")])
    assert worse.best is base and worse.gain is None            # nothing beat the baseline
    up = decide([TrialOutcome("a", "finished", 20, 0.2, 20, baseline=True), TrialOutcome("b", "finished", 20, 0.5, 5)],
                [("motion_corr", "max")])
    assert up.best.trial == "b" and math.isclose(up.gain, 0.3)


def test_several_objectives_have_a_front_and_no_best():
    trials = [TrialOutcome(n, "finished", 20, s[0], 20, {"motion_corr": s[0], "fvd": s[1]})
              for n, s in [("a", (0.3, 50.0)), ("b", (0.2, 60.0)), ("c", (0.1, 20.0))]]
    trials.append(TrialOutcome("d", "errored", 0, scores={"motion_corr": None, "fvd": None}))
    out = decide(trials, [("motion_corr", "max"), ("fvd", "min")])
    assert [t.trial for t in out.front] == ["a", "c"] and out.best is None and out.gain is None
    assert non_dominated([(1.0, 1.0), (2.0, 2.0)], ["min", "min"]) == [True, False]
    assert non_dominated([(1.0, 1.0), (2.0, 2.0)], ["max", "max"]) == [False, True]
