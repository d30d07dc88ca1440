"""The end of a sweep in MLflow: each trial's run settled from Tune's final word on it (its status,
its judged value, its best checkpoint, what it left unsent), lost trials closed, the runs named,
a view of them saved, and the parent run given the summary and the decided outcome.

This runs on the driver because only Tune knows why a trial ended (an ASHA stop, an error, done)
and where its best checkpoint went; a worker can be killed before it can say either.
"""

from __future__ import annotations

import math
import shutil
import sys
import tempfile
from pathlib import Path

from lmgan.errors import first_line
from lmgan.sweep import tracking
from lmgan.sweep.outbox import send_saved
from lmgan.sweep.outcome import SweepOutcome, TrialOutcome
from lmgan.sweep.schema import (BASELINE_TRIAL, BEST_CKPT_ITER, BEST_RUN_ID, BEST_TRIAL, CKPT_FILE, ERROR,
                                ERRORED, NOTE, PARETO, PARETO_TRIALS, STATUS, SUMMARY_CSV,
                                SUMMARY_MD, UNSENT, WALL_S, baseline_metric, best_metric)


def _say(msg: str) -> None:
    print(f"sweep: {msg}", file=sys.stderr)


def send_unsent(c, run_id: str, latest) -> None:
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
            if fs.get_file_info(f"{path}/{UNSENT}").type == pyarrow.fs.FileType.NotFound:
                continue
            with Checkpoint(path, filesystem=fs).as_directory() as d:
                n += send_saved(c, run_id, Path(d))
        if n:
            _say(f"sent {n} metric values that trial run {run_id} had left unsent")
    except Exception as e:
        _say(f"could not send what run {run_id} left unsent ({first_line(e, 200)})")


def settle_trial(c, run, t: TrialOutcome, objective: str, error, ckpt) -> None:
    """A trial's run as Tune ended it: its status (and reason), its judged value at the judged
    iteration, checkpoints/best.pt from that iteration's checkpoint, closed."""
    rid, tags = run.info.run_id, run.data.tags
    try:
        if t.status == ERRORED and ERROR not in tags:
            c.set_tag(rid, ERROR, first_line(error, 500))
        c.set_tag(rid, STATUS, t.status)
        if t.value is not None and math.isfinite(t.value):
            c.log_metric(rid, best_metric(objective), t.value, step=t.at)
        if ckpt is not None and tags.get(BEST_CKPT_ITER) != str(t.at):
            with ckpt.as_directory() as d, tempfile.TemporaryDirectory() as tmp:
                shutil.copy2(Path(d) / CKPT_FILE, Path(tmp) / "best.pt")
                c.log_artifact(rid, str(Path(tmp) / "best.pt"), "checkpoints")
            c.set_tag(rid, BEST_CKPT_ITER, str(t.at))
        if run.info.status not in ("FINISHED", "FAILED", "KILLED"):  # keep the trial's own end time
            c.set_terminated(rid, tracking.end_status(t.status))
    except Exception as e:
        _say(f"could not settle MLflow run {rid} ({e})")


def close_lost(c, experiment_id: str, parent: str, known: set[str]) -> None:
    try:
        lost = tracking.settle_lost(c, experiment_id, parent, known)
    except Exception as e:
        lost = []
        _say(f"could not look for lost trial runs ({first_line(e, 200)})")
    if lost:
        _say(f"{len(lost)} trial run(s) started before a driver was killed were not recorded by Tune, "
             f"which ran others in their place; marked lost: {', '.join(lost)}")


def name_runs(c, plan, session, trials: list[TrialOutcome]) -> tuple[dict, str | None]:
    """Readable, numbered trial names saying how each ended, and a saved view of them for the UI:
    (run id → name, the view's key)."""
    try:
        names = tracking.name_trials(c, session.experiment_id, session.parent_run_id,
                                     {t.run_id: t.reached for t in trials if t.run_id})
        view = tracking.save_sweep_view(c, session.experiment_id, plan.name, plan.objective, plan.mode,
                                        plan.searched)
        return names, view
    except Exception as e:
        _say(f"could not name the trial runs in MLflow ({first_line(e, 200)})")
        return {}, None


def record_sweep(c, plan, session, out: SweepOutcome, table: str, named: str, csv_text: str, wall_s: float) -> None:
    """The parent run: the summary (its description and two files), the decided outcome, closed."""
    parent, objective = session.parent_run_id, plan.objective
    try:
        c.log_text(parent, csv_text, SUMMARY_CSV)
        c.log_text(parent, table, SUMMARY_MD)
        c.set_tag(parent, NOTE, f"{len(out.ranked)} trials, best first:\n\n{named}")
        if out.best:
            c.set_tag(parent, BEST_TRIAL, out.best.trial)
            c.set_tag(parent, BEST_RUN_ID, out.best.run_id)
            c.log_metric(parent, best_metric(objective), out.best.value)
        if plan.multi_objective:
            c.set_tag(parent, PARETO_TRIALS, ",".join(t.trial for t in out.front))
            for t in out.front:
                if t.run_id:
                    c.set_tag(t.run_id, PARETO, "true")
        if out.baseline and out.baseline.value is not None and not plan.multi_objective:
            c.set_tag(parent, BASELINE_TRIAL, out.baseline.trial)
            c.log_metric(parent, baseline_metric(objective), out.baseline.value)
        c.log_metric(parent, WALL_S, wall_s)
        c.set_terminated(parent, "KILLED" if out.interrupted else "FINISHED")
    except Exception as e:
        _say(f"could not write the sweep summary to MLflow ({e})")


