"""`lmgan report`: one HTML page about one sweep, read back from MLflow (what a sweep writes:
lmgan.sweep.schema).

The page holds the trials as a Table-1-style table (searched params, held-out metrics as
mean ± std, iterations, status; best first), Optuna's parameter importances for the objective,
a parallel-coordinate plot, the objective over iterations of every trial and the best trial's
section: its sample video (generated | real, with sound) scaled up with its halves labelled, and
its metrics in two groups, "image quality" (frame and set metrics, beside the frame grid) and
"does it listen" (sequence and probe metrics, beside the motion-over-time plot). A PBT sweep adds
its lineage and schedules; a multi-objective sweep its Pareto front, whose trials the table marks.

The ranking, the best trial, the front and the baseline line come from `outcome.decide` over each
trial's judged value (the driver's best_<objective> once recorded), the same rule as the driver's
summary, so the page and the console cannot disagree on how the sweep came out.

Two steps, so that the layout can be read, changed and tested without a store: `gather_page` does
every query (queries.py), the Optuna study (study.py) and the charts (charts.py), copies the best
trial's samples and returns a `SweepPage` of display-ready strings (page.py); `render_page` lays
it out with the Jinja2 template. Offline by design: plotly.js and the samples are written into the
sibling folder `<out stem>_files/`, which the page refers to relatively.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from urllib.parse import quote

from lmgan.errors import LmganError, first_line
from lmgan.runs import runs_root
from lmgan.sweep import outcome, tracking
from lmgan.sweep.report import page as pages
from lmgan.sweep.report import queries, study
from lmgan.sweep.report.charts import history_chart, parallel_chart
from lmgan.sweep.report.page import SweepPage, render_page

__all__ = ["gather_page", "render_page", "report_main", "write_report"]


def gather_page(c, experiment: str, uri: str, sweep: str | None, files: Path) -> SweepPage:
    """Everything the page shows, with the best trial's samples copied into `files`. All the store
    queries and computations happen here, so that `render_page` needs neither MLflow nor Optuna."""
    exp = queries.experiment(c, experiment)
    parent = queries.sweep_run(c, exp, sweep)
    files.mkdir(parents=True, exist_ok=True)     # only now: a wrong name leaves no folder behind
    objs = queries.objectives(parent)
    url = pages.runs_url(uri, exp)
    with tempfile.TemporaryDirectory(prefix="lmgan-report-") as tmpdir:
        tmp = Path(tmpdir)
        trials = queries.trials(c, exp, parent, objs)
        head = pages.head(exp, parent, uri, objs, pages.counts(trials))
        summary = ", ".join(f"{n} {s}" for s, n in head.counts.items() if n)
        aims = ", ".join(f"{n} ({m})" for n, m in objs.goals)
        queries.log(f"{exp.name} / {head.sweep}: {pages.plural(len(trials), 'trial')} ({summary}), "
                    f"objective{'s' if objs.multi else ''} {aims}")
        space = queries.space(c, parent, tmp)
        lineage = pages.lineage(trials) if head.scheduler == "pbt" or any(t.exploits for t in trials) else None

        result = outcome.decide([t.outcome for t in trials], objs.goals)
        of = {id(t.outcome): t for t in trials}
        trials = [of[id(o)] for o in result.ranked]
        top = result.front[0] if objs.multi and result.front else result.best   # the front's best on the primary
        best = of[id(top)] if top is not None else None
        head.versus = pages.versus(result, objs)

        cols = pages.columns(space, trials)
        queries.log("computing parameter importances")
        dists = study.distributions(space, trials, cols)
        s, skipped = study.study(trials, dists, objs.mode == "max") if dists else (None, 0)
        best_section = None
        if best is not None:
            queries.log(f"best trial {best.trial_id} ({objs.objective} {pages.num(best.value)}), "
                        f"downloading its sample")
            found, note = queries.sample_files(c, best, files, tmp)
            best_section = pages.best_trial(best, cols, objs, pages.samples(found, files), note, url)
        return SweepPage(
            head=head, files=quote(files.name),
            table=pages.table(trials, cols, space, objs, best, url),
            importance=pages.importance(s, dists, skipped, objs.objective),
            parallel=parallel_chart(s, objs.objective),
            history=history_chart(trials, best, objs.objective),
            best=best_section, lineage=lineage,
            pareto=pages.pareto(trials, list(objs.goals), url) if objs.multi else None)


def write_report(experiment: str, out: Path | None, tracking_uri: str, sweep: str | None = None,
                 runs: Path | None = None) -> Path:
    """Write the HTML report of one sweep (the latest in `experiment` unless `sweep` names one)
    to `out` (default `<runs>/reports/<sweep>/report.html`) and its files into
    `<out stem>_files/`; returns the page's path. A failed query leaves an older page as it was."""
    if out is not None and Path(out).is_dir():
        raise LmganError(f"--out {out}: is a directory; give a file name such as report.html")
    queries.check_store(tracking_uri)
    from mlflow.exceptions import MlflowException
    c = tracking.client(tracking_uri)
    try:
        if out is None:      # named after the sweep, under the runs folder (git ignores it)
            parent = queries.sweep_run(c, queries.experiment(c, experiment), sweep)
            out = (runs or runs_root()) / "reports" / queries.sweep_name(parent) / "report.html"
        out = Path(out)
        files = out.parent / f"{out.stem}_files"
        return pages.write_page(gather_page(c, experiment, tracking_uri, sweep, files), out, files)
    except MlflowException as e:
        raise LmganError(f"MLflow at {tracking_uri}: {first_line(e, 200)}") from None


def report_main(args) -> int:
    """`lmgan report --experiment NAME [--sweep SWEEP] [--out FILE] [--runs-dir DIR] [--tracking-uri URI]`."""
    runs = runs_root(getattr(args, "runs_dir", None))
    uri = getattr(args, "tracking_uri", None) or tracking.default_uri(runs)
    out = getattr(args, "out", None)
    path = write_report(args.experiment, Path(out) if out else None, uri, getattr(args, "sweep", None), runs)
    print(path)
    return 0
