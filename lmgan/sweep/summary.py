"""The end of a sweep (also after --resume), in three steps: the outcome (each trial's judged value
and checkpoint from Tune's results, then lmgan.sweep.outcome's one rule for the best, the front and
the baseline gain), its record in MLflow (lmgan.sweep.record), and what the console prints.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from lmgan.errors import LmganError
from lmgan.runs import runs_root
from lmgan.sweep import outcome, record, tracking
from lmgan.sweep.outcome import SweepOutcome, TrialOutcome
from lmgan.sweep.plan import SweepPlan, is_baseline
from lmgan.sweep.schema import ERRORED, FINISHED, INTERRUPTED, ITER, PARENT, STOPPED, TRIAL_ID


def judged(result, plan: SweepPlan):
    """(value, iteration, checkpoint) a trial is judged by (outcome.judged on its reports), with
    the checkpoint reported at that iteration; Nones before its first finite value."""
    df = result.metrics_dataframe
    if df is None or plan.objective not in getattr(df, "columns", ()) or ITER not in df.columns:
        return None, None, None
    rows = df[[ITER, plan.objective]].dropna()
    got = outcome.judged(list(zip(rows[ITER].astype(int), rows[plan.objective])), plan.mode, plan.judged_by_last)
    if got is None:
        return None, None, None
    value, at = got
    if plan.judged_by_last:
        return value, at, result.checkpoint
    ckpt = None
    for c, metrics in result.best_checkpoints or []:
        if metrics.get(ITER) == at:
            ckpt = c
    return value, at, ckpt


def _scores(result, plan: SweepPlan, value) -> dict:
    """Every objective's value the trial is judged by (several objectives: its last report's)."""
    if value is None:
        return {n: None for n, _ in plan.goals}
    last = result.metrics or {}
    return {plan.objective: value, **{n: last.get(n) for n, _ in plan.goals[1:]}}


def finish_sweep(results, plan: SweepPlan, session, wall_s: float) -> int:
    # fit() also returns when the driver is interrupted (Ctrl-C): then some trials neither
    # ended nor errored, and a trial short of max_iters may be stopped or merely paused.
    interrupted = (len(results) < plan.trials
                   or results.num_terminated + results.num_errors < len(results))
    uri = session.tracking_uri
    try:      # a tracking server that is down now may be back soon: settling is worth a wait
        tracking.wait_reachable(uri, 0.0 if interrupted else tracking.final_wait_s())
    except LmganError as e:
        print(f"sweep: {e}; the trials' MLflow runs are left as they are", file=sys.stderr)
    c = tracking.client(uri)
    trials = []
    for r in results:
        trial = Path(r.path).name
        reached = int((r.metrics or {}).get(ITER, 0))
        status = ERRORED if r.error else FINISHED if reached >= plan.max_iters else (
            INTERRUPTED if interrupted else STOPPED)
        value, at, ckpt = judged(r, plan)
        run = tracking.find_run(c, session.experiment_id, **{PARENT: session.parent_run_id, TRIAL_ID: trial})
        t = TrialOutcome(trial, status, reached, value, at, _scores(r, plan, value),
                         {k: r.config.get(k) for k in plan.searched}, is_baseline(r.config, plan.baseline),
                         run.info.run_id if run else "")
        if run is not None and r.checkpoint is not None:
            record.send_unsent(c, run.info.run_id, r.checkpoint)
        if run is not None and status != INTERRUPTED:
            record.settle_trial(c, run, t, plan.objective, r.error, ckpt)
        trials.append(t)
    if not interrupted:
        record.close_lost(c, session.experiment_id, session.parent_run_id, {t.trial for t in trials})

    out = outcome.decide(trials, plan.goals, interrupted)
    names, view = record.name_runs(c, plan, session, out.ranked)
    columns = _columns(plan, out)
    table = _markdown(out.ranked, columns)
    record.record_sweep(c, plan, session, out, table, _markdown(out.ranked, columns, names),
                        _csv(out.ranked, plan), wall_s)
    for line in summary_lines(plan, out, names, table, wall_s):
        print(line)
    for line in ui_lines(uri, session.experiment_id, view, [t.run_id for t in out.ranked if t.run_id]):
        print(line)
    print(f"report: lmgan report --experiment {plan.video} --sweep {plan.name}"
          + ("" if uri == tracking.default_uri(runs_root()) else f" --tracking-uri {uri}"))
    if interrupted:
        print(f"sweep {plan.name} was interrupted; continue it with: python sweeps/search.py "
              f"--resume --name {plan.name}", file=sys.stderr)
        return 130
    return 0 if out.count(FINISHED) + out.count(STOPPED) else 1


# ----------------------------------------------------------------------------- what it prints
def summary_lines(plan: SweepPlan, out: SweepOutcome, names: dict, table: str, wall_s: float) -> list[str]:
    """The table, the counts, the best trial or the Pareto front, and the baseline."""
    objective, goals = plan.objective, [n for n, _ in plan.goals]
    counts = {s: out.count(s) for s in (FINISHED, STOPPED, ERRORED, INTERRUPTED)}
    lines = [table, "",
             f"sweep {plan.name}: {len(out.ranked)} trials ({', '.join(f'{n} {s}' for s, n in counts.items())}) "
             f"in {wall_s / 60:.1f} min"]

    def label(t: TrialOutcome) -> str:
        return f" ({names[t.run_id]})" if t.run_id in names else ""
    if out.best:
        lines.append(f"best: {out.best.trial}{label(out.best)} {objective}={out.best.value:.4g} "
                     f"at iteration {out.best.at}")
    if out.front:
        lines.append(f"Pareto front ({len(out.front)} of {len(out.ranked)} trials; no other trial is better on "
                     f"every objective of {', '.join(goals)}):")
        lines += [f"  {t.trial}{label(t)} " + " ".join(f"{n}={t.scores[n]:.4g}" for n in goals)
                  + f" at iteration {t.at}" + (" (baseline)" if t is out.baseline else "") for t in out.front]
    if out.baseline and not plan.multi_objective:
        lines.append(baseline_line(out.baseline, out.best, out.gain, objective))
    return lines


def baseline_line(base: TrialOutcome, best: TrialOutcome | None, gain: float | None, objective: str) -> str:
    """How the preset's own configuration (the sweep's first trial) did against the best."""
    head = f"baseline: {base.trial} (the preset's own values)"
    if base.value is None:
        return f"{head} has no {objective} ({base.status})"
    if gain is None:
        return f"{head} {objective}={base.value:.4g}: nothing the sweep found beat it"
    return f"{head} {objective}={base.value:.4g}; the best beat it by {gain:.4g}"


def _columns(plan: SweepPlan, out: SweepOutcome) -> list[tuple[str, object]]:
    """(header, how to read a trial's cell) of the summary table."""
    cols = [("trial", lambda t: t.trial), ("status", lambda t: t.status), ("iter", lambda t: t.reached)]
    cols += [(n, (lambda n: lambda t: t.scores.get(n))(n)) for n, _ in plan.goals]
    if plan.multi_objective:
        cols.append(("pareto", lambda t: t.pareto))
    cols += [(k, (lambda k: lambda t: t.values.get(k))(k)) for k in plan.searched]
    return cols


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "✓" if v else ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _markdown(trials: list[TrialOutcome], columns: list, names: dict | None = None) -> str:
    """The summary table; with `names` (run id → run name) a first column of run names."""
    head = (["run"] if names else []) + [h for h, _ in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(([names.get(t.run_id, "—")] if names else [])
                               + [_fmt(cell(t)) for _, cell in columns]) + " |" for t in trials]
    return "\n".join(lines)


def _csv(trials: list[TrialOutcome], plan: SweepPlan) -> str:
    """summary.csv: one row per trial, best first."""
    buf = io.StringIO()
    fields = ["trial", "status", "iter", *(n for n, _ in plan.goals), "best_iter",
              *(["pareto"] if plan.multi_objective else []), *plan.searched, "run_id"]
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    for t in trials:
        w.writerow({"trial": t.trial, "status": t.status, "iter": t.reached, **t.scores, "best_iter": t.at,
                    **({"pareto": t.pareto} if plan.multi_objective else {}), **t.values, "run_id": t.run_id})
    return buf.getvalue()


def ui_lines(uri: str, experiment_id: str, view: str | None, run_ids: list[str]) -> list[str]:
    """The sweep's last words on MLflow: how to start its UI (a local store) and direct links to
    the experiment (this sweep's trials, best first, when its view was saved) and to the
    comparison of the trials (`run_ids`, best first)."""
    base = tracking.ui_base(uri)
    lines = [] if uri.startswith(("http://", "https://")) else [
        f"compare the trials: mlflow ui --backend-store-uri {uri}   (serves {base}), then open"]
    lines.append(f"  the trials:  {tracking.experiment_url(base, experiment_id, view)}")
    if run_ids:
        lines.append(f"  compare:     {tracking.compare_url(base, experiment_id, run_ids)}")
    if uri.startswith(("http://", "https://")):
        lines.insert(0, "compare the trials:")
    return lines
