"""A sweep's plan: everything a sweep is, decided and checked before Ray starts, as one frozen
value that the driver, the trials' spec and the end-of-sweep summary read.

It is saved as JSON beside Tune's own state (`<storage>/<name>/lmgan-sweep.json`) once the sweep's
MLflow run exists, so `--resume` continues the very sweep: same video, space, budget, tracking
store and MLflow parent run, and the resources its trials were placed with.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from lmgan import atomic
from lmgan.config import TUNABLE_KEYS, Config, apply_overrides, validate
from lmgan.errors import LmganError
from lmgan.sweep.space import Param, dump_space

STATE = "lmgan-sweep.json"
FORMAT = 2        # 1: {"name", "plan": {...}, ...} dicts of lmgan before the plan was typed


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
    # Decided when the sweep starts (dataclasses.replace), kept for --resume.
    tracking_uri: str | None = None
    experiment_id: str | None = None
    parent_run_id: str | None = None
    address: str | None = None
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    extra: dict = field(default_factory=dict, compare=False)   # unknown keys of a newer file

    @cached_property
    def searched(self) -> list[str]:
        return sorted(self.space)

    @cached_property
    def goals(self) -> list[tuple[str, str]]:
        """(objective, "max"/"min") of every objective, the primary first."""
        return list(zip(self.objectives, self.modes)) if self.objectives else [(self.objective, self.mode)]

    @property
    def multi_objective(self) -> bool:
        return len(self.goals) > 1

    @property
    def judged_by_last(self) -> bool:
        """A PBT trial's result is its final model (what its schedule made), and Optuna scores
        a multi-objective trial by its last report; an ASHA trial by its best evaluation."""
        return self.scheduler == "pbt" or self.multi_objective

    @cached_property
    def mutable(self) -> list[str]:
        """The searched keys population-based training may change within a trial."""
        return [k for k in self.searched if k in TUNABLE_KEYS]

    @cached_property
    def fixed(self) -> dict:
        """The config values no trial searches (the trials' spec; the parent run's params)."""
        return {k: v for k, v in self.config.to_dict().items() if k not in self.space}

    # ------------------------------------------------------------------------- JSON round trip
    def to_json(self) -> str:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        d.update(format=FORMAT, space=dump_space(self.space), config=self.config.to_dict())
        return json.dumps(d, indent=1)

    @classmethod
    def from_json(cls, text: str, where: str = STATE) -> "SweepPlan":
        try:
            d = json.loads(text)
            if d.get("format") != FORMAT:      # written before the plan was typed
                d = {**d.pop("plan"), **{k: v for k, v in d.items() if k != "resources"},
                     **d.get("resources", {})}
                d["config"] = d.pop("fixed")
            d.pop("format", None)
            d["space"] = {key: Param(key, kind, tuple(values))
                          for key, spec in d["space"].items() for kind, values in spec.items()}
            d["config"] = validate(apply_overrides(Config(), d["config"], where))
            d.update({k: tuple(d[k]) for k in ("objectives", "modes") if k in d})
            names = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in d.items() if k in names},
                       extra={k: v for k, v in d.items() if k not in names})
        except LmganError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, StopIteration) as e:
            raise LmganError(f"{where}: not a sweep plan lmgan can read ({e.__class__.__name__}: {e})") from None

    def save(self, storage: str) -> None:
        """Beside Tune's experiment folder (a local storage only: cloud storage keeps no plan)."""
        if "://" in storage:
            return
        folder = Path(storage) / self.name
        folder.mkdir(parents=True, exist_ok=True)
        atomic.write_text(folder / STATE, self.to_json())


def is_baseline(searched: dict, baseline: dict | None) -> bool:
    """Whether a trial's searched values are the sweep's baseline (the preset's own)."""
    return bool(baseline) and all(k in searched and (searched[k] == v or (
        isinstance(v, float) and math.isclose(searched[k], v, rel_tol=1e-9))) for k, v in baseline.items())


def known_sweeps(storage: str) -> list[str]:
    root = Path(storage)
    return sorted(p.parent.name for p in root.glob(f"*/{STATE}")) if root.is_dir() else []


def load_plan(storage: str, name: str) -> SweepPlan:
    """The plan of the sweep `name`, or one line saying which sweeps there are."""
    path = Path(storage) / name / STATE
    if "://" in storage or not path.is_file():
        known = known_sweeps(storage) if "://" not in storage else []
        raise LmganError(f"--resume: no sweep named {name!r} in {storage} "
                         f"(known: {', '.join(known) or 'none'})")
    return SweepPlan.from_json(path.read_text(), str(path))
