"""Who proposes a sweep's trials and who stops or steers them: Optuna's TPE with ASHA (one
objective), TPE over several objectives with every trial run to the end (FIFO), or population-
based training; and which reported checkpoints Tune keeps for each."""

from __future__ import annotations

import math
import random

from ray import tune
from ray.tune.schedulers import (ASHAScheduler, FIFOScheduler, PopulationBasedTraining,
                                 TrialScheduler)

from lmgan.sweep.estimate import REDUCTION
from lmgan.sweep.plan import SweepPlan
from lmgan.sweep.schema import ITER


class LmganPBT(PopulationBasedTraining):
    """Tune's asynchronous PBT with two changes.

    No exploit at a trial's last report: a clone there would only copy the donor's final model
    under values it never trains with (`on_trial_result`, public).

    Every trial outside the worst quarter keeps its checkpoint as a donor, not only the best quarter
    at the moment it reported: trials that take turns on few workers report one by one, and the
    first to reach an exploit step has no peers yet, so Tune's rule would leave it no checkpoint
    to give. No public hook chooses the donors, so this overrides `_checkpoint_or_exploit`, read
    from Ray 2.60 (the version pyproject.toml pins); tests/test_schedulers.py checks its signature.
    """

    def __init__(self, max_iters: int, **kw):
        super().__init__(**kw)
        self.max_iters = max_iters

    def on_trial_result(self, tune_controller, trial, result):
        if result.get(ITER, 0) >= self.max_iters:
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def _checkpoint_or_exploit(self, trial, tune_controller, upper_quantile, lower_quantile):
        # a function trainable's "save" is the checkpoint it reported: keeping it costs nothing
        donors = upper_quantile if trial in lower_quantile or trial in upper_quantile else [*upper_quantile, trial]
        super()._checkpoint_or_exploit(trial, tune_controller, donors, lower_quantile)


def search_and_scheduler(plan: SweepPlan):
    """(Tune search algorithm, Tune scheduler) for the plan."""
    import optuna
    from ray.tune.search.basic_variant import BasicVariantGenerator
    from ray.tune.search.optuna import OptunaSearch

    first = [plan.baseline] if plan.baseline else None
    if plan.scheduler == "pbt":
        random.seed(plan.seed)           # PBT's exploit and explore draw from `random`
        space = plan.space

        def clamp(config: dict) -> dict:
            return {**config, **{k: space[k].clamp(config[k]) for k in plan.mutable}}

        scheduler = LmganPBT(
            plan.max_iters, time_attr=ITER, metric=plan.objective, mode=plan.mode,
            perturbation_interval=plan.grace_iters,
            hyperparam_mutations={k: space[k].to_mutation() for k in plan.mutable},
            quantile_fraction=0.25, resample_probability=0.25, custom_explore_fn=clamp,
            # asynchronous: the synchronous mode (exploit steps waiting for the whole population)
            # never finished a sweep resumed after its driver was killed
            synch=False)
        return BasicVariantGenerator(points_to_evaluate=first, random_state=plan.seed), scheduler
    names, modes = [n for n, _ in plan.goals], [m for _, m in plan.goals]
    sampler = optuna.samplers.TPESampler(seed=plan.seed, multivariate=True,
                                         n_startup_trials=max(2, min(10, plan.trials // 3)))
    storage = optuna.storages.RDBStorage(plan.optuna_storage) if plan.optuna_storage else None
    search = OptunaSearch(metric=names if plan.multi_objective else plan.objective,
                          mode=modes if plan.multi_objective else plan.mode, sampler=sampler,
                          storage=storage, study_name=plan.name, points_to_evaluate=first)
    if plan.scheduler == "fifo":
        return search, FIFOScheduler()
    return search, ASHAScheduler(time_attr=ITER, metric=plan.objective, mode=plan.mode, max_t=plan.max_iters,
                                 grace_period=plan.grace_iters, reduction_factor=REDUCTION)


def checkpoints_kept(plan: SweepPlan) -> tune.CheckpointConfig:
    """Which reported checkpoints Tune keeps. An ASHA trial its two best (it is judged by its
    best). A trial judged by its last evaluation (PBT, several objectives) its newest; PBT's as many
    as a lagging clone may still ask for (the one a donor saved at its last exploit step, up to
    two exploit intervals ago)."""
    if not plan.judged_by_last:
        return tune.CheckpointConfig(num_to_keep=2, checkpoint_score_attribute=plan.objective,
                                     checkpoint_score_order=plan.mode)
    keep = 2 * math.ceil(plan.grace_iters / plan.eval_every) + 2 if plan.scheduler == "pbt" else 2
    return tune.CheckpointConfig(num_to_keep=keep, checkpoint_score_attribute=ITER, checkpoint_score_order="max")
