"""The end of a sweep picks each trial's best evaluation and the checkpoint reported with it
(real Tune Result and Checkpoint objects over real folders; no cluster needed)."""

import pandas as pd
import pytest
from ray import tune

from lmgan.sweep.summary import _best


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
    got_value, got_iter, ckpt = _best(_result(tmp_path, reports), "motion_corr", mode)
    assert (got_value, got_iter) == (value, it)
    assert ckpt is not None and ckpt.path.endswith(f"checkpoint_{it:06d}")     # not the latest


def test_no_objective_value_means_no_best(tmp_path):
    result = _result(tmp_path, [{"iter": 5, "loss_g_adv": 1.0}])
    assert _best(result, "motion_corr", "max") == (None, None, None)
