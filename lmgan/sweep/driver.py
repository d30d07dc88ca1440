"""The sweep command (`lmgan sweep`, `python sweeps/search.py`, `python -m lmgan.sweep`): a Ray
Tune sweep of lmgan trials.

Read in order: the options become a `SweepPlan` (plan.py, checked without Ray); starting it makes a
`SweepSession` (session.py: weights, store, video, Ray, resources, the MLflow parent run); Tune
runs the trainable (trainable.py) under the plan's search and scheduler (schedulers.py); the end
decides the outcome (outcome.py) and records it (summary.py). Every sweep says what it will cost
before it starts (estimate.py); `--dry-run` says only that.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

from lmgan.config import config_notes
from lmgan.errors import LmganError, first_line, run_command
from lmgan.runs import runs_root
from lmgan.sweep.arguments import build_parser
from lmgan.sweep.plan import STATE, SweepPlan, known_sweeps, make_plan, resumed_plan, save_state
from lmgan.sweep.session import SweepSession


def run(args) -> int:
    if args.name is not None:
        _check_name(args.name)
    runs = runs_root(args.runs_dir)        # one root for the store, the sweeps and the reports
    storage = _storage(args.storage, runs)
    if args.resume and getattr(args, "dry_run", False):
        raise LmganError("--dry-run shows a new sweep's plan; a resumed one continues as planned "
                         f"({storage}/{args.name}/{STATE})")
    plan, saved = resumed_plan(args, storage) if args.resume else (make_plan(args, storage), {})
    if getattr(args, "dry_run", False):
        return dry_run(plan, args, storage, runs)
    try:
        return _run(plan, saved, args, storage, runs)
    except KeyboardInterrupt:
        if plan.name in known_sweeps(storage):
            print(f"sweep: interrupted; continue with --resume --name {plan.name}", file=sys.stderr)
        else:
            print("sweep: interrupted before the sweep started; nothing to resume", file=sys.stderr)
        return 130


def _run(plan: SweepPlan, saved: dict, args, storage: str, runs: Path) -> int:
    """Check the weights (first: nothing is created before), the store, decode the video, start
    Ray, place the trials, run them."""
    from lmgan.sweep import session

    weight_paths = session.require_weights(plan)
    uri = session.open_store(plan, saved, args.tracking_uri, runs)
    if not args.resume:
        session.preflight(plan, weight_paths)
    for note in config_notes(plan.config):
        print(f"sweep {plan.name}: {note}", file=sys.stderr)
    with session.ray_started(plan, args.address or saved.get("address")) as address:
        s = session.start(plan, saved, args, uri, address, runs, storage, weight_paths)
        save_state(storage, plan, s.saved())
        return _sweep(plan, s, resumed=args.resume)


def _sweep(plan: SweepPlan, s: SweepSession, resumed: bool) -> int:
    from lmgan.sweep.estimate import estimate
    from lmgan.sweep.summary import finish_sweep

    trainable = _trainable(plan, s)
    print(f"sweep {plan.name}: {plan.trials} trials of {plan.video}, objective {plan.objective} "
          f"({plan.mode}), {s.cpus_per_trial:g} CPU + {s.gpus_per_trial:g} GPU per trial, "
          f"{s.fit} at once; MLflow {s.tracking_uri} run {s.parent_run_id}", file=sys.stderr)
    if not resumed:
        print(f"sweep {plan.name}: {estimate(plan, s.cpus_per_trial, s.gpus_per_trial, s.fit)}", file=sys.stderr)
    tuner = _tuner(plan, s, trainable, resumed)
    t0 = time.perf_counter()
    results = tuner.fit()
    return finish_sweep(results, plan, s, time.perf_counter() - t0)


def _trainable(plan: SweepPlan, s: SweepSession):
    """The lmgan trainable with what every trial shares bound to it (the video's bytes, the
    pretrained weights through Ray's object store: lmgan.sweep.ship), and its resources."""
    from ray import tune

    from lmgan.sweep.ship import ship
    from lmgan.sweep.trainable import TrialSpec, train_trial

    source = Path(plan.source)
    if not source.is_file():
        raise LmganError(f"{source}: the sweep's source video is gone")
    video_bytes = source.read_bytes()
    cpus, gpus = s.cpus_per_trial, s.gpus_per_trial
    spec = TrialSpec(sweep=plan.name, video=plan.video, source_name=source.name,
                     source_sha=hashlib.sha256(video_bytes).hexdigest(), fixed=plan.fixed,
                     objective=plan.objective, tracking_uri=s.tracking_uri,
                     experiment_id=s.experiment_id, parent_run_id=s.parent_run_id,
                     searched=plan.searched, threads=max(1, int(cpus)), gpu_share=gpus if gpus < 1 else 0.0,
                     baseline=plan.baseline, scheduled=plan.mutable if plan.scheduler == "pbt" else [],
                     trials_dir="" if "://" in s.storage else str(Path(s.storage) / plan.name))
    return tune.with_resources(tune.with_parameters(train_trial, spec=spec, video_bytes=video_bytes,
                                                    weight_files=ship(s.weight_paths)),
                               {"cpu": cpus, "gpu": gpus})


def _tuner(plan: SweepPlan, s: SweepSession, trainable, resumed: bool):
    """Tune's experiment: restored where --resume finds one, else a new search."""
    from ray import tune

    from lmgan.sweep.progress import SweepProgress, trial_name
    from lmgan.sweep.schedulers import checkpoints_kept, search_and_scheduler
    from lmgan.sweep.snapshot import mend_missing_checkpoints
    from lmgan.sweep.space import to_tune

    folder = str(Path(s.storage) / plan.name)
    if resumed and tune.Tuner.can_restore(folder):
        print(f"sweep {plan.name}: resuming (finished trials stay finished, running ones continue "
              f"from their last checkpoint)", file=sys.stderr)
        if "://" not in s.storage:
            for what in mend_missing_checkpoints(Path(folder)):
                print(f"sweep {plan.name}: {what}: Tune's last snapshot named a checkpoint deleted "
                      f"after it; the trial continues from its newest", file=sys.stderr)
        return tune.Tuner.restore(folder, trainable=trainable, resume_unfinished=True, resume_errored=False)
    run_config = tune.RunConfig(
        name=plan.name, storage_path=s.storage, verbose=plan.verbose, callbacks=[SweepProgress(plan)],
        failure_config=tune.FailureConfig(max_failures=plan.max_failures),
        checkpoint_config=checkpoints_kept(plan))
    search, scheduler = search_and_scheduler(plan)
    return tune.Tuner(trainable, param_space=to_tune(plan.space), run_config=run_config,
                      tune_config=tune.TuneConfig(search_alg=search, scheduler=scheduler,
                                                  num_samples=plan.trials, max_concurrent_trials=s.fit,
                                                  # a finished trial's process takes the next
                                                  # one: no new process, no torch import
                                                  reuse_actors=True,
                                                  trial_dirname_creator=lambda t: t.trial_id,
                                                  trial_name_creator=trial_name))


def dry_run(plan: SweepPlan, args, storage: str, runs: Path) -> int:
    """`--dry-run`: the plan and its estimate on stdout; creates no store, no sweep folder, no trial
    (it does connect to an --address cluster to read its nodes)."""
    from lmgan.sweep import tracking
    from lmgan.sweep.estimate import REDUCTION, asha_iterations, estimate
    from lmgan.sweep.resources import local_nodes, per_trial
    from lmgan.sweep.session import check_weights

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
    cpus, gpus, fit = per_trial(args, nodes, plan.config.image_size)
    found, missing = check_weights(plan, download=False)
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


def _storage(option: str | None, runs: Path) -> str:
    if option:
        return option if "://" in option else str(Path(option).resolve())
    return str((runs / "sweeps").resolve())


def _check_name(name: str) -> None:
    """A sweep name is one folder under the storage: no separators, no '..'."""
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum() or name.startswith("."):
        raise LmganError(f"--name {name!r}: use letters, digits, '-', '_' and '.' only "
                         f"(not starting with '.')")


def main(argv: list[str] | None = None) -> int:
    return run_command("sweep", lambda: run(build_parser().parse_args(argv)),
                       interrupted="interrupted before the sweep started; nothing to resume")
