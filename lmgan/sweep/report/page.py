"""What the page shows and how it is written: plain dataclasses of display-ready strings (a
`SweepPage`), the functions that make them from the trials and the sweep's `SweepOutcome`, the
Jinja2 rendering and the atomic write.

The template, `templates/report.html`, is loaded from this package (shipped as package data) with
autoescaping on: every string that came from MLflow is escaped by the template; only the plotly
snippets (charts.py, `Markup`) are inserted raw. `render_page` needs no store, so any SweepPage,
a test's hand-built one too, renders.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlparse, urlunparse

import jinja2
from markupsafe import Markup

from lmgan.atomic import replacing
from lmgan.errors import first_line
from lmgan.sweep import schema
from lmgan.sweep.outcome import SweepOutcome
from lmgan.sweep.report import charts, study
from lmgan.sweep.report.queries import Trial, log
from lmgan.sweep.schema import Exploit, Objectives
from lmgan.sweep.tracking import short    # the run names' formatter: one way to write a value

TEMPLATE = "report.html"      # in lmgan/sweep/report/templates/
VIDEO_WIDTH = 640             # CSS px the best trial's video is shown at, about (integer upscaling)
# A metric's group in the best trial's section, by its registry kind (lmgan.metrics.REGISTRY).
GROUPS = {"frame": "image", "set": "image", "sequence": "sync", "probe": "sync"}
GROUP_TITLES = {"image": "image quality", "sync": "does it listen", "other": "training"}
# What a companion of a metric (lmgan.training.artifacts.COMPANIONS) is, in the metric tables.
COMPANION_WHAT = {"_real": "{base} of the real video itself: what the generated one can reach",
                  "_silence": "{base} with the sound silenced instead of shifted"}


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
    counts: dict[str, int]           # trials per status, the four schema.STATUSES first
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
    judged: str = ""                 # the value it is ranked by (Table.judged's column)
    judged_at: str = ""              # the iteration of that value


@dataclass
class Table:
    """The trials table, best first."""
    params: list[tuple[str, str]]    # searched key and its range ("" when the space is unknown)
    metrics: list[str]               # metric column headers: name, direction, objective mark
    rows: list[Row]
    judged: str = ""                 # the header of the ranked-by column; "" for none (a trial
    #                                  judged by its last evaluation: that is its latest value)
    ranked_by: str = ""              # what the rows are ranked by, in words


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
    value: str                       # the value it is judged by
    status: str
    iters: str
    judged: str                      # how that value was judged, and where: "" when unknown
    params: list[tuple[str, str]]    # the searched params
    metrics: list[MetricGroup]       # its latest metrics: image quality, does it listen, training
    samples: dict[str, Sample]       # "mp4" (video), "png" (frame grid), "motion" (plot)
    samples_note: str                # what went wrong fetching them, "" if nothing
    config: list[tuple[str, str]]    # every param it ran with


@dataclass
class ExploitRow:
    """One PBT exploit in words: a trial dropped its own weights for a better trial's checkpoint
    and went on from there with the donor's values perturbed."""
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
    exploits: list[ExploitRow]       # in the order they happened
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


# --------------------------------------------------------------------------- formatting


def _decimals(v: float) -> int:
    if not v or not math.isfinite(v):
        return 4
    return min(6, max(0, 3 - math.floor(math.log10(abs(v)))))


def num(v) -> str:
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
    return f"{m:.{d}f}" + (f" ± {s:.{d}f}" if isinstance(s, (int, float)) and math.isfinite(s) else "")


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _metric_text(metrics: dict[str, float], name: str) -> str:
    """Frame metrics as mean ± std over the held-out windows, set metrics (and others) as one value."""
    from lmgan.metrics import REGISTRY
    spec, m = REGISTRY.get(name), metrics.get(name)
    return _mean_std(m, metrics.get(f"{name}_std")) if spec and spec.kind == "frame" else num(m)


def _arrow(name: str) -> str:
    from lmgan.metrics import REGISTRY
    spec = REGISTRY.get(name)
    return "" if spec is None else (" ↑" if spec.higher_is_better else " ↓")


def _metric_label(name: str, objectives: list[str]) -> str:
    """A metric column's header: which way is better, and whether it is an objective."""
    return name + _arrow(name) + (" (objective)" if name in objectives else "")


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


def metric_groups(metrics: dict[str, float], objectives: list[str]) -> list[MetricGroup]:
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
        groups[_metric_group(n)].rows.append((_metric_label(n, objectives), _metric_text(metrics, n),
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


def redact(uri: str) -> str:
    """The URI without its password: the page is made to be copied and shared."""
    p = urlparse(uri)
    if p.password:
        return uri.replace(f":{p.password}@", ":***@")
    return uri


def runs_url(uri: str, exp) -> str | None:
    """The MLflow UI's run-page prefix for a tracking server; None for a local store (no UI)."""
    p = urlparse(uri)
    if p.scheme not in ("http", "https"):
        return None
    host = p.netloc.rpartition("@")[2]        # no user:password in a shared page
    base = urlunparse((p.scheme, host, p.path, p.params, p.query, p.fragment))
    return f"{base.rstrip('/')}/#/experiments/{quote(exp.experiment_id)}/runs/"


def ref(t: Trial, url: str | None) -> TrialRef:
    return TrialRef(t.trial_id, t.run_id, url + quote(t.run_id) if url else None)


def aim(name: str, mode: str) -> str:
    return f"{name} ({'higher' if mode == 'max' else 'lower'} is better)"


def _judgement(objs: Objectives, whose: str) -> str:
    """How a trial's value is judged, in words (lmgan.sweep.outcome's rule)."""
    if not objs.judged_by_last:
        return f"{whose} best evaluation of {objs.objective}"
    why = "PBT: its final model is what its schedule made" if objs.scheduler == "pbt" else \
        "Optuna scores a multi-objective trial by its last report"
    return f"{whose} last evaluation of {objs.objective} ({why})"


# --------------------------------------------------------------------------- the sections


def counts(trials: list[Trial]) -> dict[str, int]:
    """Trials per status: the four usual ones always (0 says something too), then any other."""
    out = {s: 0 for s in schema.STATUSES}
    for t in trials:
        out[t.status] = out.get(t.status, 0) + 1
    return out


def head(exp, parent, uri: str, objs: Objectives, trial_counts: dict[str, int]) -> Head:
    """The title lines; the URI's password redacted, since the page is made to be passed around."""
    tags, params = parent.data.tags, parent.data.params
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(parent.info.start_time / 1000)) \
        if parent.info.start_time else "?"
    budget = [f"{k} {params[k]}" for k in schema.SWEEP_PARAMS if k in params]
    return Head(tags.get(schema.SWEEP) or parent.info.run_name, exp.name, objs.objective, objs.mode,
                tags.get(schema.VIDEO, "?"), trial_counts, budget, started, time.strftime("%Y-%m-%d %H:%M"),
                redact(uri), objectives=list(objs.goals) if objs.multi else [],
                scheduler=tags.get(schema.SCHEDULER, ""))


def versus(result: SweepOutcome, objs: Objectives) -> str:
    """The baseline trial (the preset's own values) against the best: what the search gained, as
    `outcome.decide` worked it out; in a multi-objective sweep, whether it is on the front."""
    base = result.baseline
    if base is None or base.value is None:
        return ""
    text = f"baseline {base.trial} (the preset's own values): "
    if objs.multi:
        scores = ", ".join(f"{n} {num(base.scores.get(n))}" for n, _ in objs.goals if base.scores.get(n) is not None)
        return text + f"{scores}; {'on' if base.pareto else 'not on'} the Pareto front"
    text += f"{objs.objective} {num(base.value)}"
    if result.gain is None:
        return f"{text}; no trial beat it"
    return f"{text}; the best trial beat it by {num(result.gain)}"


def columns(space, trials: list[Trial]) -> list[str]:
    """The searched keys: the space's, else (no readable space) the trials' lmgan.searched tags."""
    cols = list(space) if space else []
    if not cols:
        for t in trials:
            cols += [k for k in t.searched if k not in cols]
    return cols


def table(trials: list[Trial], cols: list[str], space, objs: Objectives, best: Trial | None,
          url: str | None) -> Table:
    """The trials table, in their ranked order: searched params, then the registry's metrics that
    some trial logged (in registry order); each objective always has a column, even before any
    trial logged it. A sweep that judges a trial by its best evaluation adds that value's column:
    the rows are ranked by it, and it is not the latest."""
    from lmgan.metrics import REGISTRY
    marked = [n for n, _ in objs.goals]
    present = set().union(*(t.metrics for t in trials)) if trials else set()
    metrics = [n for n in REGISTRY if n in present]
    metrics = [n for n in marked if n in present and n not in metrics] + metrics
    labels = [_metric_label(n, marked) for n in metrics]
    for n in marked:
        if n not in metrics:
            metrics.append(n)
            labels.append(f"{n} (objective)")
    params = [(k, space[k].describe() if space and k in space else "") for k in cols]
    by_best = not objs.judged_by_last
    rows = [Row(ref(t, url), t is best,
                [_param_cell(t.params.get(k), space.get(k) if space else None) for k in cols]
                + [_metric_text(t.metrics, n) for n in metrics], _iters(t), t.status, t.baseline, t.pareto,
                num(t.value) if by_best else "",
                "" if not by_best or t.outcome.at is None else str(t.outcome.at))
            for t in trials]
    ranked_by = _judgement(objs, "each trial's") + ", as the sweep's driver judges it"
    return Table(params, labels, rows, f"best {objs.objective}{_arrow(objs.objective)}" if by_best else "", ranked_by)


def importance_warning(n: int) -> str:
    """A plain warning when the importances rest on fewer than IMPORTANCE_MIN_TRIALS trials."""
    if n >= study.IMPORTANCE_MIN_TRIALS:
        return ""
    return (f"Importances from {plural(n, 'trial')} are noise-level; run more trials before reading "
            f"them (at least {study.IMPORTANCE_MIN_TRIALS} finished or stopped trials with a "
            f"value of the objective).")


def importance(s, dists: dict, skipped: int, objective: str) -> Importance:
    """Optuna's importances as a bar chart and a table, or why there are none."""
    if s is None:
        return Importance("No searched parameters are known for this sweep.")
    imp, why, evaluator = study.importances(s, dists)
    if imp is None:
        return Importance(why)
    n, order = len(s.trials), sorted(imp, key=imp.get)
    return Importance(chart=charts.importance_chart(imp, objective),
                      values=[(k, f"{imp[k]:.3f}") for k in reversed(order)],
                      evaluator=evaluator, trials=n, skipped=skipped, warning=importance_warning(n))


def exploit_row(trial: str, e: Exploit) -> ExploitRow:
    """One exploit in words: the donor's values, and those the trial went on with after explore."""
    changes = [f"{k} {short(e.donor[k])} → {short(v)}" if e.donor.get(k) is not None else f"{k} {short(v)}"
               for k, v in e.new.items()]
    text = (f"{trial} cloned {e.from_trial} at iteration {e.iter}"
            + (f" (it was at iteration {e.at})" if isinstance(e.at, int) and e.at != e.iter else "")
            + (f": {', '.join(changes)}" if changes else ""))
    return ExploitRow(trial, e.from_trial, str(e.iter), text, ", ".join(f"{k} {short(v)}" for k, v in e.was.items()))


def lineage(trials: list[Trial]) -> Lineage:
    """A PBT sweep's lineage and schedules, the trials in start order (each keeps its colour)."""
    names = {t.trial_id for t in trials}
    exploits = sorted(((t.trial_id, e) for t in trials for e in t.exploits), key=lambda x: (x[1].iter, x[0]))
    rows = [exploit_row(trial, e) for trial, e in exploits]
    keys = sorted({k for t in trials for k in t.schedule})
    replaced = sum(1 for t in trials if t.exploits)
    summary = (f"{plural(len(exploits), 'exploit')}: {replaced} of {plural(len(trials), 'trial')} "
               f"continued from a better trial's checkpoint, with that trial's values perturbed"
               if exploits else "No exploit yet: every trial has trained its own weights with its own values")
    unknown = sorted({e.from_trial for _, e in exploits} - names)
    if unknown:
        summary += f" (donor{'s' if len(unknown) > 1 else ''} without a run: {', '.join(unknown)})"
    hovers = [(trial, e, row.text + (f"<br>its own values before: {row.was}" if row.was else ""))
              for (trial, e), row in zip(exploits, rows)]
    return Lineage(charts.lineage_chart(trials, hovers), charts.schedules_chart(trials, keys), keys, rows,
                   summary + ".")


def pareto(trials: list[Trial], goals: list[tuple[str, str]], url: str | None) -> Pareto:
    """The front `outcome.decide` marked, its trials in their ranked order, and every trial with a
    score of each objective drawn."""
    names = [n for n, _ in goals]
    valued = [t for t in trials if all(t.outcome.scores.get(n) is not None for n in names)]
    front = [t for t in trials if t.pareto]
    note = (f"{len(front)} of {plural(len(valued), 'trial')} with a value of every objective "
            f"{'is' if len(front) == 1 else 'are'} on the Pareto front: no other trial is at least as good "
            f"on {' and '.join(names)} and better on one.")
    if len(valued) < len(trials):
        note += f" {plural(len(trials) - len(valued), 'trial')} without a value of every objective left out."
    labels = [aim(n, m) for n, m in goals]
    hover = {t.trial_id: f"{t.trial_id}: " + ", ".join(f"{n} {num(t.outcome.scores[n])}" for n in names)
             for t in valued}
    return Pareto(labels, charts.pareto_chart(valued, names, labels, hover) if valued else None,
                  [(ref(t, url), [num(t.outcome.scores[n]) for n in names]) for t in front], note)


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
        log(f"could not read the size of {path.name} ({first_line(e, 120)})")
        return {}


def samples(found: dict[str, tuple[Path, int]], files: Path) -> dict[str, Sample]:
    """The sample files copied into `files` as the page refers to them; the video's size and sound."""
    return {kind: Sample(f"{quote(files.name)}/{quote(path.name)}", it,
                         **(_video_facts(path) if kind == "mp4" else {}))
            for kind, (path, it) in found.items()}


def best_trial(best: Trial, cols: list[str], objs: Objectives, found: dict[str, Sample], note: str,
               url: str | None) -> BestTrial:
    """The best trial's params, the value it is judged by and how, its latest metrics in their
    groups and its samples."""
    at = best.outcome.at
    judged = (f"Judged by {_judgement(objs, 'its')}" + (f", at iteration {at}" if at is not None else "")
              + (", as the sweep's driver recorded it" if best.recorded else "")
              + "; the metrics below are its latest.")
    return BestTrial(ref(best, url), num(best.value), best.status, _iters(best), judged,
                     [(k, best.params.get(k, "")) for k in cols],
                     metric_groups(best.metrics, [n for n, _ in objs.goals]), found, note,
                     sorted(best.params.items()))


# --------------------------------------------------------------------------- rendering and writing


def shown_width(sample: Sample) -> int:
    """CSS px to show a video at: its width times the largest whole factor that keeps it within
    about VIDEO_WIDTH (whole factors keep `image-rendering: pixelated` crisp); VIDEO_WIDTH when
    the size is unknown, its own width when it is already as wide."""
    if not sample.width or sample.width <= 0:
        return VIDEO_WIDTH
    return sample.width * max(1, VIDEO_WIDTH // sample.width)


@functools.cache
def environment() -> jinja2.Environment:
    """Templates from the installed package (not the working folder), escaped unless marked safe;
    undefined names fail loudly instead of leaving a silent gap in the page."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("lmgan.sweep.report", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters["plural"] = plural
    env.filters["shown_width"] = shown_width
    return env


def render_page(page: SweepPage) -> str:
    """The page's HTML: no queries, so any SweepPage (a test's hand-built one too) renders."""
    return environment().get_template(TEMPLATE).render(vars(page))


def _plotly_js(files: Path) -> None:
    """plotly.js beside the page, once (the page works offline, copied anywhere with its folder)."""
    from plotly.offline import get_plotlyjs
    js = get_plotlyjs().encode("utf-8")
    dst = files / "plotly.min.js"
    if dst.is_file() and dst.stat().st_size == len(js):
        return
    with replacing(dst) as tmp:
        tmp.write_bytes(js)


def write_page(page: SweepPage, out: Path, files: Path) -> Path:
    """Render, then replace `out` atomically (a failure leaves the old page), plotly.js in `files`."""
    _plotly_js(files)
    html = render_page(page)
    with replacing(out) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return out
