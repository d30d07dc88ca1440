"""`python sweeps/search.py --video NAME|PATH`: a Ray Tune sweep of lmgan trials.

Optuna's TPE (seeded, multivariate) proposes configurations through Tune's OptunaSearch, ASHA
stops weak trials at every evaluation, and every trial is a nested MLflow run under the sweep's
parent run. Everything a trial needs is checked here first: the video decodes, the space is
valid, the objective's weights exist, the resources exist, MLflow answers; a mistake costs a
one-line error, not a cluster's worth of failed trials.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
import time
from pathlib import Path

from lmgan import atomic
from lmgan.errors import LmganError, first_line

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SPACE = REPO / "sweeps" / "spaces" / "default.yaml"
STATE = "lmgan-sweep.json"
DEFAULTS = {"trials": 20, "objective": "fvd", "max_iters": None, "grace_iters": None,
            "eval_every": None, "space": None}


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise LmganError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sweeps/search.py", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", help="a name from sweeps/videos.yaml (cello, quintet, drums, "
                   "talking-head, demo) or a video file")
    p.add_argument("--space", help=f"search-space YAML (default {DEFAULT_SPACE.relative_to(REPO)}; "
                   "the demo's: sweeps/spaces/demo.yaml)")
    p.add_argument("--trials", type=int, help="trials to run (default 20; the demo's: 4)")
    p.add_argument("--objective", help="metric ASHA and Optuna optimise (default fvd, the demo's "
                   "motion_corr; any of ssim, psnr, lpips, lpips_vgg, fvd, fid, fdd, motion_corr, "
                   "av_align, sensitivity)")
    p.add_argument("--max-iters", type=int, help="iterations of a trial that is never stopped")
    p.add_argument("--grace-iters", type=int, help="iterations before ASHA may stop a trial")
    p.add_argument("--eval-every", type=int, help="iterations between evaluations (= reports, "
                   "checkpoints and samples)")
    p.add_argument("--gpus-per-trial", type=float, help="GPUs per trial, fractions allowed "
                   "(default where the cluster has GPUs: 0.25 up to 64², 0.5 at 128², 1 above; "
                   "else 0)")
    p.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (default 2 with GPUs, "
                   "else all CPUs of the smallest node)")
    p.add_argument("--seed", type=int, default=0, help="seed of the Optuna sampler and of the trials")
    p.add_argument("--address", help="an existing Ray cluster (auto, or host:port); default: "
                   "start a local one")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite store "
                   "<runs-dir>/mlflow.db)")
    p.add_argument("--optuna-storage", metavar="URL", help="also keep the Optuna study in this "
                   "database (sqlite:///... or postgresql://...) for optuna-dashboard")
    p.add_argument("--name", help="sweep name (default <video>-<date>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the sweep --name after the "
                   "driver was stopped or killed")
    p.add_argument("--preset", help="lmgan preset for the fixed settings (default: the video's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="fix a model setting for every trial, e.g. image_size=64")
    p.add_argument("--runs-dir", default="runs", help="where sweeps and the MLflow store live")
    p.add_argument("--storage", help="Tune storage for checkpoints (default <runs-dir>/sweeps; "
                   "on a multi-node cluster a shared path or s3://bucket/prefix)")
    p.add_argument("--max-failures", type=int, default=2, help="restarts of a failed trial "
                   "from its last checkpoint")
    p.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="Tune's console output")
    return p


# ----------------------------------------------------------------------------- the plan
def _plan(args) -> dict:
    """Resolve the arguments into everything the sweep needs, checked, without Ray."""
    from lmgan.config import build_config
    from lmgan.metrics import REGISTRY
    from lmgan.sweep import space as spaces
    from lmgan.sweep.videos import resolve

    if not args.video:
        raise LmganError("--video is required (a name from sweeps/videos.yaml or a file)")
    video = resolve(args.video)
    opts = {**DEFAULTS, **(video.sweep or {})}
    for key in DEFAULTS:
        if getattr(args, key) is not None:
            opts[key] = getattr(args, key)
    objective = opts["objective"]
    if objective not in REGISTRY:
        raise LmganError(f"--objective {objective!r}: unknown metric (known: {', '.join(sorted(REGISTRY))})")
    if opts["trials"] < 1:
        raise LmganError(f"--trials {opts['trials']}: must be at least 1")

    sets = list(args.set)
    if video.crop is not None and not any(s.startswith("crop=") for s in sets):
        sets.insert(0, "crop=" + ",".join(str(int(v)) for v in video.crop))
    base = build_config(args.preset or video.preset or "paper-128", None, sets)
    max_iters = opts["max_iters"] or base.iters
    eval_every = opts["eval_every"] or min(base.eval_every, max_iters)
    grace = opts["grace_iters"] or min(max_iters, 5 * eval_every)
    for key, v in (("--max-iters", max_iters), ("--eval-every", eval_every), ("--grace-iters", grace)):
        if v < 1:
            raise LmganError(f"{key} {v}: must be at least 1")
    if grace > max_iters:
        raise LmganError(f"--grace-iters {grace} is more than --max-iters {max_iters}")
    metrics = list(dict.fromkeys([objective, *base.eval_metrics]))
    from lmgan.config import apply_overrides, validate
    fixed_cfg = validate(apply_overrides(base, {
        "iters": max_iters, "eval_every": eval_every, "ckpt_every": eval_every,
        "sample_every": eval_every, "log_every": min(base.log_every, eval_every),
        "eval_metrics": metrics, "seed": args.seed}, "sweep"))
    space_path = Path(opts["space"]) if opts["space"] else DEFAULT_SPACE
    if not args.space and not space_path.is_absolute():       # a registry entry's: repository-relative
        space_path = REPO / space_path
    space = spaces.load_space(space_path, fixed_cfg)
    fixed = {k: v for k, v in fixed_cfg.to_dict().items() if k not in space}
    return {"video": video.name, "source": str(video.path), "objective": objective,
            "mode": "max" if REGISTRY[objective].higher_is_better else "min",
            "trials": opts["trials"], "max_iters": max_iters, "grace_iters": grace,
            "eval_every": eval_every, "space": spaces.dump_space(space), "space_file": str(space_path),
            "fixed": fixed, "seed": args.seed}


def _preflight(plan: dict) -> None:
    """Decode the video into the cache once (progress shown here, not in 20 trials) and build
    the evaluator: bad files, short held-out parts and missing metric weights fail now."""
    import torch

    from lmgan.data.dataset import load_video_data
    from lmgan.metrics.evaluator import Evaluator

    cfg = _fixed_config(plan)
    data = load_video_data(plan["source"], cfg, progress=True)
    ev = Evaluator(cfg.eval_metrics, torch.device("cpu"))
    ev.check(len(data.heldout_starts(cfg.seq_len, cfg.eval_windows)), cfg.seq_len)


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


# ----------------------------------------------------------------------------- state on disk
def _storage(args) -> str:
    if args.storage:
        return args.storage if "://" in args.storage else str(Path(args.storage).resolve())
    return str((Path(args.runs_dir) / "sweeps").resolve())


def _known_sweeps(storage: str) -> list[str]:
    root = Path(storage)
    return sorted(p.parent.name for p in root.glob(f"*/{STATE}")) if root.is_dir() else []


def _check_name(name: str) -> None:
    """A sweep name is one folder under the storage: no separators, no '..'."""
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum() or name.startswith("."):
        raise LmganError(f"--name {name!r}: use letters, digits, '-', '_' and '.' only "
                         f"(not starting with '.')")


def _read_state(storage: str, name: str) -> dict:
    path = Path(storage) / name / STATE
    if "://" in storage or not path.is_file():
        known = _known_sweeps(storage) if "://" not in storage else []
        raise LmganError(f"--resume: no sweep named {name!r} in {storage} "
                         f"(known: {', '.join(known) or 'none'})")
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------- the sweep
def run(args) -> int:
    if args.resume and not args.name:
        raise LmganError("--resume needs --name SWEEP (the name printed when it started)")
    if args.name is not None:
        _check_name(args.name)
    storage = _storage(args)
    if args.resume:
        state = _read_state(storage, args.name)
        plan = state["plan"]
        extra = [k for k in ("video", "space", "trials", "objective", "max_iters", "grace_iters",
                             "eval_every", "preset") if getattr(args, k, None) is not None] + (
            ["set"] if args.set else [])
        if extra:
            raise LmganError(f"--resume continues the sweep as it was planned; drop --{extra[0].replace('_', '-')}")
    else:
        plan = _plan(args)
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", plan["video"]).strip(".-") or "sweep"
        name = args.name or f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        if name in _known_sweeps(storage):
            raise LmganError(f"sweep {name!r} exists in {storage}; continue it with --resume "
                             f"--name {name} or choose another --name")
        args.name = name
        state = {"name": name, "plan": plan}
    name = state["name"]

    from lmgan.sweep import tracking
    uri = state.get("tracking_uri") or args.tracking_uri or tracking.default_uri(Path(args.runs_dir))
    tracking.check_reachable(uri)
    if not args.resume:
        _preflight(plan)

    import ray
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    address = args.address or state.get("address")
    print(f"sweep {name}: {'connecting to Ray at ' + address if address else 'starting a local Ray'}",
          file=sys.stderr)
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=args.verbose > 0)
    except ConnectionError as e:
        raise LmganError(f"--address {address}: cannot connect to Ray ({first_line(e)})") from None
    try:
        if args.resume:   # the trials keep the resources they were planned with
            for key in ("cpus_per_trial", "gpus_per_trial"):
                if getattr(args, key) is None:
                    setattr(args, key, state.get("resources", {}).get(key))
        cpus, gpus, fit = _resources(args, ray.nodes(), _fixed_config(plan).image_size)
        state["resources"] = {"cpus_per_trial": cpus, "gpus_per_trial": gpus}
        return _sweep(args, state, plan, uri, storage, cpus, gpus, fit)
    finally:
        ray.shutdown()


def _sweep(args, state, plan, uri, storage, cpus, gpus, fit) -> int:
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from lmgan.sweep import tracking
    from lmgan.sweep.space import parse_space, to_tune
    from lmgan.sweep.trainable import TrialSpec, train_trial

    name = state["name"]
    exp_dir = Path(storage) / name if "://" not in storage else None
    # A tracking server stores artifacts itself; a store opened directly keeps them beside it.
    artifacts = None if uri.startswith(("http://", "https://")) else Path(args.runs_dir) / "mlartifacts"
    experiment_id = state.get("experiment_id") or tracking.ensure_experiment(uri, plan["video"], artifacts)
    parent = tracking.start_sweep_run(
        uri, experiment_id, name,
        tags={"lmgan.video": plan["video"], "lmgan.objective": plan["objective"],
              "lmgan.mode": plan["mode"]},
        params={"objective": plan["objective"], "trials": plan["trials"],
                "max_iters": plan["max_iters"], "grace_iters": plan["grace_iters"],
                "eval_every": plan["eval_every"], "space": plan["space_file"],
                **{f"fixed.{k}": v for k, v in plan["fixed"].items()}},
        files={"search_space.yaml": _yaml(plan["space"])})
    state.update(tracking_uri=uri, experiment_id=experiment_id, parent_run_id=parent,
                 address=args.address or state.get("address"))
    if exp_dir is not None:
        exp_dir.mkdir(parents=True, exist_ok=True)
        atomic.write_text(exp_dir / STATE, json.dumps(state, indent=1))

    source = Path(plan["source"])
    if not source.is_file():
        raise LmganError(f"{source}: the sweep's source video is gone")
    video_bytes = source.read_bytes()
    space = parse_space(plan["space"], "search space", _fixed_config(plan))
    spec = TrialSpec(sweep=name, video=plan["video"], source_name=source.name,
                     source_sha=hashlib.sha256(video_bytes).hexdigest(), fixed=plan["fixed"],
                     objective=plan["objective"], tracking_uri=uri, experiment_id=experiment_id,
                     parent_run_id=parent, searched=sorted(space), threads=max(1, int(cpus)),
                     gpu_share=gpus if gpus < 1 else 0.0)
    trainable = tune.with_resources(tune.with_parameters(train_trial, spec=spec, video_bytes=video_bytes),
                                    {"cpu": cpus, "gpu": gpus})
    print(f"sweep {name}: {plan['trials']} trials of {plan['video']}, objective {plan['objective']} "
          f"({plan['mode']}), {cpus:g} CPU + {gpus:g} GPU per trial, {fit} at once; "
          f"MLflow {uri} run {parent}", file=sys.stderr)

    objective, mode = plan["objective"], plan["mode"]
    from lmgan.sweep.summary import finish_sweep
    run_config = tune.RunConfig(
        name=name, storage_path=storage, verbose=args.verbose,
        failure_config=tune.FailureConfig(max_failures=args.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2, checkpoint_score_attribute=objective,
                                                checkpoint_score_order=mode))
    if args.resume and tune.Tuner.can_restore(str(Path(storage) / name)):
        print(f"sweep {name}: resuming (finished trials stay finished, running ones continue "
              f"from their last checkpoint)", file=sys.stderr)
        tuner = tune.Tuner.restore(str(Path(storage) / name), trainable=trainable,
                                   resume_unfinished=True, resume_errored=False)
    else:
        sampler = optuna.samplers.TPESampler(seed=plan["seed"], multivariate=True,
                                             n_startup_trials=max(2, min(10, plan["trials"] // 3)))
        storage_opt = optuna.storages.RDBStorage(args.optuna_storage) if args.optuna_storage else None
        search = OptunaSearch(metric=objective, mode=mode, sampler=sampler, storage=storage_opt,
                              study_name=name)
        scheduler = ASHAScheduler(time_attr="iter", metric=objective, mode=mode,
                                  max_t=plan["max_iters"], grace_period=plan["grace_iters"],
                                  reduction_factor=3)
        tuner = tune.Tuner(trainable, param_space=to_tune(space), run_config=run_config,
                           tune_config=tune.TuneConfig(search_alg=search, scheduler=scheduler,
                                                       num_samples=plan["trials"],
                                                       max_concurrent_trials=fit,
                                                       # a finished trial's process takes the next
                                                       # one: no new process, no torch import
                                                       reuse_actors=True,
                                                       trial_dirname_creator=lambda t: t.trial_id))
    t0 = time.perf_counter()
    results = tuner.fit()
    return finish_sweep(results, state, plan, uri, time.perf_counter() - t0)


def _fixed_config(plan):
    from lmgan.config import Config, apply_overrides
    return apply_overrides(Config(), plan["fixed"], "sweep")


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
        print("search: interrupted; continue with --resume --name "
              f"{getattr(args, 'name', None) or 'SWEEP'}", file=sys.stderr)
        return 130
