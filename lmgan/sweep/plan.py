"""A sweep's plan: everything the user chose, resolved and checked before Ray or MLflow starts,
as one frozen value (`make_plan`, pure apart from reading the video's registry entry and the
space file). What starting the sweep produced (the tracking store, the MLflow runs, the resources
the trials were placed with) is the `SweepSession` (lmgan.sweep.session).

Both are saved as JSON beside Tune's own state (`<storage>/<name>/lmgan-sweep.json`) once the
sweep's MLflow run exists, so `--resume` continues the very sweep: the same plan, with options
that would change it refused in one line, and the same store, parent run and resources unless
--address, --tracking-uri or the resources are given again.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from lmgan import atomic
from lmgan.config import TUNABLE_KEYS, Config, apply_overrides, validate
from lmgan.errors import LmganError
from lmgan.sweep.schema import Objectives
from lmgan.sweep.space import Param, dump_space

STATE = "lmgan-sweep.json"
FORMAT = 3        # 2: one flat dict, the session's fields in the plan; 1: {"name", "plan": {...}, ...}
DEFAULTS = {"trials": 20, "objective": "fvd", "max_iters": None, "grace_iters": None,
            "eval_every": None, "space": None}       # a named video's `sweep:` entry overrides them
RUN_DEFAULTS = {"max_failures": 2, "optuna_storage": None, "verbose": 0}   # how the sweep runs
SESSION_KEYS = ("tracking_uri", "experiment_id", "parent_run_id", "address", "cpus_per_trial", "gpus_per_trial")


@dataclass(frozen=True)
class SweepPlan:
    name: str
    video: str                    # the video's name (registry name or a file's sanitised stem)
    source: str                   # its file
    objective: str
    mode: str                     # "max" or "min", from the metric registry
    trials: int
    max_iters: int
    grace_iters: int
    eval_every: int
    space: dict[str, Param]
    space_file: str
    config: Config                # every trial's config before its searched values
    seed: int
    baseline: dict | None = None  # the preset's own values of the searched keys: the first trial
    scheduler: str = "asha"       # "asha" (early stopping), "pbt" (population-based training) or
                                  # "fifo" (every trial to max_iters: a multi-objective search)
    objectives: tuple = ()        # every objective of a multi-objective sweep, the first `objective`
    modes: tuple = ()             # their "max"/"min"
    max_failures: int = 2         # restarts of a failed trial from its last checkpoint
    optuna_storage: str | None = None   # a database that also keeps the Optuna study
    verbose: int = 0              # Tune's own status tables (1) and per-result lines (2)
    extra: dict = field(default_factory=dict, compare=False)   # unknown keys of a newer file

    @cached_property
    def searched(self) -> list[str]:
        return sorted(self.space)

    @cached_property
    def goals(self) -> list[tuple[str, str]]:
        """(objective, "max"/"min") of every objective, the primary first."""
        return list(zip(self.objectives, self.modes)) if self.objectives else [(self.objective, self.mode)]

    @cached_property
    def aims(self) -> Objectives:
        """The objectives and scheduler as the sweep's MLflow run records them (schema.Objectives)."""
        return Objectives(tuple(self.goals), self.scheduler)

    @property
    def multi_objective(self) -> bool:
        return len(self.goals) > 1

    @property
    def judged_by_last(self) -> bool:
        return self.aims.judged_by_last

    @cached_property
    def mutable(self) -> list[str]:
        """The searched keys population-based training may change within a trial."""
        return [k for k in self.searched if k in TUNABLE_KEYS]

    @cached_property
    def fixed(self) -> dict:
        """The config values no trial searches (the trials' spec; the parent run's params)."""
        return {k: v for k, v in self.config.to_dict().items() if k not in self.space}

    # ------------------------------------------------------------------------- JSON round trip
    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        d.update(space=dump_space(self.space), config=self.config.to_dict())
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = STATE) -> "SweepPlan":
        d = dict(d)
        d["space"] = {key: Param(key, kind, tuple(values))
                      for key, spec in d["space"].items() for kind, values in spec.items()}
        d["config"] = validate(apply_overrides(Config(), d["config"], where))
        d.update({k: tuple(d[k]) for k in ("objectives", "modes") if k in d})
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names},
                   extra={k: v for k, v in d.items() if k not in names and k not in SESSION_KEYS})


# ----------------------------------------------------------------------------- the saved state
def state_json(plan: SweepPlan, session: dict | None) -> str:
    return json.dumps({"format": FORMAT, "plan": plan.to_dict(), "session": session or {}}, indent=1)


def parse_state(text: str, where: str = STATE) -> tuple[SweepPlan, dict]:
    """(plan, the saved session's fields) from lmgan-sweep.json of any format lmgan wrote."""
    try:
        d = json.loads(text)
        fmt = d.get("format")
        if fmt == FORMAT:
            return SweepPlan.from_dict(d["plan"], where), dict(d.get("session") or {})
        if fmt != 2:                  # 1: written before the plan was typed
            d = {**d.pop("plan"), **{k: v for k, v in d.items() if k != "resources"}, **d.get("resources", {})}
            d["config"] = d.pop("fixed")
        d.pop("format", None)
        return SweepPlan.from_dict(d, where), {k: d.get(k) for k in SESSION_KEYS}
    except LmganError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, StopIteration) as e:
        raise LmganError(f"{where}: not a sweep plan lmgan can read ({e.__class__.__name__}: {e})") from None


def save_state(storage: str, plan: SweepPlan, session: dict | None) -> None:
    """Beside Tune's experiment folder (a local storage only: cloud storage keeps no plan)."""
    if "://" in storage:
        return
    folder = Path(storage) / plan.name
    folder.mkdir(parents=True, exist_ok=True)
    atomic.write_text(folder / STATE, state_json(plan, session))


def load_state(storage: str, name: str) -> tuple[SweepPlan, dict]:
    """The plan and saved session of the sweep `name`, or one line saying which sweeps there are."""
    path = Path(storage) / name / STATE
    if "://" in storage or not path.is_file():
        known = known_sweeps(storage) if "://" not in storage else []
        raise LmganError(f"--resume: no sweep named {name!r} in {storage} "
                         f"(known: {', '.join(known) or 'none'})")
    return parse_state(path.read_text(), str(path))


def known_sweeps(storage: str) -> list[str]:
    root = Path(storage)
    return sorted(p.parent.name for p in root.glob(f"*/{STATE}")) if root.is_dir() else []


def is_baseline(searched: dict, baseline: dict | None) -> bool:
    """Whether a trial's searched values are the sweep's baseline (the preset's own)."""
    return bool(baseline) and all(k in searched and (searched[k] == v or (
        isinstance(v, float) and math.isclose(searched[k], v, rel_tol=1e-9))) for k, v in baseline.items())


# ----------------------------------------------------------------------------- from the options
def make_plan(args, storage: str) -> SweepPlan:
    """Resolve the arguments into the sweep's plan, checked, without Ray: the video, its
    defaults under the options given, the fixed config, the space, and a name not yet taken."""
    from lmgan.data.videos import resolve
    from lmgan.metrics import lookup
    from lmgan.sweep import space as spaces
    from lmgan.paths import default_space, sweep_base

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
    space_path = Path(opts["space"]) if opts["space"] else default_space()
    if not args.space and not space_path.is_absolute():       # a registry entry's: repository-relative
        space_path = sweep_base() / space_path
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
    run = {k: getattr(args, k, None) if getattr(args, k, None) is not None else v for k, v in RUN_DEFAULTS.items()}
    if run["max_failures"] < 0:
        raise LmganError(f"--max-failures {run['max_failures']}: must be 0 or more")
    return SweepPlan(name=name, video=video.name, source=str(video.path), objective=objective.name,
                     mode="max" if objective.higher_is_better else "min", trials=opts["trials"],
                     max_iters=max_iters, grace_iters=grace, eval_every=eval_every, space=space,
                     space_file=str(space_path), config=config, seed=args.seed, baseline=baseline,
                     scheduler=scheduler, objectives=tuple(o.name for o in objectives),
                     modes=tuple("max" if o.higher_is_better else "min" for o in objectives), **run)


def _scheduler(chosen: str | None, n_objectives: int) -> str:
    """ASHA and PBT rank trials by one metric; several objectives run every trial to the end."""
    if n_objectives == 1:
        return chosen or "asha"
    if chosen not in (None, "fifo"):
        raise LmganError(f"--scheduler {chosen} ranks trials by one metric; a multi-objective sweep runs "
                         f"every trial to --max-iters (leave --scheduler out, or give fifo)")
    return "fifo"


PLANNED = ("video", "space", "trials", "objective", "max_iters", "grace_iters", "eval_every", "preset",
           "scheduler")


def resumed_plan(args, storage: str) -> tuple[SweepPlan, dict]:
    """The plan and saved session of the sweep --name. An option that would change the plan is
    refused; one given with the planned value is accepted."""
    if not args.name:
        raise LmganError("--resume needs --name SWEEP (the name printed when it started)")
    plan, session = load_state(storage, args.name)
    extra = [k for k in PLANNED if getattr(args, k, None) is not None] + (
        ["set"] if args.set else []) + (["no_baseline"] if args.no_baseline else [])
    if extra:
        raise LmganError(f"--resume continues the sweep as it was planned; drop --{extra[0].replace('_', '-')}")
    for key in RUN_DEFAULTS:
        given = getattr(args, key, None)
        if given is not None and given != getattr(plan, key):
            raise LmganError(f"--resume: the sweep was planned with --{key.replace('_', '-')} "
                             f"{getattr(plan, key)}; drop --{key.replace('_', '-')} {given}")
    return plan, session
