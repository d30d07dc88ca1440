"""The schedulers the plan asks for, and the one private Tune hook lmgan's PBT overrides."""

import inspect

from ray.tune.schedulers import PopulationBasedTraining

from lmgan.sweep.schedulers import LmganPBT


def test_the_private_pbt_hook_is_the_one_it_was_written_against():
    """LmganPBT overrides `_checkpoint_or_exploit` (no public hook chooses PBT's donors), read
    from Ray 2.60: a Ray whose hook moved or changed its arguments fails here, not mid-sweep."""
    import ray
    assert ray.__version__.startswith("2.60."), ray.__version__     # pyproject.toml pins ray 2.60.*
    hook = inspect.signature(PopulationBasedTraining._checkpoint_or_exploit)
    assert list(hook.parameters) == ["self", "trial", "tune_controller", "upper_quantile", "lower_quantile"]
    assert list(inspect.signature(LmganPBT._checkpoint_or_exploit).parameters) == list(hook.parameters)


def test_pbt_never_exploits_at_a_trials_last_report():
    from ray.tune.schedulers import TrialScheduler
    pbt = LmganPBT(20, time_attr="iter", metric="ssim", mode="max", perturbation_interval=5,
                   hyperparam_mutations={"lr_g": [1e-4, 2e-4]})
    assert pbt.on_trial_result(None, None, {"iter": 20, "ssim": 0.1}) == TrialScheduler.CONTINUE
