"""The sweep as an in-memory Optuna study, rebuilt from its trials' MLflow params and judged
values, for what Optuna computes from a study: parameter importances and the parallel-coordinate
plot. Rebuilt from MLflow, the one store every sweep writes whatever its scheduler, and from the
values the trials are ranked by, so that the importances explain the ranking the page shows.
"""

from __future__ import annotations

import math
import re
import warnings

from lmgan.errors import first_line
from lmgan.sweep import tracking
from lmgan.sweep.report.queries import Trial

IMPORTANCE_MIN_TRIALS = 10    # fewer finished or stopped trials: the importances come with a warning


def distributions(space, trials: list[Trial], keys: list[str]) -> dict:
    """Optuna distributions of the searched keys: from the space, else inferred from the values."""
    from optuna import distributions as d
    if space is not None:
        return {k: p.to_optuna() for k, p in space.items()}
    dists = {}
    for k in keys:
        vals = [t.params[k] for t in trials if k in t.params]
        try:
            nums = [float(v) for v in vals]
            if not all(map(math.isfinite, nums)) or any(v in ("True", "False") for v in vals):
                raise ValueError
        except ValueError:
            if len(set(vals)) > 1:
                dists[k] = d.CategoricalDistribution(sorted(set(vals)))
            continue
        if nums and min(nums) < max(nums):
            if all(float(n).is_integer() for n in nums) and all(re.fullmatch(r"-?\d+", v) for v in vals):
                dists[k] = d.IntDistribution(int(min(nums)), int(max(nums)))
            else:
                dists[k] = d.FloatDistribution(min(nums), max(nums))
    return dists


def from_param(s: str, dist):
    """An MLflow param string back in its distribution's type (raises ValueError if it is not one)."""
    from optuna import distributions as d
    if isinstance(dist, d.CategoricalDistribution):
        for choice in dist.choices:
            if tracking.param_str(choice) == s:
                return choice
        raise ValueError(f"{s!r} is none of the choices")
    if isinstance(dist, d.IntDistribution):
        v = float(s)
        if not v.is_integer():
            raise ValueError(f"{s!r} is not an integer")
        return int(v)
    return float(s)


def study(trials: list[Trial], dists: dict, maximize: bool):
    """(an in-memory study of the finished and stopped trials that have a judged value, how many
    of those were left out because their params are outside the space)."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = optuna.create_study(direction="maximize" if maximize else "minimize")
    skipped = 0
    for t in trials:
        if t.status not in ("finished", "stopped") or t.value is None:
            continue
        try:
            params = {k: from_param(t.params[k], dist) for k, dist in dists.items()}
            s.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=t.value))
        except (KeyError, ValueError):
            skipped += 1
    return s, skipped


def importances(s, dists: dict) -> tuple[dict | None, str, str]:
    """(importances or None, why not, the evaluator's name)."""
    import optuna
    done = s.trials
    if len(done) < 2:
        return None, (f"Parameter importances need at least 2 finished or stopped trials with an "
                      f"objective value; this sweep has {len(done)}."), ""
    varied = [k for k in dists if len({repr(t.params[k]) for t in done}) > 1]
    if not varied:
        return None, "No searched parameter varies across the finished trials.", ""
    if len({t.value for t in done}) < 2:
        return None, "The objective has the same value in every finished trial.", ""
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        name = "fANOVA (Optuna FanovaImportanceEvaluator, seed 0)"
    except ImportError:  # scikit-learn missing: Optuna's default evaluator
        evaluator, name = None, "Optuna's default evaluator"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imp = optuna.importance.get_param_importances(s, evaluator=evaluator, params=varied)
    except Exception as e:
        return None, f"Optuna could not compute importances ({first_line(e, 200)}).", ""
    return {k: float(v) for k, v in imp.items()}, "", name
