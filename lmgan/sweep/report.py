"""`lmgan report`: one HTML page about one sweep, read back from MLflow (layout: tracking.py).

The page holds the trials as a Table-1-style table (searched params, held-out metrics as
mean ± std, iterations, status; best first), Optuna's parameter importances for the objective,
a parallel-coordinate plot, the objective over iterations of every trial and the best trial's
section: its sample video (generated | real, with sound) scaled up with its halves labelled, and
its metrics in two groups, "image quality" (frame and set metrics, beside the frame grid) and
"does it listen" (sequence and probe metrics, beside the motion-over-time plot).

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


@dataclass
class Row:
    """One trial in the table."""
    trial: TrialRef
    best: bool
    cells: list[str]                 # its searched params, then its metrics (Table.metrics' order)
    iters: str
    status: str
    baseline: bool = False


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
class SweepPage:
    """Everything the page shows: what `gather_page` reads from MLflow, `render_page` lays out."""
    head: Head
    files: str                       # the files folder as the page refers to it (URL-quoted)
    table: Table
    importance: Importance
    parallel: Markup | None          # the parallel-coordinate chart, None when there is none
    history: Markup | None           # the objective over iterations, None when nothing is logged
    best: BestTrial | None           # None when no trial has an objective value


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
            history = sorted((m.step, m.value) for m in c.get_metric_history(r.info.run_id, objective))
            steps += [s for s, _ in history]
        iters = int(metrics["iter"]) if _finite(metrics.get("iter")) else (max(steps) if steps else None)
        value = metrics.get(objective)
        out.append(Trial(r.info.run_id, r.data.tags.get(tracking.TRIAL_ID) or r.info.run_name or r.info.run_id,
                         r.data.tags.get(tracking.STATUS, "unknown"), dict(r.data.params), metrics,
                         iters, value if _finite(value) else None, history,
                         [k for k in r.data.tags.get("lmgan.searched", "").split(",") if k],
                         r.data.tags.get("lmgan.baseline") == "true"))
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


def _metric_label(name: str, objective: str) -> str:
    """A metric column's header: which way is better, and whether it is the objective."""
    from lmgan.metrics import REGISTRY
    spec = REGISTRY.get(name)
    arrow = "" if spec is None else (" ↑" if spec.higher_is_better else " ↓")
    return name + arrow + (" (objective)" if name == objective else "")


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


def _metric_groups(metrics: dict[str, float], objective: str) -> list[MetricGroup]:
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
    runs_url = _runs_url(uri, exp)
    with tempfile.TemporaryDirectory(prefix="lmgan-report-") as tmpdir:
        tmp = Path(tmpdir)
        trials = _trials(c, exp, parent, objective)
        head = _head(exp, parent, uri, objective, mode, _counts(trials))
        summary = ", ".join(f"{n} {s}" for s, n in head.counts.items() if n)
        _log(f"{exp.name} / {head.sweep}: {_plural(len(trials), 'trial')} ({summary}), "
             f"objective {objective} ({mode})")
        space = _space(c, parent, tmp)
        trials, best = _ranked(trials, mode == "max")
        head.versus = _versus(next((t for t in trials if t.baseline), None), best, objective, mode)
        cols = _columns(space, trials)
        _log("computing parameter importances")
        dists = _distributions(space, trials, cols)
        study, skipped = _study(trials, dists, mode == "max") if dists else (None, 0)
        return SweepPage(
            head=head, files=quote(files.name),
            table=_table(trials, cols, space, objective, best, runs_url),
            importance=_importance(study, dists, skipped, objective),
            parallel=_parallel_chart(study, objective),
            history=_history_chart(trials, best, objective),
            best=_best_trial(c, best, cols, objective, parent.data.tags.get("lmgan.best_trial"),
                             files, tmp, runs_url))


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
    from lmgan.metrics import REGISTRY
    tags = parent.data.tags
    objective = tags.get("lmgan.objective") or parent.data.params.get("objective") or "ssim"
    mode = tags.get("lmgan.mode")
    if mode not in ("min", "max"):
        mode = "min" if objective in REGISTRY and not REGISTRY[objective].higher_is_better else "max"
    return objective, mode


def _counts(trials: list[Trial]) -> dict[str, int]:
    """Trials per status: the four usual ones always (0 says something too), then any other."""
    counts = {s: 0 for s in STATUSES}
    for t in trials:
        counts[t.status] = counts.get(t.status, 0) + 1
    return counts


def _head(exp, parent, uri: str, objective: str, mode: str, counts: dict[str, int]) -> Head:
    """The title lines; the URI's password redacted, since the page is made to be passed around."""
    tags, params = parent.data.tags, parent.data.params
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(parent.info.start_time / 1000)) \
        if parent.info.start_time else "?"
    budget = [f"{k} {params[k]}" for k in SWEEP_PARAMS if k in params]
    return Head(tags.get(tracking.SWEEP) or parent.info.run_name, exp.name, objective, mode,
                tags.get("lmgan.video", "?"), counts, budget, started, time.strftime("%Y-%m-%d %H:%M"),
                _redact(uri))


def _ranked(trials: list[Trial], maximize: bool) -> tuple[list[Trial], Trial | None]:
    """The trials best first by the objective, those without a value last in start order; the best."""
    ranked = sorted((t for t in trials if t.value is not None),
                    key=lambda t: -t.value if maximize else t.value)
    return ranked + [t for t in trials if t.value is None], (ranked[0] if ranked else None)


def _columns(space, trials: list[Trial]) -> list[str]:
    """The searched keys: the space's, else (no readable space) the trials' lmgan.searched tags."""
    cols = list(space) if space else []
    if not cols:
        for t in trials:
            cols += [k for k in t.searched if k not in cols]
    return cols


def _table(trials: list[Trial], cols: list[str], space, objective: str, best: Trial | None,
           runs_url: str | None) -> Table:
    """The trials table: searched params, then the registry's metrics that some trial logged (in
    registry order); the objective always has a column, even before any trial logged it."""
    from lmgan.metrics import REGISTRY
    present = set().union(*(t.metrics for t in trials)) if trials else set()
    metrics = [n for n in REGISTRY if n in present]
    if objective in present and objective not in metrics:
        metrics.insert(0, objective)
    labels = [_metric_label(n, objective) for n in metrics]
    if objective not in metrics:
        metrics.append(objective)
        labels.append(f"{objective} (objective)")
    params = [(k, space[k].describe() if space and k in space else "") for k in cols]
    rows = [Row(_ref(t, runs_url), t is best,
                [_param_cell(t.params.get(k), space.get(k) if space else None) for k in cols]
                + [_metric_text(t.metrics, n) for n in metrics], _iters(t), t.status, t.baseline)
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


def _best_trial(c, best: Trial | None, cols: list[str], objective: str, recorded: str | None,
                files: Path, tmp: Path, runs_url: str | None) -> BestTrial | None:
    """The best trial's params and latest metrics in their groups, and its samples, downloaded
    into `files`."""
    if best is None:
        return None
    _log(f"best trial {best.trial_id} ({objective} {_num(best.value)}), downloading its sample")
    samples, note = _best_samples(c, best, files, tmp)
    return BestTrial(_ref(best, runs_url), _num(best.value), best.status, _iters(best),
                     "" if recorded == best.trial_id else recorded or "",
                     [(k, best.params.get(k, "")) for k in cols],
                     _metric_groups(best.metrics, objective), samples, note,
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
