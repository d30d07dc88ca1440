"""What starting a sweep produces, made once: the pretrained weights found, the tracking store
checked, the video decoded, Ray started, each trial's resources placed and the sweep's MLflow
parent run. Everything is checked before the first thing is created, in order of cost: a mistake
costs a one-line error, not a cluster's worth of failed trials.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lmgan.errors import LmganError, first_line
from lmgan.sweep import tracking
from lmgan.sweep.plan import SESSION_KEYS, SweepPlan
from lmgan.sweep.schema import SPACE_FILE, VIDEO


@dataclass(frozen=True)
class SweepSession:
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    address: str | None          # the Ray cluster (None: a local Ray this driver started)
    cpus_per_trial: float
    gpus_per_trial: float
    fit: int = 1                 # trials at once on the cluster as it is now (measured again on resume)
    storage: str = ""            # Tune's storage (the sweep's folder is <storage>/<plan.name>)
    weight_paths: dict = field(default_factory=dict)   # pretrained weight name → its file

    def saved(self) -> dict:
        """What --resume restores (lmgan-sweep.json's "session")."""
        return {k: getattr(self, k) for k in SESSION_KEYS}


# ----------------------------------------------------------------------------- before anything
def check_weights(plan: SweepPlan, download: bool = True) -> tuple[dict, list[str]]:
    """Every pretrained weight the trials will load (config.needed_weights: VGG16 when lambda_pl > 0,
    the eval_metrics' from the metric registry): name → its file, found or downloaded now into
    the cache, once for the whole sweep; and a line for each one that cannot be had, saying how
    to provide it."""
    from lmgan import weights
    from lmgan.config import needed_weights

    found, missing = {}, []
    for name, explicit in needed_weights(plan.config).items():
        try:
            found[name] = weights.locate(name, explicit, download=download,
                                         flag="--set vgg_weights=PATH" if name == "vgg16" else "")
        except LmganError as e:
            missing.append(f"{name}: {e}")
    return found, missing


def require_weights(plan: SweepPlan) -> dict:
    """check_weights, before anything is created: one line per missing weight, then exit 2."""
    found, missing = check_weights(plan)
    for line in missing:
        print(f"sweep {plan.name}: {line}", file=sys.stderr)
    if missing:
        raise LmganError(f"{len(missing)} pretrained weight file{'s' if len(missing) > 1 else ''} this "
                         f"sweep needs {'are' if len(missing) > 1 else 'is'} missing (above); nothing was "
                         f"created or started")
    return found


def open_store(plan: SweepPlan, saved: dict, option: str | None, runs: Path) -> str:
    """The tracking URI, reachable. With --resume, --tracking-uri is the sweep's own store at a
    new address (a resubmitted Slurm job serves it from another node): it must hold the sweep's run."""
    uri = option or saved.get("tracking_uri") or tracking.default_uri(runs)
    tracking.check_reachable(uri)
    parent = saved.get("parent_run_id")
    if parent and uri != saved.get("tracking_uri"):
        try:
            tracking.client(uri).get_run(parent)
        except Exception:
            raise LmganError(f"--tracking-uri {uri} does not hold the sweep's MLflow run {parent}; "
                             f"with --resume it must be the same store ({saved.get('tracking_uri')}) at a new "
                             f"address") from None
    return uri


def preflight(plan: SweepPlan, weight_paths: dict) -> None:
    """Decode the video into the cache once (progress shown here, not in 20 trials) and build
    the evaluator with the weights found: bad files, short held-out parts and unreadable metric
    weights fail now."""
    import torch

    from lmgan.data.dataset import load_video_data
    from lmgan.metrics.evaluator import Evaluator

    cfg = plan.config
    data = load_video_data(plan.source, cfg, progress=True)
    ev = Evaluator(cfg.eval_metrics, torch.device("cpu"), weight_paths=weight_paths)
    ev.check(len(data.heldout_starts(cfg.seq_len, cfg.eval_windows)), cfg.seq_len)


# ----------------------------------------------------------------------------- starting
@contextmanager
def ray_started(plan: SweepPlan, address: str | None):
    """Ray for the sweep's lifetime: connected to `address`, else a local one started here."""
    import ray
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    if not plan.verbose:       # Tune's tables and hints only with --verbose: SweepProgress says it
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    print(f"sweep {plan.name}: {'connecting to Ray at ' + address if address else 'starting a local Ray'}",
          file=sys.stderr)
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=plan.verbose > 0)
    except ConnectionError as e:
        raise LmganError(f"--address {address}: cannot connect to Ray ({first_line(e)})") from None
    try:
        yield address
    finally:
        ray.shutdown()


def start(plan: SweepPlan, saved: dict, args, uri: str, address: str | None, runs: Path, storage: str,
          weight_paths: dict) -> SweepSession:
    """With Ray up: each trial's resources (a resumed sweep's keep what they were placed with,
    unless given again) and the sweep's MLflow parent run (the same one again on --resume)."""
    import ray

    from lmgan.sweep.resources import per_trial
    wanted = argparse.Namespace(**{k: getattr(args, k, None) if getattr(args, k, None) is not None else saved.get(k)
                                   for k in ("cpus_per_trial", "gpus_per_trial")})
    cpus, gpus, fit = per_trial(wanted, ray.nodes(), plan.config.image_size)
    experiment_id, parent = sweep_run(plan, uri, runs, saved.get("experiment_id"))
    return SweepSession(tracking_uri=uri, experiment_id=experiment_id, parent_run_id=parent, address=address,
                        cpus_per_trial=cpus, gpus_per_trial=gpus, fit=fit, storage=storage,
                        weight_paths=weight_paths)


def sweep_run(plan: SweepPlan, uri: str, runs: Path, experiment_id: str | None = None) -> tuple[str, str]:
    """(experiment id, parent run id): the video's experiment and the sweep's run in it."""
    import yaml

    from lmgan.sweep.space import dump_space
    # A tracking server stores artifacts itself; a store opened directly keeps them beside it.
    artifacts = None if uri.startswith(("http://", "https://")) else runs / "mlartifacts"
    experiment_id = experiment_id or tracking.ensure_experiment(uri, plan.video, artifacts)
    aims = plan.aims
    parent = tracking.start_sweep_run(
        uri, experiment_id, plan.name, tags={VIDEO: plan.video, **aims.to_tags()},
        params={"objective": ",".join(n for n, _ in aims.goals), "scheduler": plan.scheduler,
                "trials": plan.trials, "max_iters": plan.max_iters, "grace_iters": plan.grace_iters,
                "eval_every": plan.eval_every, "space": plan.space_file,
                **{f"fixed.{k}": v for k, v in plan.fixed.items()}},
        files={SPACE_FILE: yaml.safe_dump(dump_space(plan.space), sort_keys=False)})
    return experiment_id, parent
