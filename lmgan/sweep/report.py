"""`lmgan report`: one HTML page about one sweep, read back from MLflow (layout: tracking.py).

The page holds the trials as a Table-1-style table (searched params, held-out metrics as
mean ± std, iterations, status; best first), Optuna's parameter importances for the objective,
a parallel-coordinate plot, the objective over iterations of every trial and the best trial's
section: its sample video (generated | real, with sound) scaled up with its halves labelled, and
its metrics in two groups, "image quality" (frame and set metrics, beside the frame grid) and
"does it listen" (sequence and probe metrics, beside the motion-over-time plot).

Two kinds of sweep add pictures of their own: a PBT sweep its lineage (which trial continued from
whose checkpoint, and when) and its schedules (the values each trial trained with over iterations);
a multi-objective sweep its Pareto front, whose trials the table marks, since no one trial is best.

Two steps, so that the layout can be read, changed and tested without a store:
- `gather_page` does every MLflow query, computes the importances and charts and copies the best
  trial's samples, and returns a `SweepPage`: plain dataclasses of display-ready strings.
- `render_page` lays a `SweepPage` out with the Jinja2 template `templates/report.html`, loaded
  from this package (shipped as package data), with autoescaping on: every string from MLflow is
  escaped by the template; only the plotly chart snippets, built here and wrapped in `Markup`,
  are inserted raw.

Offline by design: plotly.js is written once into the sibling folder `<out stem>_files/`, beside
the best trial's sample files, and the page refers to all of them relatively, so the page and
its folder can be copied anywhere together.
"""

from __future__ import annotations

import functools
import json
import math
import re
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlparse

import jinja2
from markupsafe import Markup

from lmgan.atomic import replacing
from lmgan.errors import LmganError, first_line
from lmgan.runs import runs_root
from lmgan.sweep import tracking
from lmgan.sweep.pareto import non_dominated

STATUSES = ("finished", "stopped", "errored", "running")
SAMPLE_RE = re.compile(r"iter_(\d+)\.(mp4|png)$")
SWEEP_PARAMS = ("trials", "max_iters", "grace_iters", "eval_every")
TEMPLATE = "report.html"      # in lmgan/sweep/templates/
IMPORTANCE_MIN_TRIALS = 10    # fewer finished or stopped trials: the importances come with a warning
VIDEO_WIDTH = 640             # CSS px the best trial's video is shown at, about (integer upscaling)
# A metric's group in the best trial's section, by its registry kind (lmgan.metrics.REGISTRY).
GROUPS = {"frame": "image", "set": "image", "sequence": "sync", "probe": "sync"}
GROUP_TITLES = {"image": "image quality", "sync": "does it listen", "other": "training"}
# What a companion of a metric (lmgan.training.artifacts.COMPANIONS) is, in the metric tables.
COMPANION_WHAT = {"_real": "{base} of the real video itself: what the generated one can reach",
                  "_silence": "{base} with the sound silenced instead of shifted"}
# What the sweep driver writes for PBT and multi-objective sweeps (search.py, trainable.py).
SCHEDULE = "schedule."        # + key: a trial's value of a key PBT may change, at each report
EXPLOIT = "lmgan.exploit."    # + 01, 02, ...: one tag per exploit on the trial's run, its JSON
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2", "#ff9da6",
           "#9d755d", "#bab0ac")   # a trial's colour, the same in the lineage and the schedules


@dataclass
class Trial:
    run_id: str
    trial_id: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    iters: int | None
    value: float | None              # the objective's latest value
    history: list[tuple[int, float]] = field(default_factory=list)
    searched: list[str] = field(default_factory=list)   # its lmgan.searched tag
    baseline: bool = False           # it ran the preset's own values (the sweep's first trial)
    schedule: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # PBT: key → values
    exploits: list[dict] = field(default_factory=list)  # PBT: its lmgan.exploit.* tags, in order
    pareto: bool = False             # on the Pareto front of a multi-objective sweep


# --------------------------------------------------------------------------- what the page shows
# Plain data, every value already formatted for display, so the template only lays it out.


@dataclass
class TrialRef:
    """A trial as the page names it; `href` is its MLflow run page when the store has a web UI."""
    trial_id: str
    run_id: str
    href: str | None = None


@dataclass
class Head:
    """The title and the lines under it."""
    sweep: str
    experiment: str
    objective: str
    mode: str                        # "max" or "min"
    video: str
    counts: dict[str, int]           # trials per status, the four STATUSES first
    budget: list[str]                # the sweep's budget params as "max_iters 300"
    started: str
    written: str
    tracking: str                    # the store's URI, its password redacted
    versus: str = ""                 # how the best trial did against the baseline trial
    objectives: list[tuple[str, str]] = field(default_factory=list)  # every (name, mode) of a
    #                                  multi-objective sweep, the primary (`objective`) first; else []
    scheduler: str = ""              # "asha", "pbt" or "fifo"; "" when the driver did not say


@dataclass
class Row:
    """One trial in the table."""
    trial: TrialRef
    best: bool
    cells: list[str]                 # its searched params, then its metrics (Table.metrics' order)
    iters: str
    status: str
    baseline: bool = False
    pareto: bool = False             # on the Pareto front (multi-objective sweeps)


@dataclass
class Table:
    """The trials table, best first."""
    params: list[tuple[str, str]]    # searched key and its range ("" when the space is unknown)
    metrics: list[str]               # metric column headers: name, direction, objective mark
    rows: list[Row]


@dataclass
class Importance:
    """Optuna's parameter importances for the objective, or why they are not shown."""
    why_not: str = ""
    chart: Markup | None = None
    values: list[tuple[str, str]] = field(default_factory=list)   # most important first
    evaluator: str = ""
    trials: int = 0                  # the finished or stopped trials they come from
    skipped: int = 0                 # trials left out: their params are outside the space
    warning: str = ""                # shown above them: too few trials to read them, "" if enough


@dataclass
class Sample:
    """A best-trial sample file in the page's files folder."""
    src: str                         # relative to the page, URL-quoted
    iteration: int
    width: int | None = None         # its size in pixels (the video: 2S x S, generated | real),
    height: int | None = None        # None when it could not be read
    audio: bool | None = None        # the video has a sound track; None when not known


@dataclass
class MetricGroup:
    """A group of the best trial's metrics: "image quality", "does it listen" or "training"."""
    key: str                         # "image", "sync" or "other" (GROUPS)
    title: str
    rows: list[tuple[str, str, str]]  # header (name, direction, objective mark), value, what it is


@dataclass
class BestTrial:
    """The best trial's section."""
    trial: TrialRef
    value: str
    status: str
    iters: str
    recorded: str                    # the driver's best trial when it is another one, else ""
    params: list[tuple[str, str]]    # the searched params
    metrics: list[MetricGroup]       # its latest metrics: image quality, does it listen, training
    samples: dict[str, Sample]       # "mp4" (video), "png" (frame grid), "motion" (plot)
    samples_note: str                # what went wrong fetching them, "" if nothing
    config: list[tuple[str, str]]    # every param it ran with


@dataclass
class Exploit:
    """One PBT exploit: a trial dropped its own weights for a better trial's checkpoint and went on
    from there with the donor's values perturbed."""
    trial: str                       # the trial that was replaced
    donor: str                       # the trial whose checkpoint it continued from
    iteration: str                   # the donor checkpoint's iteration
    text: str                        # "t03 cloned t01 at iteration 200: lr_g 1.0e-4 → 1.2e-4"
    was: str                         # the trial's own values before, "lr_g 5.0e-5, ..."


@dataclass
class Lineage:
    """A PBT sweep's lineage (a lane per trial, an arrow per exploit) and its schedules."""
    chart: Markup | None             # None when no trial has reached an iteration yet
    schedules: Markup | None         # one subplot per scheduled key; None when none was logged
    keys: list[str]                  # the scheduled keys
    exploits: list[Exploit]          # in the order they happened
    summary: str                     # how many exploits, how many trials they replaced


@dataclass
class Pareto:
    """A multi-objective sweep's trade-offs: the trials that no other beats on every objective."""
    objectives: list[str]            # "fvd (lower is better)", the primary first
    chart: Markup | None             # 2 objectives: a scatter; 3 or more: a scatter matrix
    front: list[tuple[TrialRef, list[str]]]   # its trials and their values, best on the primary first
    note: str                        # how many trials are on it, how many had not every value


@dataclass
class SweepPage:
    """Everything the page shows: what `gather_page` reads from MLflow, `render_page` lays out."""
    head: Head
    files: str                       # the files folder as the page refers to it (URL-quoted)
    table: Table
    importance: Importance
    parallel: Markup | None          # the parallel-coordinate chart, None when there is none
    history: Markup | None           # the objective over iterations, None when nothing is logged
    best: BestTrial | None           # None when no trial has an objective value
    lineage: Lineage | None = None   # PBT sweeps only
    pareto: Pareto | None = None     # multi-objective sweeps only


def _log(msg: str) -> None:
    print(f"report: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- MLflow queries


def _check_store(uri: str) -> None:
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


def _experiment(c, name: str):
    candidates = [name] if name.startswith("lmgan-") else [name, tracking.experiment_name(name)]
    for n in candidates:
        exp = c.get_experiment_by_name(n)
        if exp is not None and exp.lifecycle_stage == "active":
            return exp
    known = sorted(e.name for e in c.search_experiments(filter_string="name LIKE 'lmgan-%'"))
    raise LmganError(f"--experiment {name}: no such experiment (known: "
                     f"{', '.join(known) if known else 'none, no sweep has been tracked here'})")


def _sweep_run(c, exp, sweep: str | None):
    runs = tracking.all_runs(c, exp.experiment_id, f"tags.`{tracking.ROLE}` = 'sweep'",
                     ["attributes.start_time DESC"])
    if not runs:
        raise LmganError(f"experiment {exp.name} has no sweep runs (none tagged "
                         f"{tracking.ROLE}=sweep); run `python sweeps/search.py` first")
    if sweep is None:
        return runs[0]
    for r in runs:
        if sweep in (r.data.tags.get(tracking.SWEEP), r.info.run_name, r.info.run_id):
            return r
    names = [r.data.tags.get(tracking.SWEEP) or r.info.run_name for r in runs]
    raise LmganError(f"--sweep {sweep}: no such sweep in {exp.name} (known: {', '.join(names)})")


def _space(c, parent, tmp: Path):
    """The sweep's Param objects from its search_space.yaml, or None when it cannot be read."""
    import yaml

    from lmgan.config import Config
    from lmgan.sweep.space import _param, parse_space
    try:
        local = c.download_artifacts(parent.info.run_id, "search_space.yaml", str(tmp))
        raw = yaml.safe_load(Path(local).read_text(encoding="utf-8"))
    except Exception as e:
        _log(f"no readable search_space.yaml on the sweep run ({first_line(e, 120)})")
        return None
    if not isinstance(raw, dict) or not raw:
        return None
    try:
        return parse_space(raw, "search_space.yaml", Config())
    except LmganError:
        # Valid against the sweep's fixed config but not the defaults: keep the ranges unchecked.
        try:
            return {k: _param(k, *next(iter(v.items())), k) for k, v in raw.items()}
        except Exception:
            return None


def _trials(c, exp, parent, objective: str) -> list[Trial]:
    out = []
    for r in tracking.trial_runs(c, exp.experiment_id, parent.info.run_id):
        metrics = dict(r.data.metrics)
        objs = getattr(r.data, "_metric_objs", None) or []
        steps = [m.step for m in objs]
        history = []
        if objective in metrics:
            history = _by_step(c.get_metric_history(r.info.run_id, objective))
            steps += [s for s, _ in history]
        schedule = {k[len(SCHEDULE):]: _by_step(c.get_metric_history(r.info.run_id, k))
                    for k in sorted(metrics) if k.startswith(SCHEDULE)}
        iters = int(metrics["iter"]) if _finite(metrics.get("iter")) else (max(steps) if steps else None)
        value = metrics.get(objective)
        out.append(Trial(r.info.run_id, r.data.tags.get(tracking.TRIAL_ID) or r.info.run_name or r.info.run_id,
                         r.data.tags.get(tracking.STATUS, "unknown"), dict(r.data.params), metrics,
                         iters, value if _finite(value) else None, history,
                         [k for k in r.data.tags.get("lmgan.searched", "").split(",") if k],
                         r.data.tags.get("lmgan.baseline") == "true", schedule, _exploits(r.data.tags)))
    return out


def _by_step(history) -> list[tuple[int, float]]:
    """A metric's (step, value) in step order, the value logged last where a step has several: a
    PBT trial logs the steps after its clone's iteration again, for its new lineage."""
    latest = {}
    for m in sorted(history, key=lambda m: (m.step, m.timestamp)):
        latest[m.step] = m.value
    return sorted(latest.items())


def _exploits(tags: dict) -> list[dict]:
    """A trial's exploits from its numbered lmgan.exploit.* tags, in order; unreadable ones left out."""
    out = []
    for key in sorted(k for k in tags if k.startswith(EXPLOIT)):
        try:
            e = json.loads(tags[key])
            if isinstance(e, dict) and isinstance(e.get("from"), str) and isinstance(e.get("iter"), int):
                out.append(e)
                continue
        except ValueError:
            pass
        _log(f"tag {key} is not an exploit's JSON; left out")
    return out


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


# --------------------------------------------------------------------------- Optuna


def _distributions(space, trials: list[Trial], keys: list[str]) -> dict:
    """Optuna distributions of the searched keys: from the space, else inferred from the values."""
    from optuna import distributions as d
    if space is not None:
        return {k: p.to_optuna() for k, p in space.items()}
    dists = {}
    for k in keys:
        vals = [t.params[k] for t in trials if k in t.params]
        try:
            nums = [float(v) for v in vals]
            if not all(map(math.isfinite, nums)) or any(v in ("True", "False") for v in vals):
                raise ValueError
        except ValueError:
            if len(set(vals)) > 1:
                dists[k] = d.CategoricalDistribution(sorted(set(vals)))
            continue
        if nums and min(nums) < max(nums):
            if all(float(n).is_integer() for n in nums) and all(re.fullmatch(r"-?\d+", v) for v in vals):
                dists[k] = d.IntDistribution(int(min(nums)), int(max(nums)))
            else:
                dists[k] = d.FloatDistribution(min(nums), max(nums))
    return dists


def _from_param(s: str, dist):
    """An MLflow param string back in its distribution's type (raises ValueError if it is not one)."""
    from optuna import distributions as d
    if isinstance(dist, d.CategoricalDistribution):
        for choice in dist.choices:
            if tracking._param_str(choice) == s:
                return choice
        raise ValueError(f"{s!r} is none of the choices")
    if isinstance(dist, d.IntDistribution):
        v = float(s)
        if not v.is_integer():
            raise ValueError(f"{s!r} is not an integer")
        return int(v)
    return float(s)


def _study(trials: list[Trial], dists: dict, maximize: bool):
    """An in-memory study of the finished and stopped trials that have an objective value."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if maximize else "minimize")
    skipped = 0
    for t in trials:
        if t.status not in ("finished", "stopped") or t.value is None:
            continue
        try:
            params = {k: _from_param(t.params[k], dist) for k, dist in dists.items()}
            study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=t.value))
        except (KeyError, ValueError):
            skipped += 1
    return study, skipped


def _importances(study, dists: dict) -> tuple[dict | None, str, str]:
    """(importances or None, why not, evaluator name)."""
    import optuna
    trials = study.trials
    if len(trials) < 2:
        return None, (f"Parameter importances need at least 2 finished or stopped trials with an "
                      f"objective value; this sweep has {len(trials)}."), ""
    varied = [k for k in dists if len({repr(t.params[k]) for t in trials}) > 1]
    if not varied:
        return None, "No searched parameter varies across the finished trials.", ""
    if len({t.value for t in trials}) < 2:
        return None, "The objective has the same value in every finished trial.", ""
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        name = "fANOVA (Optuna FanovaImportanceEvaluator, seed 0)"
    except ImportError:  # scikit-learn missing: Optuna's default evaluator
        evaluator, name = None, "Optuna's default evaluator"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imp = optuna.importance.get_param_importances(study, evaluator=evaluator, params=varied)
    except Exception as e:
        return None, f"Optuna could not compute importances ({first_line(e, 200)}).", ""
    return {k: float(v) for k, v in imp.items()}, "", name


# --------------------------------------------------------------------------- formatting


def _decimals(v: float) -> int:
    if not v or not math.isfinite(v):
        return 4
    return min(6, max(0, 3 - math.floor(math.log10(abs(v)))))


def _num(v) -> str:
    if v is None:
        return ""
    if not math.isfinite(v):
        return str(v)
    return f"{v:.4g}"


def _mean_std(m, s) -> str:
    if m is None:
        return ""
    if not math.isfinite(m):
        return str(m)
    d = _decimals(m)
    return f"{m:.{d}f}" + (f" ± {s:.{d}f}" if _finite(s) else "")


def _metric_text(metrics: dict[str, float], name: str) -> str:
    """Frame metrics as mean ± std over the held-out windows, set metrics (and others) as one value."""
    from lmgan.metrics import REGISTRY
    spec, m = REGISTRY.get(name), metrics.get(name)
    return _mean_std(m, metrics.get(f"{name}_std")) if spec and spec.kind == "frame" else _num(m)


def _metric_label(name: str, objectives: str | list[str]) -> str:
    """A metric column's header: which way is better, and whether it is an objective."""
    from lmgan.metrics import REGISTRY
    spec = REGISTRY.get(name)
    arrow = "" if spec is None else (" ↑" if spec.higher_is_better else " ↓")
    marked = [objectives] if isinstance(objectives, str) else objectives
    return name + arrow + (" (objective)" if name in marked else "")


def _metric_base(name: str) -> tuple[str, str]:
    """(the registry metric a logged name belongs to, its companion suffix): av_align_real is
    av_align's "_real", sensitivity_silence sensitivity's "_silence"; ("", "") for other names."""
    from lmgan.metrics import REGISTRY
    from lmgan.training.artifacts import COMPANIONS
    if name in REGISTRY:
        return name, ""
    for suffix in COMPANIONS:
        if name.endswith(suffix) and name[:-len(suffix)] in REGISTRY:
            return name[:-len(suffix)], suffix
    return "", ""


def _metric_group(name: str) -> str:
    """"image" (frame and set metrics), "sync" (sequence and probe metrics, their companions too)
    or "other" (losses, speed, anything not in the registry)."""
    from lmgan.metrics import REGISTRY
    base, _ = _metric_base(name)
    return GROUPS.get(REGISTRY[base].kind, "other") if base else "other"


def _metric_what(name: str) -> str:
    """What a metric measures, from the registry; a companion says whose score it is."""
    from lmgan.metrics import REGISTRY
    from lmgan.training.artifacts import COMPANIONS
    base, suffix = _metric_base(name)
    if not base:
        return ""
    if not suffix:
        return REGISTRY[base].what
    return COMPANION_WHAT.get(suffix, "{base}, " + COMPANIONS[suffix]).format(base=base)


def _metric_groups(metrics: dict[str, float], objective: str | list[str]) -> list[MetricGroup]:
    """The latest metrics in their three groups (each present, maybe empty), registry order first,
    a companion right after its metric, a registry metric's _std folded into its mean."""
    from lmgan.metrics import REGISTRY
    order = list(REGISTRY)

    def key(n):
        base, suffix = _metric_base(n)
        return (0, order.index(base), suffix, n) if base else (1, 0, "", n)

    names = sorted((n for n in metrics if not (n.endswith("_std") and n[:-4] in REGISTRY)), key=key)
    groups = {g: MetricGroup(g, GROUP_TITLES[g], []) for g in GROUP_TITLES}
    for n in names:
        groups[_metric_group(n)].rows.append((_metric_label(n, objective), _metric_text(metrics, n),
                                              _metric_what(n)))
    return list(groups.values())


def _param_cell(s: str | None, p) -> str:
    if s is None:
        return ""
    if p is not None and p.kind in ("loguniform", "uniform"):
        try:
            return f"{float(s):.3g}"
        except ValueError:
            pass
    return s


def _iters(t: Trial) -> str:
    return "" if t.iters is None else str(t.iters)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _redact(uri: str) -> str:
    """The URI without its password: the page is made to be copied and shared."""
    p = urlparse(uri)
    if p.password:
        return uri.replace(f":{p.password}@", ":***@")
    return uri


def _runs_url(uri: str, exp) -> str | None:
    """The MLflow UI's run-page prefix for a tracking server; None for a local store (no UI)."""
    p = urlparse(uri)
    if p.scheme not in ("http", "https"):
        return None
    host = p._replace(netloc=p.netloc.rpartition("@")[2]).geturl()   # no user:password in a shared page
    return f"{host.rstrip('/')}/#/experiments/{quote(exp.experiment_id)}/runs/"


def _ref(t: Trial, runs_url: str | None) -> TrialRef:
    return TrialRef(t.trial_id, t.run_id, runs_url + quote(t.run_id) if runs_url else None)


def _fig_html(fig, div_id: str, height: int) -> Markup:
    """A plotly chart as a page snippet, marked safe: the one kind of HTML the template keeps raw
    (plotly escapes the strings it embeds in its JSON)."""
    fig.update_layout(height=height, margin=dict(l=60, r=30, t=40, b=50), template="plotly_white")
    return Markup(fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                              default_height=f"{height}px", config={"displaylogo": False}))


# --------------------------------------------------------------------------- files


def _copy(src: Path, dst: Path) -> None:
    with replacing(dst) as tmp:
        shutil.copyfile(src, tmp)


def _plotly_js(files: Path) -> None:
    from plotly.offline import get_plotlyjs
    js = get_plotlyjs().encode("utf-8")
    dst = files / "plotly.min.js"
    if dst.is_file() and dst.stat().st_size == len(js):
        return
    with replacing(dst) as tmp:
        tmp.write_bytes(js)


def _video_facts(path: Path) -> dict:
    """The video's width, height and whether it has sound, without decoding it; {} if unreadable."""
    try:
        import av
        with av.open(str(path)) as container:
            video = container.streams.video[0] if container.streams.video else None
            return {"width": video.codec_context.width if video is not None else None,
                    "height": video.codec_context.height if video is not None else None,
                    "audio": bool(container.streams.audio)}
    except Exception as e:
        _log(f"could not read the size of {path.name} ({first_line(e, 120)})")
        return {}


def _shown_width(sample: Sample) -> int:
    """CSS px to show a video at: its width times the largest whole factor that keeps it within
    about VIDEO_WIDTH (whole factors keep `image-rendering: pixelated` crisp); VIDEO_WIDTH when
    the size is unknown, its own width when it is already as wide."""
    if not sample.width or sample.width <= 0:
        return VIDEO_WIDTH
    return sample.width * max(1, VIDEO_WIDTH // sample.width)


def _latest_samples(paths: set[str]) -> dict[str, tuple[str, int]]:
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


def _best_samples(c, trial: Trial, files: Path, tmp: Path) -> tuple[dict[str, Sample], str]:
    """Copy the best trial's latest samples into `files`, so the page works offline:
    ({"mp4"|"png"|"motion": Sample}, note on what could not be fetched)."""
    try:
        paths = {f.path for f in c.list_artifacts(trial.run_id, "samples") if not f.is_dir}
    except Exception as e:
        return {}, f"its samples could not be listed ({first_line(e, 160)})"
    latest = _latest_samples(paths)
    if not latest:
        return {}, "it logged no samples/iter_*.mp4 or .png yet"
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", trial.trial_id)[:80] or "best"
    out, notes = {}, []
    for kind, (path, it) in latest.items():
        try:
            local = Path(c.download_artifacts(trial.run_id, path, str(tmp)))
            name = f"best_{safe}_{Path(path).name}"
            _copy(local, files / name)
            out[kind] = Sample(f"{quote(files.name)}/{quote(name)}", it,
                               **(_video_facts(files / name) if kind == "mp4" else {}))
        except Exception as e:
            notes.append(f"{path} could not be downloaded ({first_line(e, 160)})")
    return out, "; ".join(notes)


# --------------------------------------------------------------------------- gathering


def gather_page(c, experiment: str, uri: str, sweep: str | None, files: Path) -> SweepPage:
    """Everything the page shows, with the best trial's samples copied into `files`. All the store
    queries and computations happen here, so that `render_page` needs neither MLflow nor Optuna."""
    exp = _experiment(c, experiment)
    parent = _sweep_run(c, exp, sweep)
    files.mkdir(parents=True, exist_ok=True)     # only now: a wrong name leaves no folder behind
    objective, mode = _objective(parent)
    goals = _goals(parent, objective, mode)      # [] unless the sweep has several objectives
    if goals:
        objective, mode = goals[0]
    marked = [n for n, _ in goals] or [objective]
    runs_url = _runs_url(uri, exp)
    with tempfile.TemporaryDirectory(prefix="lmgan-report-") as tmpdir:
        tmp = Path(tmpdir)
        trials = _trials(c, exp, parent, objective)
        _mark_front(trials, goals)
        head = _head(exp, parent, uri, objective, mode, _counts(trials), goals)
        summary = ", ".join(f"{n} {s}" for s, n in head.counts.items() if n)
        aims = ", ".join(f"{n} ({m})" for n, m in goals or [(objective, mode)])
        _log(f"{exp.name} / {head.sweep}: {_plural(len(trials), 'trial')} ({summary}), "
             f"objective{'s' if goals else ''} {aims}")
        space = _space(c, parent, tmp)
        lineage = _lineage(trials) if head.scheduler == "pbt" or any(t.exploits for t in trials) else None
        trials, best = _ranked(trials, mode == "max", on_front=bool(goals))
        head.versus = _versus(next((t for t in trials if t.baseline), None), best, objective, mode)
        cols = _columns(space, trials)
        _log("computing parameter importances")
        dists = _distributions(space, trials, cols)
        study, skipped = _study(trials, dists, mode == "max") if dists else (None, 0)
        return SweepPage(
            head=head, files=quote(files.name),
            table=_table(trials, cols, space, marked, best, runs_url),
            importance=_importance(study, dists, skipped, objective),
            parallel=_parallel_chart(study, objective),
            history=_history_chart(trials, best, objective),
            best=_best_trial(c, best, cols, marked, parent.data.tags.get("lmgan.best_trial"),
                             files, tmp, runs_url),
            lineage=lineage, pareto=_pareto(trials, goals, runs_url) if goals else None)


def _versus(base: Trial | None, best: Trial | None, objective: str, mode: str) -> str:
    """The baseline trial (the preset's own values) against the best: what the search gained."""
    if base is None or base.value is None:
        return ""
    head = f"baseline {base.trial_id} (the preset's own values): {objective} {_num(base.value)}"
    if best is None or best is base:
        return f"{head}; no trial beat it"
    gain = (best.value - base.value) * (1 if mode == "max" else -1)
    return f"{head}; the best trial beat it by {_num(gain)}"


def _objective(parent) -> tuple[str, str]:
    """The sweep's objective and "max"/"min": as the driver tagged them, else the registry's
    direction, so that sweeps from older drivers still rank the right way."""
    tags = parent.data.tags
    objective = tags.get("lmgan.objective") or parent.data.params.get("objective") or "ssim"
    mode = tags.get("lmgan.mode")
    return objective, mode if mode in ("min", "max") else _registry_mode(objective)


def _registry_mode(name: str) -> str:
    """A metric's direction by the registry; "max" for a name it does not know."""
    from lmgan.metrics import REGISTRY
    return "min" if name in REGISTRY and not REGISTRY[name].higher_is_better else "max"


def _goals(parent, objective: str, mode: str) -> list[tuple[str, str]]:
    """A multi-objective sweep's (objective, mode) pairs, the primary first, from its
    lmgan.objectives and lmgan.modes tags; [] for a sweep with one objective (older drivers write
    neither tag). A mode missing or unreadable is the registry's direction."""
    tags = parent.data.tags
    names = [n.strip() for n in tags.get("lmgan.objectives", "").split(",") if n.strip()]
    if len(names) < 2:
        return []
    modes = [m.strip() for m in tags.get("lmgan.modes", "").split(",")]
    if len(modes) != len(names) or not set(modes) <= {"min", "max"}:
        modes = [mode if n == objective else _registry_mode(n) for n in names]
    return list(zip(names, modes))


def _mark_front(trials: list[Trial], goals: list[tuple[str, str]]) -> None:
    """Mark the trials on the Pareto front of their latest values: computed here, not read from the
    driver's lmgan.pareto tags, so that a sweep still running (or interrupted) has its front too."""
    if not goals:
        return
    names = [n for n, _ in goals]
    points = [tuple(t.metrics[n] for n in names) if all(n in t.metrics for n in names) else None
              for t in trials]
    for t, on in zip(trials, non_dominated(points, [m for _, m in goals])):
        t.pareto = on


def _counts(trials: list[Trial]) -> dict[str, int]:
    """Trials per status: the four usual ones always (0 says something too), then any other."""
    counts = {s: 0 for s in STATUSES}
    for t in trials:
        counts[t.status] = counts.get(t.status, 0) + 1
    return counts


def _head(exp, parent, uri: str, objective: str, mode: str, counts: dict[str, int],
          goals: list[tuple[str, str]]) -> Head:
    """The title lines; the URI's password redacted, since the page is made to be passed around."""
    tags, params = parent.data.tags, parent.data.params
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(parent.info.start_time / 1000)) \
        if parent.info.start_time else "?"
    budget = [f"{k} {params[k]}" for k in SWEEP_PARAMS if k in params]
    return Head(tags.get(tracking.SWEEP) or parent.info.run_name, exp.name, objective, mode,
                tags.get("lmgan.video", "?"), counts, budget, started, time.strftime("%Y-%m-%d %H:%M"),
                _redact(uri), objectives=goals, scheduler=tags.get("lmgan.scheduler", ""))


def _ranked(trials: list[Trial], maximize: bool, on_front: bool = False) -> tuple[list[Trial], Trial | None]:
    """The trials best first by the (primary) objective, those without a value last in start order;
    the best: the first, or with `on_front` (a multi-objective sweep) the first on the Pareto front."""
    ranked = sorted((t for t in trials if t.value is not None),
                    key=lambda t: -t.value if maximize else t.value)
    best = next((t for t in ranked if t.pareto or not on_front), None)
    return ranked + [t for t in trials if t.value is None], best


def _columns(space, trials: list[Trial]) -> list[str]:
    """The searched keys: the space's, else (no readable space) the trials' lmgan.searched tags."""
    cols = list(space) if space else []
    if not cols:
        for t in trials:
            cols += [k for k in t.searched if k not in cols]
    return cols


def _table(trials: list[Trial], cols: list[str], space, objectives: list[str], best: Trial | None,
           runs_url: str | None) -> Table:
    """The trials table: searched params, then the registry's metrics that some trial logged (in
    registry order); each objective always has a column, even before any trial logged it."""
    from lmgan.metrics import REGISTRY
    present = set().union(*(t.metrics for t in trials)) if trials else set()
    metrics = [n for n in REGISTRY if n in present]
    metrics = [n for n in objectives if n in present and n not in metrics] + metrics
    labels = [_metric_label(n, objectives) for n in metrics]
    for n in objectives:
        if n not in metrics:
            metrics.append(n)
            labels.append(f"{n} (objective)")
    params = [(k, space[k].describe() if space and k in space else "") for k in cols]
    rows = [Row(_ref(t, runs_url), t is best,
                [_param_cell(t.params.get(k), space.get(k) if space else None) for k in cols]
                + [_metric_text(t.metrics, n) for n in metrics], _iters(t), t.status, t.baseline,
                t.pareto)
            for t in trials]
    return Table(params, labels, rows)


def _importance(study, dists: dict, skipped: int, objective: str) -> Importance:
    """Optuna's importances as a bar chart and a table, or why there are none."""
    import plotly.graph_objects as go
    if study is None:
        return Importance("No searched parameters are known for this sweep.")
    imp, why, evaluator = _importances(study, dists)
    if imp is None:
        return Importance(why)
    order = sorted(imp, key=imp.get)
    fig = go.Figure(go.Bar(x=[imp[k] for k in order], y=order, orientation="h", marker_color="#4c78a8",
                           hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.update_layout(xaxis_title=f"importance for {objective}", yaxis_title=None)
    n = len(study.trials)
    return Importance(chart=_fig_html(fig, "importance-chart", max(220, 60 + 40 * len(order))),
                      values=[(k, f"{imp[k]:.3f}") for k in reversed(order)], evaluator=evaluator,
                      trials=n, skipped=skipped, warning=_importance_warning(n))


def _importance_warning(n: int) -> str:
    """A plain warning when the importances rest on fewer than IMPORTANCE_MIN_TRIALS trials."""
    if n >= IMPORTANCE_MIN_TRIALS:
        return ""
    return (f"Importances from {_plural(n, 'trial')} are noise-level; run more trials before reading "
            f"them (at least {IMPORTANCE_MIN_TRIALS} finished or stopped trials with a "
            f"value of the objective).")


def _parallel_chart(study, objective: str) -> Markup | None:
    """Optuna's parallel-coordinate plot of the study: which param values the good trials share."""
    import optuna
    if study is None or not study.trials:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig = optuna.visualization.plot_parallel_coordinate(study, target_name=objective)
    fig.update_layout(title=None)
    return _fig_html(fig, "parallel-coordinates", 460)


def _history_chart(trials: list[Trial], best: Trial | None, objective: str) -> Markup | None:
    """Every trial's objective over iterations, the best one's line thickest."""
    import plotly.graph_objects as go
    if not any(t.history for t in trials):
        return None
    fig = go.Figure()
    for t in trials:
        if t.history:
            fig.add_trace(go.Scatter(x=[s for s, _ in t.history], y=[v for _, v in t.history],
                                     mode="lines+markers", name=t.trial_id,
                                     line=dict(width=4 if t is best else 1.5)))
    fig.update_layout(xaxis_title="iteration", yaxis_title=objective)
    return _fig_html(fig, "objective-history", 460)


def _lineage(trials: list[Trial]) -> Lineage:
    """A PBT sweep's lineage and schedules, the trials in start order (each keeps its colour)."""
    names = {t.trial_id for t in trials}
    exploits = [(t, e, _exploit(t.trial_id, e)) for t in trials for e in t.exploits]
    exploits.sort(key=lambda x: (x[1]["iter"], x[0].trial_id))
    keys = sorted({k for t in trials for k in t.schedule})
    replaced = sum(1 for t in trials if t.exploits)
    summary = (f"{_plural(len(exploits), 'exploit')}: {replaced} of {_plural(len(trials), 'trial')} "
               f"continued from a better trial's checkpoint, with that trial's values perturbed"
               if exploits else "No exploit yet: every trial has trained its own weights with its own values")
    unknown = sorted({e["from"] for _, e, _ in exploits} - names)
    if unknown:
        summary += f" (donor{'s' if len(unknown) > 1 else ''} without a run: {', '.join(unknown)})"
    return Lineage(_lineage_chart(trials, exploits), _schedules_chart(trials, keys), keys,
                   [x for _, _, x in exploits], summary + ".")


def _exploit(trial: str, e: dict) -> Exploit:
    """One exploit in words: the donor's values, and those the trial went on with after explore."""
    donor, new, was = (e.get(k) if isinstance(e.get(k), dict) else {} for k in ("donor", "new", "was"))
    changes = [f"{k} {_short(donor[k])} → {_short(v)}" if donor.get(k) is not None else f"{k} {_short(v)}"
               for k, v in new.items()]
    at = e.get("at")
    text = (f"{trial} cloned {e['from']} at iteration {e['iter']}"
            + (f" (it was at iteration {at})" if isinstance(at, int) and at != e["iter"] else "")
            + (f": {', '.join(changes)}" if changes else ""))
    return Exploit(trial, str(e["from"]), str(e["iter"]), text,
                   ", ".join(f"{k} {_short(v)}" for k, v in was.items()))


def _short(v) -> str:
    """A scheduled value as a person reads it: 1.2e-4, 0.5, 32, convgru."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, float) and v and math.isfinite(v) and not 1e-3 <= abs(v) < 1e4:
        mantissa, exponent = f"{v:.1e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return _num(v)


def _colours(trials: list[Trial]) -> dict[str, str]:
    return {t.trial_id: PALETTE[i % len(PALETTE)] for i, t in enumerate(trials)}


def _lineage_chart(trials: list[Trial], exploits: list[tuple[Trial, dict, Exploit]]) -> Markup | None:
    """A lane per trial over the iterations it trained, and an arrow per exploit from the donor's
    lane to the trial's at the donor checkpoint's iteration: which weights each trial ends with."""
    import plotly.graph_objects as go
    ends = {t.trial_id: max([t.iters or 0] + [s for h in t.schedule.values() for s, _ in h]) for t in trials}
    if not any(ends.values()):
        return None
    colours, lanes = _colours(trials), [t.trial_id for t in trials]
    fig = go.Figure()
    for t in trials:
        fig.add_trace(go.Scatter(x=[0, ends[t.trial_id]], y=[t.trial_id] * 2, mode="lines", name=t.trial_id,
                                 line=dict(width=8, color=colours[t.trial_id]), opacity=0.6, showlegend=False,
                                 hovertemplate=f"{t.trial_id}: iterations 0–{ends[t.trial_id]}<extra></extra>"))
    if exploits:
        x, y, text, symbols = [], [], [], []
        for t, e, ex in exploits:
            hover = ex.text + (f"<br>its own values before: {ex.was}" if ex.was else "")
            x += [e["iter"], e["iter"], None]
            y += [ex.donor, t.trial_id, None]
            text += [hover, hover, ""]
            symbols += ["circle", "arrow", "circle"]
            if ex.donor not in lanes:
                lanes.append(ex.donor)
        fig.add_trace(go.Scatter(x=x, y=y, text=text, mode="lines+markers", name="exploit",
                                 hoverinfo="text", line=dict(color="#333", width=1.5),
                                 marker=dict(symbol=symbols, size=[7, 13, 0] * len(exploits),
                                             angleref="previous", color="#333"), showlegend=False))
    fig.update_layout(xaxis_title="iteration", yaxis_title=None, hovermode="closest",
                      yaxis=dict(type="category", categoryorder="array", categoryarray=lanes[::-1]))
    return _fig_html(fig, "lineage-chart", max(220, 90 + 36 * len(lanes)))


def _schedules_chart(trials: list[Trial], keys: list[str]) -> Markup | None:
    """One subplot per scheduled key, each trial its values over iterations as a step line (held
    from one report to the next); a log axis for learning rates and values spanning decades."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    if not keys:
        return None
    colours = _colours(trials)
    fig = make_subplots(rows=len(keys), cols=1, shared_xaxes=True, subplot_titles=keys,
                        vertical_spacing=min(0.12, 0.5 / len(keys)))
    for row, k in enumerate(keys, 1):
        for t in trials:
            if points := t.schedule.get(k):
                fig.add_trace(go.Scatter(x=[s for s, _ in points], y=[v for _, v in points], mode="lines+markers",
                                         line=dict(shape="hv", color=colours[t.trial_id]), marker=dict(size=4),
                                         name=t.trial_id, legendgroup=t.trial_id, showlegend=row == 1,
                                         hovertemplate=f"{t.trial_id}: {k} %{{y:.3g}} at iteration %{{x}}"
                                                       f"<extra></extra>"), row=row, col=1)
        values = [v for t in trials for _, v in t.schedule.get(k, [])]
        if values and min(values) > 0 and (k.startswith("lr") or max(values) > 10 * min(values)):
            fig.update_yaxes(type="log", row=row, col=1)
    fig.update_xaxes(title_text="iteration", row=len(keys), col=1)
    return _fig_html(fig, "schedules-chart", 80 + 240 * len(keys))


def _pareto(trials: list[Trial], goals: list[tuple[str, str]], runs_url: str | None) -> Pareto:
    """The front of the trials' latest values (`_mark_front`), the trials in their ranked order."""
    names = [n for n, _ in goals]
    valued = [t for t in trials if all(_finite(t.metrics.get(n)) for n in names)]
    front = [t for t in trials if t.pareto]
    note = (f"{len(front)} of {_plural(len(valued), 'trial')} with a value of every objective "
            f"{'is' if len(front) == 1 else 'are'} on the Pareto front: no other trial is at least as good "
            f"on {' and '.join(names)} and better on one.")
    if len(valued) < len(trials):
        note += f" {_plural(len(trials) - len(valued), 'trial')} without a value of every objective left out."
    labels = [_aim(n, m) for n, m in goals]
    return Pareto(labels, _pareto_chart(valued, goals, labels) if valued else None,
                  [(_ref(t, runs_url), [_num(t.metrics[n]) for n in names]) for t in front], note)


def _aim(name: str, mode: str) -> str:
    return f"{name} ({'higher' if mode == 'max' else 'lower'} is better)"


def _pareto_chart(trials: list[Trial], goals: list[tuple[str, str]], labels: list[str]) -> Markup:
    """Two objectives: a scatter, the front's trials large and joined in order, the others faint;
    three or more: a scatter matrix of every pair, marked the same way."""
    import plotly.graph_objects as go
    names = [n for n, _ in goals]

    def hover(t):
        return f"{t.trial_id}: " + ", ".join(f"{n} {_num(t.metrics[n])}" for n in names)

    groups = [("Pareto front", sorted((t for t in trials if t.pareto), key=lambda t: t.metrics[names[0]]),
               dict(size=14, color="#e0a800", line=dict(width=1, color="#333")), 1.0),
              ("dominated", [t for t in trials if not t.pareto], dict(size=8, color="#888"), 0.4)]
    fig = go.Figure()
    for name, group, marker, opacity in groups:
        if not group:
            continue
        text = [hover(t) for t in group]
        if len(goals) == 2:
            on_front = name == "Pareto front"      # its trials named beside their points
            fig.add_trace(go.Scatter(x=[t.metrics[names[0]] for t in group], y=[t.metrics[names[1]] for t in group],
                                     mode="lines+markers+text" if on_front else "markers", name=name,
                                     marker=marker, opacity=opacity, hovertext=text, hoverinfo="text",
                                     text=[t.trial_id for t in group] if on_front else None,
                                     textposition="top right", line=dict(color="#e0a800", width=2)))
        else:
            fig.add_trace(go.Splom(dimensions=[dict(label=lab, values=[t.metrics[n] for t in group])
                                               for n, lab in zip(names, labels)],
                                   name=name, marker=marker, opacity=opacity, text=text, hoverinfo="text",
                                   diagonal_visible=False, showupperhalf=False))
    if len(goals) == 2:
        fig.update_layout(xaxis_title=labels[0], yaxis_title=labels[1])
        return _fig_html(fig, "pareto-chart", 480)
    return _fig_html(fig, "pareto-chart", 200 * len(goals) + 100)


def _best_trial(c, best: Trial | None, cols: list[str], objectives: list[str], recorded: str | None,
                files: Path, tmp: Path, runs_url: str | None) -> BestTrial | None:
    """The best trial's params and latest metrics in their groups, and its samples, downloaded
    into `files`."""
    if best is None:
        return None
    _log(f"best trial {best.trial_id} ({objectives[0]} {_num(best.value)}), downloading its sample")
    samples, note = _best_samples(c, best, files, tmp)
    return BestTrial(_ref(best, runs_url), _num(best.value), best.status, _iters(best),
                     "" if recorded == best.trial_id else recorded or "",
                     [(k, best.params.get(k, "")) for k in cols],
                     _metric_groups(best.metrics, objectives), samples, note,
                     sorted(best.params.items()))


# --------------------------------------------------------------------------- rendering


@functools.cache
def _environment() -> jinja2.Environment:
    """Templates from the installed package (not the working folder), escaped unless marked safe;
    undefined names fail loudly instead of leaving a silent gap in the page."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("lmgan.sweep", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters["plural"] = _plural
    env.filters["shown_width"] = _shown_width
    return env


def render_page(page: SweepPage) -> str:
    """The page's HTML: no queries, so any SweepPage (a test's hand-built one too) renders."""
    return _environment().get_template(TEMPLATE).render(vars(page))


# --------------------------------------------------------------------------- the command


def write_report(experiment: str, out: Path | None, tracking_uri: str, sweep: str | None = None,
                 runs: Path | None = None) -> Path:
    """Write the HTML report of one sweep (the latest in `experiment` unless `sweep` names one)
    to `out` (default `<runs>/reports/<sweep>/report.html`) and its files into
    `<out stem>_files/`; returns the page's path."""
    if out is not None and Path(out).is_dir():
        raise LmganError(f"--out {out}: is a directory; give a file name such as report.html")
    _check_store(tracking_uri)
    from mlflow.exceptions import MlflowException
    c = tracking.client(tracking_uri)
    try:
        if out is None:      # named after the sweep, under the runs folder (git ignores it)
            parent = _sweep_run(c, _experiment(c, experiment), sweep)
            name = parent.data.tags.get(tracking.SWEEP) or parent.info.run_name
            out = (runs or runs_root()) / "reports" / name / "report.html"
        return _write(c, experiment, Path(out), tracking_uri, sweep)
    except MlflowException as e:
        raise LmganError(f"MLflow at {tracking_uri}: {first_line(e, 200)}") from None


def _write(c, experiment: str, out: Path, uri: str, sweep: str | None) -> Path:
    """Gather, then render, then replace `out` atomically: a failed query leaves the old page."""
    files = out.parent / f"{out.stem}_files"
    page = gather_page(c, experiment, uri, sweep, files)
    _plotly_js(files)
    with replacing(out) as tmp:
        tmp.write_text(render_page(page), encoding="utf-8")
    return out


def report_main(args) -> int:
    """`lmgan report --experiment NAME [--sweep SWEEP] [--out FILE] [--runs-dir DIR] [--tracking-uri URI]`."""
    runs = runs_root(getattr(args, "runs_dir", None))
    uri = getattr(args, "tracking_uri", None) or tracking.default_uri(runs)
    out = getattr(args, "out", None)
    path = write_report(args.experiment, Path(out) if out else None, uri, getattr(args, "sweep", None), runs)
    print(path)
    return 0
