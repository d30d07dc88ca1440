"""`lmgan report`: one HTML page about one sweep, read back from MLflow (layout: tracking.py).

The page holds the trials as a Table-1-style table (searched params, held-out metrics as
mean ± std, iterations, status; best first), Optuna's parameter importances for the objective,
a parallel-coordinate plot, the objective over iterations of every trial and the best trial's
sample video (generated | real, with sound) and frame grid.

Offline by design: plotly.js is written once into the sibling folder `<out stem>_files/`, beside
the best trial's sample files, and the page refers to all of them relatively, so the page and
its folder can be copied anywhere together. Every string that comes from MLflow is escaped.
"""

from __future__ import annotations

import html
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

from lmgan.atomic import replacing
from lmgan.errors import LmganError, first_line
from lmgan.sweep import tracking

STATUSES = ("finished", "stopped", "errored", "running")
SAMPLE_RE = re.compile(r"iter_(\d+)\.(mp4|png)$")
SWEEP_PARAMS = ("trials", "max_iters", "grace_iters", "eval_every")


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


def _log(msg: str) -> None:
    print(f"report: {msg}", file=sys.stderr, flush=True)


def _e(s) -> str:
    return html.escape(str(s), quote=True)


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


def _all_runs(c, experiment_id: str, flt: str, order_by: list[str]) -> list:
    runs, token = [], None
    while True:
        page = c.search_runs([experiment_id], filter_string=flt, max_results=1000,
                             order_by=order_by, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


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
    runs = _all_runs(c, exp.experiment_id, f"tags.`{tracking.ROLE}` = 'sweep'",
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
    flt = (f"tags.`{tracking.PARENT}` = '{parent.info.run_id}' "
           f"and tags.`{tracking.ROLE}` = 'trial'")
    out = []
    for r in _all_runs(c, exp.experiment_id, flt, ["attributes.start_time ASC"]):
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
                         [k for k in r.data.tags.get("lmgan.searched", "").split(",") if k]))
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


def _param_cell(s: str | None, p) -> str:
    if s is None:
        return ""
    if p is not None and p.kind in ("loguniform", "uniform"):
        try:
            return f"{float(s):.3g}"
        except ValueError:
            pass
    return s


def _fig_html(fig, div_id: str, height: int) -> str:
    fig.update_layout(height=height, margin=dict(l=60, r=30, t=40, b=50), template="plotly_white")
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       default_height=f"{height}px", config={"displaylogo": False})


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


def _best_samples(c, trial: Trial, files: Path, tmp: Path) -> tuple[dict, str]:
    """Copy the best trial's latest samples/iter_*.mp4, its frame grid and its motion plot into
    `files`: ({"mp4"|"png"|"motion": (file name, iteration)}, note)."""
    try:
        infos = [f for f in c.list_artifacts(trial.run_id, "samples") if not f.is_dir]
    except Exception as e:
        return {}, f"its samples could not be listed ({first_line(e, 160)})"
    latest = {}
    for f in infos:
        m = SAMPLE_RE.search(f.path)
        if m and int(m.group(1)) >= latest.get(m.group(2), (None, -1))[1]:
            latest[m.group(2)] = (f.path, int(m.group(1)))
    if "mp4" in latest:   # the frame grid of the video's iteration when there is one
        grid = latest["mp4"][0][:-4] + ".png"
        if grid in {f.path for f in infos}:
            latest["png"] = (grid, latest["mp4"][1])
        motion = latest["mp4"][0][:-4] + "-motion.png"
        if motion in {f.path for f in infos}:
            latest["motion"] = (motion, latest["mp4"][1])
    if not latest:
        return {}, "it logged no samples/iter_*.mp4 or .png yet"
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", trial.trial_id)[:80] or "best"
    out, notes = {}, []
    for kind, (path, it) in latest.items():
        try:
            local = Path(c.download_artifacts(trial.run_id, path, str(tmp)))
            name = f"best_{safe}_{Path(path).name}"
            _copy(local, files / name)
            out[kind] = (name, it)
        except Exception as e:
            notes.append(f"{path} could not be downloaded ({first_line(e, 160)})")
    return out, "; ".join(notes)


# --------------------------------------------------------------------------- the page


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1400px;
  padding:0 1.5em;color:#222;line-height:1.4}
h1{margin-bottom:.2em} h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.meta{color:#555} .meta span{margin-right:1.5em} .note{color:#666;font-style:italic}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:right;white-space:nowrap}
th{background:#f4f4f4} td.id,th.id,td.st{text-align:left}
tr.best td{background:#fff4c2;font-weight:600}
.badge{background:#e0a800;color:#fff;border-radius:3px;padding:0 .35em;font-size:.8em;margin-left:.4em}
.st-finished{color:#1a7f37} .st-stopped{color:#9a6700} .st-errored{color:#cf222e} .st-running{color:#0969da}
.scroll{overflow-x:auto} .media{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
.media figure{margin:0} video,img.grid{max-width:100%;border:1px solid #ccc}
details{margin:.5em 0}
"""


def _table(trials, cols, space, metric_cols, objective, best, link) -> str:
    from lmgan.metrics import REGISTRY
    head = ['<th>#</th>', '<th class="id">trial</th>']
    head += [f'<th title="searched: {_e(space[k].describe()) if space and k in space else ""}">{_e(k)}</th>'
             for k in cols]
    for name in metric_cols:
        spec = REGISTRY.get(name)
        arrow = "" if spec is None else (" ↑" if spec.higher_is_better else " ↓")
        mark = " (objective)" if name == objective else ""
        head.append(f"<th>{_e(name)}{arrow}{_e(mark)}</th>")
    if objective not in metric_cols:
        head.append(f"<th>{_e(objective)} (objective)</th>")
    head += ["<th>iterations</th>", '<th class="id">status</th>']
    rows = []
    for i, t in enumerate(trials, 1):
        is_best = best is not None and t.run_id == best.run_id
        cells = [f"<td>{i}</td>",
                 f'<td class="id">{link(t)}{"<span class=badge>best</span>" if is_best else ""}</td>']
        cells += [f"<td>{_e(_param_cell(t.params.get(k), space.get(k) if space else None))}</td>" for k in cols]
        for name in metric_cols:
            spec = REGISTRY.get(name)
            m = t.metrics.get(name)
            text = _mean_std(m, t.metrics.get(f"{name}_std")) if spec and spec.kind == "frame" else _num(m)
            cells.append(f"<td>{_e(text)}</td>")
        if objective not in metric_cols:
            cells.append(f"<td>{_e(_num(t.metrics.get(objective)))}</td>")
        cells += [f"<td>{'' if t.iters is None else t.iters}</td>",
                  f'<td class="st st-{_e(t.status)}">{_e(t.status)}</td>']
        cls = ' class="best" id="best-row"' if is_best else ""
        rows.append(f'<tr{cls} data-run-id="{_e(t.run_id)}">{"".join(cells)}</tr>')
    return (f'<div class="scroll"><table class="trials"><thead><tr>{"".join(head)}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def write_report(experiment: str, out: Path, tracking_uri: str, sweep: str | None = None) -> Path:
    """Write the HTML report of one sweep (the latest in `experiment` unless `sweep` names one)
    to `out` and its files into `<out stem>_files/`; returns `out`."""
    out = Path(out)
    if out.is_dir():
        raise LmganError(f"--out {out}: is a directory; give a file name such as report.html")
    _check_store(tracking_uri)
    from mlflow.exceptions import MlflowException
    c = tracking.client(tracking_uri)
    try:
        return _write(c, experiment, out, tracking_uri, sweep)
    except MlflowException as e:
        raise LmganError(f"MLflow at {tracking_uri}: {first_line(e, 200)}") from None


def _write(c, experiment: str, out: Path, uri: str, sweep: str | None) -> Path:
    from lmgan.metrics import REGISTRY

    exp = _experiment(c, experiment)
    parent = _sweep_run(c, exp, sweep)
    ptags = parent.data.tags
    sweep_name = ptags.get(tracking.SWEEP) or parent.info.run_name
    objective = ptags.get("lmgan.objective") or parent.data.params.get("objective") or "ssim"
    mode = ptags.get("lmgan.mode")
    if mode not in ("min", "max"):
        mode = "min" if objective in REGISTRY and not REGISTRY[objective].higher_is_better else "max"
    maximize = mode == "max"
    files = out.parent / f"{out.stem}_files"
    files.mkdir(parents=True, exist_ok=True)
    link = lambda t: _link(t, uri, exp)  # noqa: E731

    with tempfile.TemporaryDirectory(prefix="lmgan-report-") as tmpdir:
        tmp = Path(tmpdir)
        trials = _trials(c, exp, parent, objective)
        counts = {s: sum(t.status == s for t in trials) for s in STATUSES}
        for t in trials:
            if t.status not in STATUSES:
                counts[t.status] = counts.get(t.status, 0) + 1
        _log(f"{exp.name} / {sweep_name}: {_plural(len(trials), 'trial')} ("
             + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + f"), objective {objective} ({mode})")
        space = _space(c, parent, tmp)

        # Rank by the objective (best first); trials without a value last, in start order.
        ranked = sorted((t for t in trials if t.value is not None),
                        key=lambda t: -t.value if maximize else t.value)
        trials = ranked + [t for t in trials if t.value is None]
        best = ranked[0] if ranked else None

        cols = list(space) if space else []
        if not cols:   # no readable space: the trials' lmgan.searched tags
            for t in trials:
                cols += [k for k in t.searched if k not in cols]
        present = set().union(*(t.metrics for t in trials)) if trials else set()
        metric_cols = [n for n in REGISTRY if n in present]
        if objective in present and objective not in metric_cols:
            metric_cols.insert(0, objective)

        _log("computing parameter importances")
        dists = _distributions(space, trials, cols)
        study, skipped = _study(trials, dists, maximize) if dists else (None, 0)
        sections = [_importance_section(study, dists, skipped, objective),
                    _parallel_section(study, objective),
                    _history_section(trials, best, objective)]
        if best is not None:
            _log(f"best trial {best.trial_id} ({objective} {_num(best.value)}), downloading its sample")
        sections.append(_best_section(c, best, cols, objective, mode, ptags.get("lmgan.best_trial"),
                                      files, tmp, link))

    _plotly_js(files)
    table = _table(trials, cols, space, metric_cols, objective, best, link)
    pp = parent.data.params
    budget = ", ".join(f"{k} {_e(pp[k])}" for k in SWEEP_PARAMS if k in pp)
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(parent.info.start_time / 1000)) \
        if parent.info.start_time else "?"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(f"lmgan sweep report: {sweep_name}")}</title>
<style>{CSS}</style>
<script src="{quote(files.name)}/plotly.min.js"></script>
</head><body>
<h1>Sweep {_e(sweep_name)}</h1>
<p class="meta"><span>experiment <b>{_e(exp.name)}</b></span>
<span>objective <b>{_e(objective)}</b> ({'maximise' if maximize else 'minimise'})</span>
<span>video {_e(ptags.get('lmgan.video', '?'))}</span></p>
<p class="meta"><span id="trial-counts">{_plural(len(trials), 'trial')}: \
{_e(', '.join(f'{n} {s}' for s, n in counts.items()))}</span>
{f'<span>{budget}</span>' if budget else ''}</p>
<p class="meta"><span>sweep started {_e(started)}</span>
<span>report written {_e(time.strftime('%Y-%m-%d %H:%M'))}</span>
<span>tracking {_e(_redact(uri))}</span></p>
<section id="trials"><h2>Trials</h2>
{table if trials else '<p class="note">This sweep has no trial runs yet.</p>'}
<p class="note">Held-out metrics are each trial's latest evaluation: frame metrics as mean ± std over
the held-out windows, set metrics as one value. Ranked by {_e(objective)}, best first; trials without
a value come last.</p></section>
{''.join(sections)}
</body></html>
"""
    with replacing(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out


def _importance_section(study, dists: dict, skipped: int, objective: str) -> str:
    import plotly.graph_objects as go
    h = [f'<section id="importance"><h2>Parameter importances for {_e(objective)}</h2>']
    if study is None:
        imp, why, evaluator = None, "No searched parameters are known for this sweep.", ""
    else:
        imp, why, evaluator = _importances(study, dists)
    if imp is None:
        h.append(f'<p class="note">Not shown: {_e(why)}</p>')
    else:
        order = sorted(imp, key=imp.get)
        fig = go.Figure(go.Bar(x=[imp[k] for k in order], y=order, orientation="h", marker_color="#4c78a8",
                               hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
        fig.update_layout(xaxis_title=f"importance for {objective}", yaxis_title=None)
        h.append(_fig_html(fig, "importance-chart", max(220, 60 + 40 * len(order))))
        h.append('<table class="importance"><thead><tr><th class="id">parameter</th><th>importance</th>'
                 '</tr></thead><tbody>'
                 + "".join(f'<tr><td class="id">{_e(k)}</td><td>{imp[k]:.3f}</td></tr>' for k in reversed(order))
                 + "</tbody></table>")
        h.append(f'<p class="note">{_e(evaluator)} over {len(study.trials)} finished or stopped trials, '
                 f'normalised to sum to 1'
                 + (f"; {skipped} trials left out (params outside the space)" if skipped else "") + ".</p>")
    h.append("</section>")
    return "".join(h)


def _parallel_section(study, objective: str) -> str:
    import optuna
    h = [f'<section id="parallel"><h2>Parameters vs {_e(objective)}</h2>']
    if study is not None and study.trials:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig = optuna.visualization.plot_parallel_coordinate(study, target_name=objective)
        fig.update_layout(title=None)
        h.append(_fig_html(fig, "parallel-coordinates", 460))
    else:
        h.append('<p class="note">Not shown: no finished or stopped trial with an objective value and '
                 'known params yet.</p>')
    h.append("</section>")
    return "".join(h)


def _history_section(trials: list[Trial], best: Trial | None, objective: str) -> str:
    import plotly.graph_objects as go
    h = [f'<section id="history"><h2>{_e(objective)} over iterations</h2>']
    if any(t.history for t in trials):
        fig = go.Figure()
        for t in trials:
            if t.history:
                fig.add_trace(go.Scatter(x=[s for s, _ in t.history], y=[v for _, v in t.history],
                                         mode="lines+markers", name=t.trial_id,
                                         line=dict(width=4 if t is best else 1.5)))
        fig.update_layout(xaxis_title="iteration", yaxis_title=objective)
        h.append(_fig_html(fig, "objective-history", 460))
    else:
        h.append(f'<p class="note">No trial has logged {_e(objective)} yet.</p>')
    h.append("</section>")
    return "".join(h)


def _best_section(c, best: Trial | None, cols: list[str], objective: str, mode: str,
                  recorded: str | None, files: Path, tmp: Path, link) -> str:
    from lmgan.metrics import REGISTRY
    h = ['<section id="best"><h2>Best trial</h2>']
    if best is None:
        h.append(f'<p class="note">No trial has an objective value ({_e(objective)}) yet.</p></section>')
        return "".join(h)
    samples, note = _best_samples(c, best, files, tmp)
    h.append(f'<p><b>{link(best)}</b>: {_e(objective)} = {_e(_num(best.value))} ({_e(mode)}), '
             f'status {_e(best.status)}, {"" if best.iters is None else best.iters} iterations.</p>')
    if recorded and recorded != best.trial_id:
        h.append(f'<p class="note">The sweep driver recorded {_e(recorded)} as its best trial; this page '
                 f'ranks by the latest {_e(objective)}.</p>')
    h.append('<div class="media"><table class="kv"><thead><tr><th class="id">searched parameter</th>'
             '<th>value</th></tr></thead><tbody>'
             + "".join(f'<tr><td class="id">{_e(k)}</td><td>{_e(best.params.get(k, ""))}</td></tr>' for k in cols)
             + "</tbody></table>")
    rows = []
    for name in sorted(best.metrics, key=lambda n: (n not in REGISTRY, n)):
        if name.endswith("_std") and name[:-4] in REGISTRY:
            continue
        spec, v = REGISTRY.get(name), best.metrics[name]
        text = _mean_std(v, best.metrics.get(f"{name}_std")) if spec and spec.kind == "frame" else _num(v)
        rows.append(f'<tr><td class="id">{_e(name)}</td><td>{_e(text)}</td></tr>')
    h.append('<table class="kv"><thead><tr><th class="id">metric (latest)</th><th>value</th></tr></thead>'
             '<tbody>' + "".join(rows) + "</tbody></table></div>")
    ref = quote(files.name)
    h.append('<div class="media">')
    if "mp4" in samples:
        name, it = samples["mp4"]
        h.append(f'<figure><video controls preload="metadata" src="{ref}/{quote(name)}"></video>'
                 f'<figcaption>iteration {it}: generated | real, with sound</figcaption></figure>')
    if "png" in samples:
        name, it = samples["png"]
        h.append(f'<figure><img class="grid" alt="frame grid" src="{ref}/{quote(name)}">'
                 f'<figcaption>frame grid, iteration {it}</figcaption></figure>')
    if "motion" in samples:
        name, it = samples["motion"]
        h.append(f'<figure><img class="grid" alt="motion over held-out time" src="{ref}/{quote(name)}">'
                 f'<figcaption>does it move when the real video moves? iteration {it}</figcaption></figure>')
    h.append("</div>")
    if not samples or note:
        h.append(f'<p class="note">Samples: {_e(note or "none")}.</p>')
    config = "".join(f'<tr><td class="id">{_e(k)}</td><td class="id">{_e(v)}</td></tr>'
                     for k, v in sorted(best.params.items()))
    h.append(f'<details><summary>full config of {_e(best.trial_id)}</summary>'
             f'<table class="kv"><tbody>{config}</tbody></table></details></section>')
    return "".join(h)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _redact(uri: str) -> str:
    p = urlparse(uri)
    if p.password:
        return uri.replace(f":{p.password}@", ":***@")
    return uri


def _link(t: Trial, uri: str, exp) -> str:
    if urlparse(uri).scheme in ("http", "https"):
        href = f"{uri.rstrip('/')}/#/experiments/{quote(exp.experiment_id)}/runs/{quote(t.run_id)}"
        return f'<a href="{_e(href)}">{_e(t.trial_id)}</a>'
    return f'<span title="MLflow run {_e(t.run_id)}">{_e(t.trial_id)}</span>'


def report_main(args) -> int:
    """`lmgan report --experiment NAME [--sweep SWEEP] [--out report.html] [--tracking-uri URI]`."""
    uri = getattr(args, "tracking_uri", None) or tracking.default_uri(Path("runs"))
    out = Path(getattr(args, "out", None) or "report.html")
    path = write_report(args.experiment, out, uri, getattr(args, "sweep", None))
    print(path)
    return 0
