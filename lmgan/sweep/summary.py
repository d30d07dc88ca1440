"""The end of a sweep (also after --resume): settle each trial's MLflow run from Tune's final
word on it, attach its best checkpoint, and give the parent run a summary table.

This runs on the driver because only Tune knows why a trial ended (ASHA stop, error, done) and
where its best checkpoint went; a worker can be killed before it can say either.
"""

from __future__ import annotations

import csv
import io
import math
import shutil
import sys
import tempfile
from pathlib import Path

from lmgan.errors import LmganError, first_line
from lmgan.runs import runs_root
from lmgan.sweep import tracking
from lmgan.sweep.pareto import non_dominated
from lmgan.sweep.plan import SweepPlan, is_baseline
from lmgan.sweep.trainable import CKPT_FILE


def _best(result, objective: str, mode: str):
    """(best value over the trial's reports, its iteration, its checkpoint) or Nones."""
    df = result.metrics_dataframe
    if df is None or objective not in getattr(df, "columns", ()):
        return None, None, None
    col = df[objective].dropna()
    if col.empty:
        return None, None, None
    idx = col.idxmax() if mode == "max" else col.idxmin()
    value, it = float(col[idx]), int(df.loc[idx, "iter"])
    ckpt = None
    for c, metrics in result.best_checkpoints or []:
        if metrics.get("iter") == it:
            ckpt = c
    return value, it, ckpt


def _judged(result, plan: SweepPlan):
    """(value, iteration, checkpoint) the trial is judged by: its best evaluation (ASHA), or
    its last (PBT's final model; Optuna's multi-objective score), with the checkpoint of it."""
    if not plan.judged_by_last:
        return _best(result, plan.objective, plan.mode)
    m = result.metrics or {}
    value = m.get(plan.objective)
    if not (isinstance(value, (int, float)) and math.isfinite(value)):
        return None, None, None
    return float(value), int(m.get("iter", 0)), result.checkpoint


def finish_sweep(results, plan: SweepPlan, wall_s: float) -> int:
    objective, mode, uri = plan.objective, plan.mode, plan.tracking_uri
    names_of = [n for n, _ in plan.goals]
    # fit() also returns when the driver is interrupted (Ctrl-C): then some trials neither
    # ended nor errored, and a trial short of max_iters may be stopped or merely paused.
    interrupted = (len(results) < plan.trials
                   or results.num_terminated + results.num_errors < len(results))
    try:      # a tracking server that is down now may be back soon: settling is worth a wait
        tracking.wait_reachable(uri, 0.0 if interrupted else tracking.final_wait_s())
    except LmganError as e:
        print(f"search: {e}; the trials' MLflow runs are left as they are", file=sys.stderr)
    c = tracking.client(uri)
    exp, parent = plan.experiment_id, plan.parent_run_id
    rows = []
    for r in results:
        trial = Path(r.path).name
        m = r.metrics or {}
        reached = int(m.get("iter", 0))
        if r.error:
            status = "errored"
        elif reached >= plan.max_iters:
            status = "finished"
        else:
            status = "interrupted" if interrupted else "stopped"
        value, best_iter, ckpt = _judged(r, plan)
        run = tracking.find_run(c, exp, **{tracking.PARENT: parent, tracking.TRIAL_ID: trial})
        if run is not None and r.checkpoint is not None:
            _send_unsent(c, run.info.run_id, r.checkpoint)
        if run is not None and status != "interrupted":
            _settle(c, run, status, r.error, objective, value, best_iter, ckpt)
        others = {n: m.get(n) if value is not None else None for n in names_of[1:]}
        rows.append({"trial": trial, "status": status, "iter": reached, objective: value, **others,
                     "best_iter": best_iter, **{k: r.config.get(k) for k in plan.searched},
                     "run_id": run.info.run_id if run else ""})

    if not interrupted:
        try:
            lost = tracking.settle_lost(c, exp, parent, {row["trial"] for row in rows})
        except Exception as e:
            lost = []
            print(f"search: could not look for lost trial runs ({first_line(e, 200)})", file=sys.stderr)
        if lost:
            print(f"search: {len(lost)} trial run(s) started before a driver was killed were not recorded "
                  f"by Tune, which ran others in their place; marked lost: {', '.join(lost)}", file=sys.stderr)

    sign = -1 if mode == "max" else 1
    rows.sort(key=lambda row: (row[objective] is None, sign * (row[objective] or 0)))
    best = rows[0] if rows and rows[0][objective] is not None else None
    front = []
    if plan.multi_objective:      # no one best: the trials no other beats on every objective
        marks = non_dominated([tuple(row[n] for n in names_of) for row in rows], [m for _, m in plan.goals])
        for row, on in zip(rows, marks):
            row["pareto"] = on
        front = [row for row in rows if row["pareto"]]
        best = None
    base = next((row for row in rows if is_baseline(row, plan.baseline)), None)
    table = _markdown(rows, names_of, plan.searched)
    names, view = {}, None
    try:     # readable, numbered trial names saying how each ended; a view of them for the UI
        names = tracking.name_trials(c, exp, parent, {r["run_id"]: r["iter"] for r in rows if r["run_id"]})
        view = tracking.save_sweep_view(c, exp, plan.name, objective, mode, plan.searched)
    except Exception as e:
        print(f"search: could not name the trial runs in MLflow ({first_line(e, 200)})", file=sys.stderr)
    try:
        c.log_text(parent, _csv(rows), "summary.csv")
        c.log_text(parent, table, "summary.md")
        named = _markdown(rows, names_of, plan.searched, names)
        c.set_tag(parent, tracking.NOTE, f"{len(rows)} trials, best first:\n\n{named}")
        if best:
            c.set_tag(parent, "lmgan.best_trial", best["trial"])
            c.set_tag(parent, "lmgan.best_run_id", best["run_id"])
            c.log_metric(parent, f"best_{objective}", best[objective])
        if plan.multi_objective:
            c.set_tag(parent, "lmgan.pareto_trials", ",".join(row["trial"] for row in front))
            for row in front:
                if row["run_id"]:
                    c.set_tag(row["run_id"], "lmgan.pareto", "true")
        if base and base[objective] is not None and not plan.multi_objective:
            c.set_tag(parent, "lmgan.baseline_trial", base["trial"])
            c.log_metric(parent, f"baseline_{objective}", base[objective])
        c.log_metric(parent, "wall_s", wall_s)
        c.set_terminated(parent, "KILLED" if interrupted else "FINISHED")
    except Exception as e:
        print(f"search: could not write the sweep summary to MLflow ({e})", file=sys.stderr)

    print(table)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("finished", "stopped", "errored", "interrupted")}
    print(f"\nsweep {plan.name}: {len(rows)} trials ({', '.join(f'{n} {s}' for s, n in counts.items())}) "
          f"in {wall_s / 60:.1f} min")
    if best:
        label = f" ({names[best['run_id']]})" if best["run_id"] in names else ""
        print(f"best: {best['trial']}{label} {objective}={best[objective]:.4g} at iteration {best['best_iter']}")
    if front:
        print(f"Pareto front ({len(front)} of {len(rows)} trials; no other trial is better on every "
              f"objective of {', '.join(names_of)}):")
        for row in front:
            label = f" ({names[row['run_id']]})" if row["run_id"] in names else ""
            print(f"  {row['trial']}{label} " + " ".join(f"{n}={row[n]:.4g}" for n in names_of)
                  + f" at iteration {row['best_iter']}" + (" (baseline)" if row is base else ""))
    if base and not plan.multi_objective:
        print(baseline_line(base, best, objective, mode))
    for line in ui_lines(uri, exp, view, [r["run_id"] for r in rows if r["run_id"]]):
        print(line)
    print(f"report: lmgan report --experiment {plan.video} --sweep {plan.name}"
          + ("" if uri == tracking.default_uri(runs_root()) else f" --tracking-uri {uri}"))
    if interrupted:
        print(f"sweep {plan.name} was interrupted; continue it with: python sweeps/search.py "
              f"--resume --name {plan.name}", file=sys.stderr)
        return 130
    return 0 if counts["finished"] + counts["stopped"] else 1


def baseline_line(base: dict, best: dict | None, objective: str, mode: str) -> str:
    """How the preset's own configuration (the sweep's first trial) did against the best."""
    head = f"baseline: {base['trial']} (the preset's own values)"
    if base[objective] is None:
        return f"{head} has no {objective} ({base['status']})"
    if best is None or best is base:
        return f"{head} {objective}={base[objective]:.4g}: nothing the sweep found beat it"
    gain = (best[objective] - base[objective]) * (1 if mode == "max" else -1)
    return f"{head} {objective}={base[objective]:.4g}; the best beat it by {gain:.4g}"


def _send_unsent(c, run_id: str, latest) -> None:
    """What the trial's process could not send before it ended (an ASHA stop or a lost node
    while MLflow was down) was saved beside its checkpoints: send it now. Tune's latest checkpoint
    is not always the newest on disk: a process killed right after persisting one never got its
    report to the driver. So every checkpoint from the latest on is read, oldest first; values
    MLflow already has are skipped, so nothing is sent twice."""
    import pyarrow.fs
    from ray.train import Checkpoint
    try:      # look before fetching: on cloud storage as_directory() downloads the checkpoint
        fs, parent = latest.filesystem, latest.path.rstrip("/").rsplit("/", 1)[0]
        name = latest.path.rstrip("/").rsplit("/", 1)[1]
        found = fs.get_file_info(pyarrow.fs.FileSelector(parent))
        newer = sorted(i.path for i in found if i.type == pyarrow.fs.FileType.Directory
                       and i.base_name.startswith("checkpoint_") and i.base_name >= name)
        n = 0
        for path in newer:
            if fs.get_file_info(f"{path}/{tracking.UNSENT}").type == pyarrow.fs.FileType.NotFound:
                continue
            with Checkpoint(path, filesystem=fs).as_directory() as d:
                n += tracking.send_unsent(c, run_id, Path(d))
        if n:
            print(f"search: sent {n} metric values that trial run {run_id} had left unsent",
                  file=sys.stderr)
    except Exception as e:
        print(f"search: could not send what run {run_id} left unsent ({first_line(e, 200)})",
              file=sys.stderr)


def _settle(c, run, status, error, objective, value, best_iter, ckpt) -> None:
    rid, tags = run.info.run_id, run.data.tags
    try:
        if status == "errored" and tracking.ERROR not in tags:
            c.set_tag(rid, tracking.ERROR, first_line(error, 500))
        c.set_tag(rid, tracking.STATUS, status)
        if value is not None and math.isfinite(value):
            c.log_metric(rid, f"best_{objective}", value, step=best_iter)
        if ckpt is not None and tags.get("lmgan.best_ckpt_iter") != str(best_iter):
            with ckpt.as_directory() as d, tempfile.TemporaryDirectory() as tmp:
                shutil.copy2(Path(d) / CKPT_FILE, Path(tmp) / "best.pt")
                c.log_artifact(rid, str(Path(tmp) / "best.pt"), "checkpoints")
            c.set_tag(rid, "lmgan.best_ckpt_iter", str(best_iter))
        if run.info.status not in ("FINISHED", "FAILED", "KILLED"):  # keep the trial's own end time
            c.set_terminated(rid, tracking.end_status(status))
    except Exception as e:
        print(f"search: could not settle MLflow run {rid} ({e})", file=sys.stderr)


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "✓" if v else ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _markdown(rows: list[dict], objectives: list[str], searched: list[str], names: dict | None = None) -> str:
    """The summary table; with `names` (run id → run name) a first column of run names."""
    cols = ["trial", "status", "iter", *objectives, *(["pareto"] if rows and "pareto" in rows[0] else []),
            *searched]
    head = (["run"] if names else []) + cols
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(([names.get(r["run_id"], "—")] if names else [])
                               + [_fmt(r[c]) for c in cols]) + " |" for r in rows]
    return "\n".join(lines)


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
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
