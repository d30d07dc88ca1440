"""Everything a sweep writes to MLflow, in one place: the names of its tags, metrics and files,
and typed records of the two things that have several fields (a trial's PBT exploit, a sweep's
objectives). The driver, the trainable, the summary, the report and the progress lines all read
and write through these names; tests/test_schema.py fails when code spells one elsewhere.

Layout of a sweep in MLflow:
- experiment `lmgan-<video>` (`experiment_name`), tags KIND=custom_model_development (a
  model-training experiment, not GenAI), NOTE (its description, unless a person wrote one), and
  at the end of each sweep VIEW_PREFIX<key>: a saved view of its trials' table.
- the sweep's parent run, named after the sweep: tags ROLE=sweep, SWEEP, VIDEO, and the
  `Objectives` (OBJECTIVE, MODE, OBJECTIVES, MODES) and SCHEDULER; params objective, scheduler,
  trials, max_iters, grace_iters, eval_every, space and fixed.<key>; artifact SPACE_FILE. At the
  end: tags BEST_TRIAL and BEST_RUN_ID (one objective), BASELINE_TRIAL, PARETO_TRIALS (several
  objectives), NOTE (the summary table); metrics best_<objective>, baseline_<objective>, WALL_S;
  artifacts SUMMARY_CSV and SUMMARY_MD.
- one nested run per trial, named `t<NN> <searched values>` (tracking.trial_run_name): tags
  PARENT, ROLE=trial, SWEEP, TRIAL_ID (Tune's id), INDEX (its number), SEARCHED, STATUS (one of
  STATUSES), NODE_ID and PID (where it runs), BASELINE (it runs the preset's own values),
  RESTORED_FROM (a restart's iteration), ERROR (why it errored), EXPLOIT_PREFIX<NN> (one `Exploit`
  per PBT clone, JSON), PARETO (on the front), BEST_CKPT_ITER (the iteration of its
  checkpoints/best.pt); params: every config key; metrics, step = iteration: the losses and
  IT_PER_S at every log, the held-out metrics at every evaluation, best_<objective> (its judged
  value, at the judged iteration: lmgan.sweep.outcome), SCHEDULE_PREFIX<key> (PBT: the values it
  trains with), time_<part>_s and FAILED_SENDS at every checkpoint; artifacts samples/iter_*
  (mp4 with sound, frame grid, motion plot), losses.png, config.yaml, LINEAGE_FILE,
  checkpoints/best.pt, error_config.yaml.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

# ------------------------------------------------------------------------------ MLflow's own
PARENT = "mlflow.parentRunId"
KIND, KIND_TRAINING = "mlflow.experimentKind", "custom_model_development"
NOTE = "mlflow.note.content"          # the description the UI shows for an experiment or a run
VIEW_PREFIX = "mlflow.sharedViewState."   # + key: a saved view of an experiment's runs table

# ------------------------------------------------------------------------------ both runs
ROLE, SWEEP = "lmgan.role", "lmgan.sweep"
ROLE_SWEEP, ROLE_TRIAL = "sweep", "trial"

# ------------------------------------------------------------------------------ the parent run
VIDEO = "lmgan.video"
OBJECTIVE, MODE = "lmgan.objective", "lmgan.mode"
OBJECTIVES, MODES = "lmgan.objectives", "lmgan.modes"   # comma-separated, the primary first
SCHEDULER = "lmgan.scheduler"
BEST_TRIAL, BEST_RUN_ID = "lmgan.best_trial", "lmgan.best_run_id"
BASELINE_TRIAL = "lmgan.baseline_trial"
PARETO_TRIALS = "lmgan.pareto_trials"
SWEEP_PARAMS = ("trials", "max_iters", "grace_iters", "eval_every")   # its budget, as params
WALL_S = "wall_s"
SPACE_FILE, SUMMARY_CSV, SUMMARY_MD = "search_space.yaml", "summary.csv", "summary.md"

# ------------------------------------------------------------------------------ a trial's run
TRIAL_ID, INDEX, SEARCHED = "lmgan.trial_id", "lmgan.trial_index", "lmgan.searched"
STATUS, ERROR = "lmgan.status", "lmgan.error"
NODE_ID, PID = "lmgan.node_id", "lmgan.pid"
BASELINE = "lmgan.baseline"                 # "true" on the trial of the preset's own values
RESTORED_FROM = "lmgan.restored_from"
EXPLOIT_PREFIX = "lmgan.exploit."           # + 01, 02, ...: one `Exploit` per PBT clone
PARETO = "lmgan.pareto"                     # "true" on a trial of the Pareto front
BEST_CKPT_ITER = "lmgan.best_ckpt_iter"
SCHEDULE_PREFIX = "schedule."               # + key: a PBT trial's value of a key it may change
IT_PER_S, ITER = "it_per_s", "iter"
EXPLOITED = "exploited"    # in a Tune result (not MLflow): the `Exploit` that made the report's lineage
FAILED_SENDS = "mlflow_failed_sends"        # sends an outage made wait
LINEAGE_FILE = "lineage.json"               # a PBT trial's exploits, in its folder and on its run
ERROR_CONFIG = "error_config.yaml"

# A trial's lmgan.status: running while it trains; how it ended (finished: reached max_iters;
# stopped: the scheduler stopped it; errored; lost: a trial a killed driver's Tune never recorded,
# run again in its place). `interrupted` is the summary's word for a trial a stopped driver left.
RUNNING, FINISHED, STOPPED, ERRORED, LOST, INTERRUPTED = (
    "running", "finished", "stopped", "errored", "lost", "interrupted")
STATUSES = (FINISHED, STOPPED, ERRORED, RUNNING)      # the ones every count shows, even at 0

# ------------------------------------------------------------------------------ Tune checkpoints
CKPT_FILE = "ckpt.pt"            # the lmgan checkpoint inside a reported Tune checkpoint
ORIGIN_FILE = "origin.json"      # beside it: which trial reported it, with which values
UNSENT = "mlflow_unsent"         # beside it: what MLflow had not received yet


def experiment_name(video: str) -> str:
    return f"lmgan-{video}"


def best_metric(objective: str) -> str:
    """A trial's judged value of the objective (and, on the parent run, the best trial's)."""
    return f"best_{objective}"


def baseline_metric(objective: str) -> str:
    return f"baseline_{objective}"


def time_metric(part: str) -> str:
    """Where a trial's time went: setup, train, mlflow, tune, telemetry (lmgan.bench.sweep_overhead)."""
    return f"time_{part}_s"


def schedule_metric(key: str) -> str:
    return f"{SCHEDULE_PREFIX}{key}"


def exploit_tag(n: int) -> str:
    return f"{EXPLOIT_PREFIX}{n:02d}"


@dataclass(frozen=True)
class Objectives:
    """What a sweep optimises: (metric, "max"/"min") pairs, the primary first, and its scheduler."""
    goals: tuple[tuple[str, str], ...]
    scheduler: str = ""

    @property
    def objective(self) -> str:
        return self.goals[0][0]

    @property
    def mode(self) -> str:
        return self.goals[0][1]

    @property
    def multi(self) -> bool:
        return len(self.goals) > 1

    @property
    def judged_by_last(self) -> bool:
        """A PBT trial's result is its final model (what its schedule made); Optuna scores a
        multi-objective trial by its last report; an ASHA or FIFO trial counts its best evaluation."""
        return self.scheduler == "pbt" or self.multi

    def to_tags(self) -> dict[str, str]:
        return {OBJECTIVE: self.objective, MODE: self.mode, SCHEDULER: self.scheduler,
                OBJECTIVES: ",".join(n for n, _ in self.goals), MODES: ",".join(m for _, m in self.goals)}

    @classmethod
    def from_tags(cls, tags: dict, params: dict | None = None, registry_mode=None) -> "Objectives":
        """Read back from a parent run. Sweeps of older drivers lack some tags: the objective falls
        back to the `objective` param, a missing direction to `registry_mode(name)` ("max" if none)."""
        default = registry_mode or (lambda name: "max")
        objective = tags.get(OBJECTIVE) or (params or {}).get("objective", "").split(",")[0] or "ssim"
        mode = tags.get(MODE) if tags.get(MODE) in ("min", "max") else default(objective)
        names = [n.strip() for n in tags.get(OBJECTIVES, "").split(",") if n.strip()] or [objective]
        modes = [m.strip() for m in tags.get(MODES, "").split(",")]
        if len(modes) != len(names) or not set(modes) <= {"min", "max"}:
            modes = [mode if n == objective else default(n) for n in names]
        return cls(tuple(zip(names, modes)), tags.get(SCHEDULER, ""))


@dataclass(frozen=True)
class Exploit:
    """One PBT clone: at iteration `iter` the trial continued from trial `from_trial`'s checkpoint
    with `new` values (the donor trained with `donor`; the trial itself with `was`, having reached
    iteration `at`). Tag EXPLOIT_PREFIX<NN> on the trial's run holds it as JSON; LINEAGE_FILE their list."""
    iter: int
    from_trial: str
    at: int | None = None
    was: dict = field(default_factory=dict)
    donor: dict = field(default_factory=dict)
    new: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["from"] = d.pop("from_trial")      # the JSON's key, kept for sweeps already recorded
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict) -> "Exploit":
        if not (isinstance(d, dict) and isinstance(d.get("from"), str) and isinstance(d.get("iter"), int)):
            raise ValueError("not an exploit record")
        return cls(iter=d["iter"], from_trial=d["from"], at=d.get("at"), was=dict(d.get("was") or {}),
                   donor=dict(d.get("donor") or {}), new=dict(d.get("new") or {}))

    @classmethod
    def from_json(cls, text: str) -> "Exploit":
        return cls.from_dict(json.loads(text))

    def same_clone(self, other: "Exploit") -> bool:
        """The same clone again (its process died before its first report and restarted)."""
        return (self.from_trial, self.iter, self.new) == (other.from_trial, other.iter, other.new)


def exploits_from_tags(tags: dict, warn=None) -> list[Exploit]:
    """A trial run's exploits from its numbered tags, in order; an unreadable one is left out
    (and named to `warn`)."""
    out = []
    for key in sorted(k for k in tags if k.startswith(EXPLOIT_PREFIX)):
        try:
            out.append(Exploit.from_json(tags[key]))
        except ValueError:
            if warn:
                warn(f"tag {key} is not an exploit's JSON; left out")
    return out
