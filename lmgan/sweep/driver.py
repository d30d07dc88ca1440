"""The sweep command (`lmgan sweep`, `python sweeps/search.py`, `python -m lmgan.sweep`): a Ray
Tune sweep of lmgan trials.

Optuna's TPE (seeded, multivariate) proposes configurations through Tune's OptunaSearch, ASHA
stops weak trials at every evaluation, and every trial is a nested MLflow run under the sweep's
parent run. Everything a trial needs is checked here first: the pretrained weights the config
needs exist (downloaded once, here, before anything else is created: trials never download them,
the driver ships them), the video decodes, the space is valid, the resources exist, MLflow
answers; a mistake costs a one-line error, not a cluster's worth of failed trials. Every sweep
says what it will cost before it starts (lmgan.sweep.estimate); `--dry-run` says only that.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

from lmgan.config import TUNABLE_KEYS, config_notes
from lmgan.errors import LmganError, first_line
from lmgan.runs import runs_root
from lmgan.sweep.plan import SweepPlan, known_sweeps, load_plan
from lmgan.sweep.arguments import DEFAULT_SPACE, DEFAULTS, REPO, build_parser
from lmgan.sweep.space import dump_space


# ----------------------------------------------------------------------------- the plan
def make_plan(args, storage: str) -> SweepPlan:
    """Resolve the arguments into the sweep's plan, checked, without Ray: the video, its
    defaults under the options given, the fixed config, the space, and a name not yet taken."""
    from lmgan.config import apply_overrides, validate
    from lmgan.data.videos import resolve
    from lmgan.metrics import lookup
    from lmgan.sweep import space as spaces

    if not args.video:
        raise LmganError("--video is required (a name from sweeps/videos.yaml or a file)")
    video = resolve(args.video)
    opts = {**DEFAULTS, **(video.sweep or {})}
    opts.update({key: getattr(args, key) for key in DEFAULTS if getattr(args, key) is not None})
    objectives = lookup(opts["objective"].split(","), "--objective")
    if len({o.name for o in objectives}) != len(objectives) or len(objectives) > 3:
        raise LmganError(f"--objective {opts['objective']}: give one metric, or two or three different ones")
    objective = objectives[0]
    scheduler = _scheduler(args.scheduler, len(objectives))
    if opts["trials"] < 1:
        raise LmganError(f"--trials {opts['trials']}: must be at least 1")

    base = video.config(args.preset or video.preset or "paper-128", None, args.set)
    max_iters = opts["max_iters"] or base.iters
    eval_every = opts["eval_every"] or min(base.eval_every, max_iters)
    grace = opts["grace_iters"] or min(max_iters, 5 * eval_every)
    for key, v in (("--max-iters", max_iters), ("--eval-every", eval_every), ("--grace-iters", grace)):
        if v < 1:
            raise LmganError(f"{key} {v}: must be at least 1")
    if grace > max_iters:
        raise LmganError(f"--grace-iters {grace} is more than --max-iters {max_iters}")
    config = validate(apply_overrides(base, {
        "iters": max_iters, "eval_every": eval_every, "ckpt_every": eval_every,
        "sample_every": eval_every, "log_every": min(base.log_every, eval_every),
        "eval_metrics": list(dict.fromkeys([*(o.name for o in objectives), *base.eval_metrics])),
        "seed": args.seed}, "sweep"))
    space_path = Path(opts["space"]) if opts["space"] else DEFAULT_SPACE
    if not args.space and not space_path.is_absolute():       # a registry entry's: repository-relative
        space_path = REPO / space_path
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", video.name).strip(".-") or "sweep"
    name = args.name or f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    if name in known_sweeps(storage):
        raise LmganError(f"sweep {name!r} exists in {storage}; continue it with --resume "
                         f"--name {name} or choose another --name")
    space = spaces.load_space(space_path, config)
    if scheduler == "pbt" and opts["trials"] < 2:
        raise LmganError(f"--scheduler pbt: --trials {opts['trials']} is no population; give 4 or more")
    if scheduler == "pbt" and not any(k in TUNABLE_KEYS for k in space):
        raise LmganError(f"--scheduler pbt: {space_path.name} searches none of the settings PBT can change "
                         f"during a trial ({', '.join(sorted(TUNABLE_KEYS))})")
    baseline = None if args.no_baseline else {k: getattr(config, k) for k in sorted(space)}
    outside = [k for k in baseline or {} if not space[k].contains(baseline[k])]
    if outside:       # Optuna cannot propose a value its distribution does not hold
        key = outside[0]
        print(f"note: no baseline trial: the preset's {key}={baseline[key]} is outside the search space "
              f"({space[key].describe()}); widen the space to measure the preset beside the search",
              file=sys.stderr)
        baseline = None
    return SweepPlan(name=name, video=video.name, source=str(video.path), objective=objective.name,
                     mode="max" if objective.higher_is_better else "min", trials=opts["trials"],
                     max_iters=max_iters, grace_iters=grace, eval_every=eval_every, space=space,
                     space_file=str(space_path), config=config, seed=args.seed, baseline=baseline,
                     scheduler=scheduler, objectives=tuple(o.name for o in objectives),
                     modes=tuple("max" if o.higher_is_better else "min" for o in objectives))


def _scheduler(chosen: str | None, n_objectives: int) -> str:
    """ASHA and PBT rank trials by one metric; several objectives run every trial to the end."""
    if n_objectives == 1:
        return chosen or "asha"
    if chosen not in (None, "fifo"):
        raise LmganError(f"--scheduler {chosen} ranks trials by one metric; a multi-objective sweep runs "
                         f"every trial to --max-iters (leave --scheduler out, or give fifo)")
    return "fifo"


def _resumed_plan(args, storage: str) -> SweepPlan:
    """The plan of the sweep --name; options that would change it are refused."""
    if not args.name:
        raise LmganError("--resume needs --name SWEEP (the name printed when it started)")
    plan = load_plan(storage, args.name)
    extra = [k for k in ("video", "space", "trials", "objective", "max_iters", "grace_iters",
                         "eval_every", "preset", "scheduler") if getattr(args, k, None) is not None] + (
        ["set"] if args.set else []) + (["no_baseline"] if args.no_baseline else [])
    if extra:
        raise LmganError(f"--resume continues the sweep as it was planned; drop --{extra[0].replace('_', '-')}")
    return plan


def _preflight(plan: SweepPlan, weight_paths: dict) -> None:
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


def _check_weights(plan: SweepPlan, download: bool = True) -> tuple[dict, list[str]]:
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


def _require_weights(plan: SweepPlan) -> dict:
    """_check_weights, before anything is created: one line per missing weight, then exit 2."""
    found, missing = _check_weights(plan)
    for line in missing:
        print(f"sweep {plan.name}: {line}", file=sys.stderr)
    if missing:
        raise LmganError(f"{len(missing)} pretrained weight file{'s' if len(missing) > 1 else ''} this "
                         f"sweep needs {'are' if len(missing) > 1 else 'is'} missing (above); nothing was "
                         f"created or started")
    return found


def local_nodes() -> list[dict]:
    """This machine as Ray would see it, without starting Ray (a --dry-run's resources)."""
    import torch
    return [{"Alive": True, "Resources": {"CPU": float(os.cpu_count() or 1),
                                          "GPU": float(torch.cuda.device_count())}}]


def dry_run(plan: SweepPlan, args, storage: str, runs: Path) -> int:
    """`--dry-run`: the plan and its estimate on stdout; creates no store, no sweep folder, no trial
    (it does connect to an --address cluster to read its nodes)."""
    from lmgan.sweep import tracking
    from lmgan.sweep.estimate import REDUCTION, asha_iterations, estimate

    if args.address:
        import ray
        try:
            ray.init(address=args.address, logging_level="ERROR", log_to_driver=False)
        except ConnectionError as e:
            raise LmganError(f"--address {args.address}: cannot connect to Ray ({first_line(e)})") from None
        try:
            nodes = ray.nodes()
        finally:
            ray.shutdown()
    else:
        nodes = local_nodes()
    cpus, gpus, fit = _resources(args, nodes, plan.config.image_size)
    found, missing = _check_weights(plan, download=False)
    cfg = plan.config
    where = f"the cluster at {args.address}" if args.address else "this machine"
    have = sum(n["Resources"].get("CPU", 0) for n in nodes if n.get("Alive"))
    have_gpus = sum(n["Resources"].get("GPU", 0) for n in nodes if n.get("Alive"))
    if plan.scheduler == "asha":
        rungs = ", ".join(map(str, asha_iterations(plan.max_iters, plan.grace_iters)[1])) or "none before the end"
        scheduler = (f"asha: grace {plan.grace_iters}, max {plan.max_iters} iterations, reduction factor "
                     f"{REDUCTION} (a trial is judged at {rungs})")
    elif plan.scheduler == "pbt":
        scheduler = (f"pbt: exploit and explore every {plan.grace_iters} iterations; every trial runs to "
                     f"{plan.max_iters} (max)")
    else:
        scheduler = f"fifo: every trial runs to {plan.max_iters} iterations (max)"
    rows = [
        ("sweep", f"{plan.name} (dry run: no store, no sweep folder, no trial)"),
        ("video", f"{plan.video}: {plan.source}"),
        ("model", f"{cfg.image_size}², seq_len {cfg.seq_len}, channel_base {cfg.g_channel_base}/"
                  f"{cfg.d_channel_base}, lambda_pl {cfg.lambda_pl:g}"),
        ("trials", f"{plan.trials}, objective {', '.join(f'{n} ({m})' for n, m in plan.goals)}"
                   + ("; the first is the preset's own values (baseline)" if plan.baseline else "")),
        ("space", f"{plan.space_file}"),
        *((f"  {key}", plan.space[key].describe()) for key in plan.searched),
        ("resources", f"{cpus:g} CPU + {gpus:g} GPU per trial ({max(1, int(cpus))} torch thread{'s' if int(cpus) > 1 else ''}), "
                      f"{fit} at once on {where} ({have:g} CPUs, {have_gpus:g} GPUs)"),
        ("scheduler", scheduler),
        ("evaluation", f"every {plan.eval_every} iterations: {', '.join(cfg.eval_metrics)}"),
        ("tracking", f"{args.tracking_uri or tracking.default_uri(runs)}"),
        ("storage", f"{storage}/{plan.name}"),
        *(("weights", f"{name}: {path}") for name, path in found.items()),
        *(("weights", f"{line}; a sweep first downloads it, where it can") for line in missing),
        *([("weights", "none needed")] if not (found or missing) else []),
        ("estimate", estimate(plan, cpus, gpus, fit).removeprefix("estimate").lstrip(": ")),
    ]
    for key, value in rows:
        print(f"{key:<12} {value}")
    return 0


def _autoscaler_types() -> list[tuple[dict, int]]:
    """(resources, max_workers) of the node types an autoscaling cluster may still start, from
    the bootstrap config Ray writes on the head: right after `ray up` only the head is alive,
    and trials asking for GPUs are what makes the autoscaler start GPU workers."""
    import yaml
    path = Path(os.environ.get("LMGAN_AUTOSCALER_CONFIG", "~/ray_bootstrap_config.yaml")).expanduser()
    if not path.is_file():
        return []
    try:
        types = (yaml.safe_load(path.read_text()) or {}).get("available_node_types") or {}
    except (OSError, yaml.YAMLError):
        return []
    return [(t["resources"], int(t.get("max_workers") or 0)) for t in types.values()
            if isinstance(t, dict) and t.get("resources") and int(t.get("max_workers") or 0) > 0]


def default_gpu_share(image_size: int) -> float:
    """GPUs per trial when the user gives none. One B=1 window of a small model leaves most of
    a big GPU idle (16-channel layers, a sequential DirConvGRU scan), so small trials share:
    four per GPU up to 64², two at 128², one above (256² and 512² fill a GPU's memory and
    compute). `python -m lmgan.bench --concurrent 2 4` measures what sharing gains."""
    return 0.25 if image_size <= 64 else 0.5 if image_size <= 128 else 1.0


def _resources(args, nodes: list[dict], image_size: int = 128) -> tuple[float, float, int]:
    """(cpus, gpus) per trial, checked against the nodes present or startable, and how many
    trials fit at once (Tune still places each by the resources it finds)."""
    pool = [(n["Resources"], 1) for n in nodes if n.get("Alive")] + _autoscaler_types()
    most_gpus = max((r.get("GPU", 0.0) for r, _ in pool), default=0.0)
    most_cpus = max((r.get("CPU", 0.0) for r, _ in pool), default=0.0)
    gpus = args.gpus_per_trial if args.gpus_per_trial is not None else (
        min(default_gpu_share(image_size), most_gpus) if most_gpus else 0.0)
    if gpus < 0 or (gpus > 1 and not float(gpus).is_integer()):
        raise LmganError(f"--gpus-per-trial {gpus:g}: must be a fraction in (0, 1] or a whole number")
    if gpus > most_gpus:
        have = f"the largest node has {most_gpus:g}" if most_gpus else "no node has a GPU"
        raise LmganError(f"--gpus-per-trial {gpus:g}: more GPUs than any node has ({have})")
    if args.cpus_per_trial is not None:
        cpus = args.cpus_per_trial
    elif gpus:
        cpus = min(2.0, min(r.get("CPU", 0.0) for r, _ in pool if r.get("GPU", 0.0) >= gpus))
    else:
        cpus = min((r["CPU"] for r, _ in pool if r.get("CPU", 0.0) > 0), default=1.0)
    if cpus <= 0 or cpus > most_cpus:
        raise LmganError(f"--cpus-per-trial {cpus:g}: must be positive and at most the largest "
                         f"node's {most_cpus:g} CPUs")
    fit = 0
    for r, count in pool:
        by_cpu = math.floor(r.get("CPU", 0.0) / cpus + 1e-9)
        by_gpu = math.floor(r.get("GPU", 0.0) / gpus + 1e-9) if gpus else by_cpu
        fit += count * min(by_cpu, by_gpu)
    return cpus, gpus, max(fit, 1)


# ----------------------------------------------------------------------------- storage
def _storage(option: str | None, runs: Path) -> str:
    if option:
        return option if "://" in option else str(Path(option).resolve())
    return str((runs / "sweeps").resolve())


def _check_name(name: str) -> None:
    """A sweep name is one folder under the storage: no separators, no '..'."""
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum() or name.startswith("."):
        raise LmganError(f"--name {name!r}: use letters, digits, '-', '_' and '.' only "
                         f"(not starting with '.')")


# ----------------------------------------------------------------------------- the sweep
def run(args) -> int:
    if args.name is not None:
        _check_name(args.name)
    runs = runs_root(args.runs_dir)        # one root for the store, the sweeps and the reports
    storage = _storage(args.storage, runs)
    if args.resume and getattr(args, "dry_run", False):
        raise LmganError("--dry-run shows a new sweep's plan; a resumed one continues as planned "
                         f"({storage}/{args.name}/lmgan-sweep.json)")
    plan = _resumed_plan(args, storage) if args.resume else make_plan(args, storage)
    if getattr(args, "dry_run", False):
        return dry_run(plan, args, storage, runs)
    try:
        return _run(plan, args, storage, runs)
    except KeyboardInterrupt:
        if plan.name in known_sweeps(storage):
            print(f"search: interrupted; continue with --resume --name {plan.name}", file=sys.stderr)
        else:
            print("search: interrupted before the sweep started; nothing to resume", file=sys.stderr)
        return 130


def _run(plan: SweepPlan, args, storage: str, runs: Path) -> int:
    """Check the weights (first: nothing is created before), the store, decode the video, start
    Ray, place the trials, run them."""
    from lmgan.sweep import tracking
    weight_paths = _require_weights(plan)
    # With --resume, --tracking-uri is the sweep's own store at a new address (a resubmitted
    # Slurm job serves it from another node): it must hold the sweep's run.
    uri = args.tracking_uri or plan.tracking_uri or tracking.default_uri(runs)
    tracking.check_reachable(uri)
    if args.resume and plan.parent_run_id and uri != plan.tracking_uri:
        try:
            tracking.client(uri).get_run(plan.parent_run_id)
        except Exception:
            raise LmganError(f"--tracking-uri {uri} does not hold the sweep's MLflow run {plan.parent_run_id}; "
                             f"with --resume it must be the same store ({plan.tracking_uri}) at a new "
                             f"address") from None
    if not args.resume:
        _preflight(plan, weight_paths)

    for note in config_notes(plan.config):
        print(f"sweep {plan.name}: {note}", file=sys.stderr)
    import ray
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    if not args.verbose:       # Tune's tables and hints only with --verbose: SweepProgress says it
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    address = args.address or plan.address
    print(f"sweep {plan.name}: {'connecting to Ray at ' + address if address else 'starting a local Ray'}",
          file=sys.stderr)
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=args.verbose > 0)
    except ConnectionError as e:
        raise LmganError(f"--address {address}: cannot connect to Ray ({first_line(e)})") from None
    try:
        # A resumed sweep's trials keep the resources they were planned with, unless given again.
        wanted = argparse.Namespace(**{k: getattr(args, k) if getattr(args, k) is not None else getattr(plan, k)
                                       for k in ("cpus_per_trial", "gpus_per_trial")})
        cpus, gpus, fit = _resources(wanted, ray.nodes(), plan.config.image_size)
        plan = replace(plan, tracking_uri=uri, address=address, cpus_per_trial=cpus, gpus_per_trial=gpus)
        plan = _start_sweep_run(plan, runs)
        plan.save(storage)
        return _sweep(plan, args, storage, fit, weight_paths)
    finally:
        ray.shutdown()


def _start_sweep_run(plan: SweepPlan, runs_dir: Path) -> SweepPlan:
    """The sweep's MLflow parent run (the same one again on --resume), in the plan."""
    from lmgan.sweep import tracking

    uri = plan.tracking_uri
    # A tracking server stores artifacts itself; a store opened directly keeps them beside it.
    artifacts = None if uri.startswith(("http://", "https://")) else runs_dir / "mlartifacts"
    experiment_id = plan.experiment_id or tracking.ensure_experiment(uri, plan.video, artifacts)
    names, modes = (",".join(column) for column in zip(*plan.goals))
    parent = tracking.start_sweep_run(
        uri, experiment_id, plan.name,
        tags={"lmgan.video": plan.video, "lmgan.objective": plan.objective, "lmgan.mode": plan.mode,
              "lmgan.objectives": names, "lmgan.modes": modes, "lmgan.scheduler": plan.scheduler},
        params={"objective": names, "scheduler": plan.scheduler, "trials": plan.trials,
                "max_iters": plan.max_iters,
                "grace_iters": plan.grace_iters, "eval_every": plan.eval_every, "space": plan.space_file,
                **{f"fixed.{k}": v for k, v in plan.fixed.items()}},
        files={"search_space.yaml": _yaml(dump_space(plan.space))})
    return replace(plan, experiment_id=experiment_id, parent_run_id=parent)


def _trainable(plan: SweepPlan, storage: str, weight_paths: dict | None = None):
    """The lmgan trainable with what every trial shares bound to it (the video's bytes, the
    pretrained weights through Ray's object store: lmgan.sweep.ship), and its resources."""
    from ray import tune

    from lmgan.sweep.ship import ship
    from lmgan.sweep.trainable import TrialSpec, train_trial

    source = Path(plan.source)
    if not source.is_file():
        raise LmganError(f"{source}: the sweep's source video is gone")
    video_bytes = source.read_bytes()
    cpus, gpus = plan.cpus_per_trial, plan.gpus_per_trial
    spec = TrialSpec(sweep=plan.name, video=plan.video, source_name=source.name,
                     source_sha=hashlib.sha256(video_bytes).hexdigest(), fixed=plan.fixed,
                     objective=plan.objective, tracking_uri=plan.tracking_uri,
                     experiment_id=plan.experiment_id, parent_run_id=plan.parent_run_id,
                     searched=plan.searched, threads=max(1, int(cpus)), gpu_share=gpus if gpus < 1 else 0.0,
                     baseline=plan.baseline, scheduled=plan.mutable if plan.scheduler == "pbt" else [],
                     trials_dir="" if "://" in storage else str(Path(storage) / plan.name))
    return tune.with_resources(tune.with_parameters(train_trial, spec=spec, video_bytes=video_bytes,
                                                    weight_files=ship(weight_paths or {})),
                               {"cpu": cpus, "gpu": gpus})


def _tuner(plan: SweepPlan, trainable, args, storage: str, fit: int):
    """Tune's experiment: restored where --resume finds one, else a new TPE + ASHA search."""
    from ray import tune

    from lmgan.sweep.progress import SweepProgress, trial_name
    from lmgan.sweep.snapshot import mend_missing_checkpoints
    from lmgan.sweep.space import to_tune

    folder = str(Path(storage) / plan.name)
    if args.resume and tune.Tuner.can_restore(folder):
        print(f"sweep {plan.name}: resuming (finished trials stay finished, running ones continue "
              f"from their last checkpoint)", file=sys.stderr)
        if "://" not in storage:
            for what in mend_missing_checkpoints(Path(folder)):
                print(f"sweep {plan.name}: {what}: Tune's last snapshot named a checkpoint deleted "
                      f"after it; the trial continues from its newest", file=sys.stderr)
        return tune.Tuner.restore(folder, trainable=trainable, resume_unfinished=True, resume_errored=False)
    run_config = tune.RunConfig(
        name=plan.name, storage_path=storage, verbose=args.verbose, callbacks=[SweepProgress(plan)],
        failure_config=tune.FailureConfig(max_failures=args.max_failures),
        checkpoint_config=_checkpoints(plan))
    search, scheduler = _search(plan, args.optuna_storage)
    return tune.Tuner(trainable, param_space=to_tune(plan.space), run_config=run_config,
                      tune_config=tune.TuneConfig(search_alg=search, scheduler=scheduler,
                                                  num_samples=plan.trials, max_concurrent_trials=fit,
                                                  # a finished trial's process takes the next
                                                  # one: no new process, no torch import
                                                  reuse_actors=True,
                                                  trial_dirname_creator=lambda t: t.trial_id,
                                                  trial_name_creator=trial_name))


def _checkpoints(plan: SweepPlan):
    """Which reported checkpoints Tune keeps. ASHA's trials keep their two best. A PBT trial
    and a multi-objective one are judged by their last evaluation, so they keep their newest;
    PBT's as many as a lagging clone may still ask for (the one a donor saved at its last
    exploit step, up to two exploit intervals ago)."""
    from ray import tune
    if not plan.judged_by_last:
        return tune.CheckpointConfig(num_to_keep=2, checkpoint_score_attribute=plan.objective,
                                     checkpoint_score_order=plan.mode)
    keep = 2 * math.ceil(plan.grace_iters / plan.eval_every) + 2 if plan.scheduler == "pbt" else 2
    return tune.CheckpointConfig(num_to_keep=keep, checkpoint_score_attribute="iter",
                                 checkpoint_score_order="max")


def _PBT(max_iters: int, **kw):
    """Tune's PBT with two changes. No exploit at a trial's last report: a clone there would only
    copy the donor's final model under values it never trains with. And every trial outside the
    worst quarter keeps its checkpoint as a donor, not only the best quarter at the moment it
    reported: trials that take turns on few workers report one by one, and the first to reach an
    exploit step has no peers yet, so Tune's rule would leave it no checkpoint to give."""
    from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler

    class LmganPBT(PopulationBasedTraining):
        def on_trial_result(self, tune_controller, trial, result):
            if result.get("iter", 0) >= max_iters:
                return TrialScheduler.CONTINUE
            return super().on_trial_result(tune_controller, trial, result)

        def _checkpoint_or_exploit(self, trial, tune_controller, upper_quantile, lower_quantile):
            # a function trainable's "save" is the checkpoint it reported: keeping it costs nothing
            donors = upper_quantile if trial in lower_quantile or trial in upper_quantile else [*upper_quantile, trial]
            super()._checkpoint_or_exploit(trial, tune_controller, donors, lower_quantile)

    return LmganPBT(**kw)


def _search(plan: SweepPlan, optuna_storage: str | None):
    """Who proposes the trials and who stops or steers them: TPE + ASHA; TPE over several
    objectives, every trial to the end; or PBT's population, drawn at random and then steered."""
    import random

    import optuna
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator
    from ray.tune.search.optuna import OptunaSearch

    first = [plan.baseline] if plan.baseline else None
    if plan.scheduler == "pbt":
        random.seed(plan.seed)           # PBT's exploit and explore draw from `random`
        space = plan.space

        def clamp(config: dict) -> dict:
            return {**config, **{k: space[k].clamp(config[k]) for k in plan.mutable}}

        scheduler = _PBT(
            plan.max_iters, time_attr="iter", metric=plan.objective, mode=plan.mode, perturbation_interval=plan.grace_iters,
            hyperparam_mutations={k: space[k].to_mutation() for k in plan.mutable},
            quantile_fraction=0.25, resample_probability=0.25, custom_explore_fn=clamp,
            # Tune's asynchronous PBT: its synchronous mode (exploit steps waiting for the whole
            # population) never finished a sweep resumed after its driver was killed
            synch=False)
        return BasicVariantGenerator(points_to_evaluate=first, random_state=plan.seed), scheduler
    names, modes = [n for n, _ in plan.goals], [m for _, m in plan.goals]
    sampler = optuna.samplers.TPESampler(seed=plan.seed, multivariate=True,
                                         n_startup_trials=max(2, min(10, plan.trials // 3)))
    storage = optuna.storages.RDBStorage(optuna_storage) if optuna_storage else None
    search = OptunaSearch(metric=names if plan.multi_objective else plan.objective,
                          mode=modes if plan.multi_objective else plan.mode, sampler=sampler,
                          storage=storage, study_name=plan.name, points_to_evaluate=first)
    if plan.scheduler == "fifo":
        return search, FIFOScheduler()
    return search, ASHAScheduler(time_attr="iter", metric=plan.objective, mode=plan.mode,
                                 max_t=plan.max_iters, grace_period=plan.grace_iters, reduction_factor=3)


def _sweep(plan: SweepPlan, args, storage: str, fit: int, weight_paths: dict | None = None) -> int:
    from lmgan.sweep.estimate import estimate
    from lmgan.sweep.summary import finish_sweep

    trainable = _trainable(plan, storage, weight_paths)
    print(f"sweep {plan.name}: {plan.trials} trials of {plan.video}, objective {plan.objective} "
          f"({plan.mode}), {plan.cpus_per_trial:g} CPU + {plan.gpus_per_trial:g} GPU per trial, "
          f"{fit} at once; MLflow {plan.tracking_uri} run {plan.parent_run_id}", file=sys.stderr)
    if not args.resume:
        print(f"sweep {plan.name}: {estimate(plan, plan.cpus_per_trial, plan.gpus_per_trial, fit)}",
              file=sys.stderr)
    tuner = _tuner(plan, trainable, args, storage, fit)
    t0 = time.perf_counter()
    results = tuner.fit()
    return finish_sweep(results, plan, time.perf_counter() - t0)


def _yaml(d) -> str:
    import yaml
    return yaml.safe_dump(d, sort_keys=False)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return run(args)
    except LmganError as e:
        print(f"search: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("search: interrupted before the sweep started; nothing to resume", file=sys.stderr)
        return 130
