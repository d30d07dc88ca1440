"""Every MLflow read of `lmgan report`: the store, the experiment, the sweep's run and its search
space, the trial runs as `Trial`s and the best trial's sample files. Nothing else in the package
talks to MLflow, so the rest can be built and tested from plain data.

A trial's value is the one the sweep's driver judged it by (its best_<objective> metric) once the
driver recorded it, else `outcome.judged` of its history by the same rule, so that the report and
the driver's summary decide through `outcome.decide` on the same numbers.
"""

from __future__ import annotations

import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from lmgan.atomic import replacing
from lmgan.errors import LmganError, first_line
from lmgan.sweep import outcome, schema, tracking
from lmgan.sweep.outcome import TrialOutcome
from lmgan.sweep.schema import Exploit, Objectives

SAMPLE_RE = re.compile(r"iter_(\d+)\.(mp4|png)$")


def log(msg: str) -> None:
    """lmgan's own progress lines, on stderr: the page's path alone goes to stdout."""
    print(f"report: {msg}", file=sys.stderr, flush=True)


@dataclass
class Trial:
    """One trial run: its `outcome` (what the ranking, the best trial and the front are decided
    on) and what the page shows beside it."""
    outcome: TrialOutcome
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)   # each metric's latest value
    iters: int | None = None                                  # iterations reached, None if unknown
    history: list[tuple[int, float]] = field(default_factory=list)   # the objective by iteration
    searched: list[str] = field(default_factory=list)          # its lmgan.searched tag
    schedule: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # PBT: key → values
    exploits: list[Exploit] = field(default_factory=list)      # PBT: its clones, in order
    recorded: bool = False           # its value is the driver's best_<objective>, not judged here

    @property
    def trial_id(self) -> str:
        return self.outcome.trial

    @property
    def run_id(self) -> str:
        return self.outcome.run_id

    @property
    def status(self) -> str:
        return self.outcome.status

    @property
    def value(self) -> float | None:
        return self.outcome.value

    @property
    def baseline(self) -> bool:
        return self.outcome.baseline

    @property
    def pareto(self) -> bool:
        return self.outcome.pareto


# --------------------------------------------------------------------------- the sweep


def check_store(uri: str) -> None:
    """A report never creates a store: a missing SQLite file or folder is an error."""
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite" or parsed.scheme.startswith("sqlite+"):
        path = uri.split(":///", 1)[1] if ":///" in uri else ""
        if path and path != ":memory:" and not Path(path.split("?", 1)[0]).is_file():
            raise LmganError(f"no MLflow store at {uri} (the file does not exist; run a sweep "
                             f"first or pass --tracking-uri)")
    elif parsed.scheme in ("", "file"):
        path = Path(parsed.path if parsed.scheme == "file" else uri)
        if not path.is_dir():
            raise LmganError(f"no MLflow store at {uri} (no such folder; pass --tracking-uri)")
    tracking.check_reachable(uri)


def experiment(c, name: str):
    """The experiment by its name or its video's name."""
    candidates = [name] if name.startswith("lmgan-") else [name, schema.experiment_name(name)]
    for n in candidates:
        exp = c.get_experiment_by_name(n)
        if exp is not None and exp.lifecycle_stage == "active":
            return exp
    known = sorted(e.name for e in c.search_experiments(filter_string="name LIKE 'lmgan-%'"))
    raise LmganError(f"--experiment {name}: no such experiment (known: "
                     f"{', '.join(known) if known else 'none, no sweep has been tracked here'})")


def sweep_run(c, exp, sweep: str | None):
    """The sweep's parent run by its sweep name, run name or run id; the latest when None."""
    runs = tracking.all_runs(c, exp.experiment_id, f"tags.`{schema.ROLE}` = '{schema.ROLE_SWEEP}'",
                             ["attributes.start_time DESC"])
    if not runs:
        raise LmganError(f"experiment {exp.name} has no sweep runs (none tagged "
                         f"{schema.ROLE}={schema.ROLE_SWEEP}); run `python sweeps/search.py` first")
    if sweep is None:
        return runs[0]
    for r in runs:
        if sweep in (r.data.tags.get(schema.SWEEP), r.info.run_name, r.info.run_id):
            return r
    names = [r.data.tags.get(schema.SWEEP) or r.info.run_name for r in runs]
    raise LmganError(f"--sweep {sweep}: no such sweep in {exp.name} (known: {', '.join(names)})")


def sweep_name(parent) -> str:
    return parent.data.tags.get(schema.SWEEP) or parent.info.run_name


def registry_mode(name: str) -> str:
    """A metric's direction by the registry; "max" for a name it does not know."""
    from lmgan.metrics import REGISTRY
    return "min" if name in REGISTRY and not REGISTRY[name].higher_is_better else "max"


def objectives(parent) -> Objectives:
    """What the sweep optimises, as its driver tagged it; sweeps of older drivers fall back to the
    registry's directions, so that they still rank the right way."""
    return Objectives.from_tags(parent.data.tags, parent.data.params, registry_mode)


def space(c, parent, tmp: Path):
    """The sweep's Param objects from its search-space file, or None when it cannot be read."""
    import yaml

    from lmgan.config import Config
    from lmgan.sweep.space import parse_param, parse_space
    try:
        with quiet_downloads():
            local = c.download_artifacts(parent.info.run_id, schema.SPACE_FILE, str(tmp))
        raw = yaml.safe_load(Path(local).read_text(encoding="utf-8"))
    except Exception as e:
        log(f"no readable {schema.SPACE_FILE} on the sweep run ({first_line(e, 120)})")
        return None
    if not isinstance(raw, dict) or not raw:
        return None
    try:
        return parse_space(raw, schema.SPACE_FILE, Config())
    except LmganError:
        # Valid against the sweep's fixed config but not the defaults: keep the ranges unchecked.
        try:
            return {k: parse_param(k, v, k) for k, v in raw.items()}
        except LmganError:
            return None


# --------------------------------------------------------------------------- the trials


def by_step(history) -> list[tuple[int, float]]:
    """MLflow metric points as (iteration, value), the value logged last where an iteration has
    several (`outcome.latest_by_step`: a PBT clone logs its new lineage's values again)."""
    return outcome.latest_by_step((m.step, m.value) for m in sorted(history, key=lambda m: m.timestamp))


def _value_at(points: list[tuple[int, float]], step: int | None) -> float | None:
    v = dict(points).get(step)
    return float(v) if outcome.finite(v) else None


def trials(c, exp, parent, objs: Objectives) -> list[Trial]:
    """The sweep's trials in start order. Queries per trial: the history of each objective, of
    best_<objective> once the driver recorded it, of each PBT schedule key, and of it_per_s (its
    last step: the iteration it reached) when it logged no `iter` metric."""
    out = []
    names = [n for n, _ in objs.goals]
    recorded_key = schema.best_metric(objs.objective)
    for r in tracking.trial_runs(c, exp.experiment_id, parent.info.run_id):
        run_id, tags, metrics = r.info.run_id, r.data.tags, dict(r.data.metrics)

        def history(key):
            return by_step(c.get_metric_history(run_id, key)) if key in metrics else []

        goals = {n: history(n) for n in names}
        schedule = {k[len(schema.SCHEDULE_PREFIX):]: history(k)
                    for k in sorted(metrics) if k.startswith(schema.SCHEDULE_PREFIX)}
        judged, recorded = None, False
        if recorded_key in metrics:      # the driver's value, at the iteration it was judged at
            last = max(c.get_metric_history(run_id, recorded_key), key=lambda m: m.timestamp, default=None)
            if last is not None and outcome.finite(last.value):
                judged, recorded = (float(last.value), int(last.step)), True
        if judged is None:
            judged = outcome.judged(goals[objs.objective], objs.mode, objs.judged_by_last)
        value, at = judged or (None, None)
        scores = {objs.objective: value, **{n: _value_at(goals[n], at) for n in names[1:]}}

        if outcome.finite(metrics.get(schema.ITER)):
            iters = int(metrics[schema.ITER])
        else:
            steps = [s for h in (*goals.values(), *schedule.values(), history(schema.IT_PER_S)) for s, _ in h]
            iters = max(steps) if steps else None
        searched = [k for k in tags.get(schema.SEARCHED, "").split(",") if k]
        params = dict(r.data.params)
        trial_outcome = TrialOutcome(
            trial=tags.get(schema.TRIAL_ID) or r.info.run_name or run_id,
            status=tags.get(schema.STATUS, "unknown"), reached=iters or 0, value=value, at=at,
            scores=scores, values={k: params[k] for k in searched if k in params},
            baseline=tags.get(schema.BASELINE) == "true", run_id=run_id)
        out.append(Trial(trial_outcome, params, metrics, iters, goals[objs.objective], searched, schedule,
                         schema.exploits_from_tags(tags, warn=log), recorded))
    return out


# --------------------------------------------------------------------------- sample files


@contextmanager
def quiet_downloads():
    """No MLflow progress bar per downloaded artifact: they would bury lmgan's own lines."""
    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR as bar
    before = os.environ.get(bar.name)
    os.environ[bar.name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(bar.name, None)
        else:
            os.environ[bar.name] = before


def latest_samples(paths: set[str]) -> dict[str, tuple[str, int]]:
    """{"mp4"|"png"|"motion": (artifact path, iteration)}: the latest video, with the frame grid
    and motion plot of the video's iteration when there are some (else the latest grid)."""
    latest = {}
    for path in sorted(paths):
        m = SAMPLE_RE.search(path)
        if m and int(m.group(1)) >= latest.get(m.group(2), (None, -1))[1]:
            latest[m.group(2)] = (path, int(m.group(1)))
    if "mp4" in latest:
        video, it = latest["mp4"]
        for kind, suffix in (("png", ".png"), ("motion", "-motion.png")):
            if video[:-4] + suffix in paths:
                latest[kind] = (video[:-4] + suffix, it)
    return latest


def sample_files(c, trial: Trial, files: Path, tmp: Path) -> tuple[dict[str, tuple[Path, int]], str]:
    """Copy the trial's latest samples into `files`, so that the page works offline:
    ({"mp4"|"png"|"motion": (the copy, its iteration)}, what could not be fetched)."""
    import shutil
    try:
        paths = {f.path for f in c.list_artifacts(trial.run_id, "samples") if not f.is_dir}
    except Exception as e:
        return {}, f"its samples could not be listed ({first_line(e, 160)})"
    latest = latest_samples(paths)
    if not latest:
        return {}, "it logged no samples/iter_*.mp4 or .png yet"
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", trial.trial_id)[:80] or "best"
    out, notes = {}, []
    for kind, (path, it) in latest.items():
        try:
            with quiet_downloads():
                local = Path(c.download_artifacts(trial.run_id, path, str(tmp)))
            dst = files / f"best_{safe}_{Path(path).name}"
            with replacing(dst) as part:
                shutil.copyfile(local, part)
            out[kind] = (dst, it)
        except Exception as e:
            notes.append(f"{path} could not be downloaded ({first_line(e, 160)})")
    return out, "; ".join(notes)
