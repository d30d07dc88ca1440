"""MLflow bookkeeping of a sweep: one experiment per video, a parent run per sweep, a nested run
per trial (what each holds: lmgan.sweep.schema). Every call goes through an explicit MlflowClient
and run id (no global active run), so the driver and many trial processes on many nodes can log
side by side.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from contextlib import suppress
from pathlib import Path
from urllib.parse import quote, urlparse

from lmgan.errors import LmganError, first_line

from lmgan.sweep.outbox import Outbox
from lmgan.sweep.schema import (ERROR, ERROR_CONFIG, ERRORED, LOST, INDEX, KIND, KIND_TRAINING, NOTE, PARENT, ROLE,
                                ROLE_SWEEP, ROLE_TRIAL, RUNNING, SEARCHED, STATUS, SWEEP, TRIAL_ID,
                                VIDEO, VIEW_PREFIX, best_metric, experiment_name)

# MLflow 3 keeps an experiment's type in KIND: model training or GenAI (its UI's experiment-type
# selector writes it). The installed UI (3.17) decides the mode an experiment opens in from the
# URL's workflowType parameter, else the browser's last choice (GenAI at first), not from this
# tag, so the links the sweep prints (`experiment_url`) carry workflowType=machine_learning.
UI_DEFAULT = "http://127.0.0.1:5000"      # where `mlflow ui` serves


def end_status(status: str) -> str:
    """The MLflow run status a trial ends with: errored → FAILED; finished, stopped → FINISHED.

    An ASHA stop is the search working as meant, not a failure: MLflow's UI draws KILLED with the
    same red icon as FAILED, so a stopped trial ends FINISHED (green) and its name says
    `stopped@<iteration>` (`trial_run_name`). KILLED is kept for runs nobody closed: lost trials
    (`settle_lost`) and an interrupted sweep's parent."""
    return "FAILED" if status == "errored" else "FINISHED"


ABBREV = {"vp_kernel": "K", "rnn_layers": "L_R"}   # short names of searched keys in run names


def short(v) -> str:
    """A searched value for a run name: numbers with 2 significant digits (1.2e-4, 0.5, 7)."""
    if isinstance(v, str):
        low = v.strip().lower()
        if low in ("true", "false"):
            return "on" if low == "true" else "off"
        try:
            v = int(v)
        except ValueError:
            try:
                v = float(v)
            except ValueError:
                return v
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-2 or abs(v) >= 1e4):
            mant, exp = f"{v:.1e}".split("e")
            return f"{mant.rstrip('0').rstrip('.')}e{int(exp)}"
        return f"{v:.2g}"
    if isinstance(v, (list, tuple)):
        return ",".join(map(short, v))
    return "null" if v is None else str(v)


def trial_run_name(index: int, values: dict, searched: list[str], status: str | None = None,
                   iteration: int | None = None) -> str:
    """`t03 lr_g=1.2e-4 K=7`: the trial's number in its sweep and its searched values, and how it
    ended if not by finishing (`stopped@15`, `errored`, `lost`)."""
    parts = [f"t{index:02d}"]
    parts += [f"{ABBREV.get(k, k)}={short(values[k])}" for k in searched if k in values]
    if status == "stopped":
        parts.append("stopped" if iteration is None else f"stopped@{iteration}")
    elif status in (ERRORED, LOST):
        parts.append(status)
    return " ".join(parts)[:250]


def default_uri(runs_dir: Path) -> str:
    """The embedded default store: SQLite under the project's runs folder."""
    return f"sqlite:///{Path(runs_dir).resolve() / 'mlflow.db'}"


def client(uri: str):
    from mlflow.tracking import MlflowClient
    return MlflowClient(tracking_uri=uri)


def check_reachable(uri: str, timeout: float = 10.0) -> None:
    """Fail before any trial launches when the tracking server cannot be reached."""
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        import urllib.error
        import urllib.request
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                r.read()
        except urllib.error.HTTPError as e:
            if e.code in (401, 403) and not os.environ.get("MLFLOW_TRACKING_USERNAME"):
                raise LmganError(f"MLflow at {uri} wants a login: set MLFLOW_TRACKING_USERNAME "
                                 f"and MLFLOW_TRACKING_PASSWORD") from None
            if e.code not in (401, 403):
                raise LmganError(f"MLflow at {uri} answered HTTP {e.code} to {url}") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise LmganError(f"MLflow tracking server {uri} is unreachable ({reason}); start it "
                             f"or pass another --tracking-uri") from None
    elif scheme in ("", "file", "sqlite", "postgresql", "mysql", "mssql") or "+" in scheme:
        try:
            client(uri).search_experiments(max_results=1)
        except Exception as e:  # a driver or migration error, named in one line
            raise LmganError(f"MLflow store {uri}: {first_line(e, 200)}") from None
    else:
        raise LmganError(f"--tracking-uri {uri}: unsupported scheme {scheme!r}")


def wait_reachable(uri: str, wait_s: float) -> None:
    """Wait up to `wait_s` for a tracking server that is down (the end of a sweep is worth it)."""
    deadline, said = time.monotonic() + wait_s, False
    while True:
        try:
            return check_reachable(uri, timeout=5.0)
        except LmganError as e:
            if time.monotonic() > deadline:
                raise
            if not said:
                print(f"search: {e}; waiting up to {wait_s:.0f} s for it", file=sys.stderr)
                said = True
            time.sleep(5.0)


def _description(video: str) -> str:
    return (f"lmgan sweeps on `{video}`. Each sweep is a parent run (tag lmgan.role=sweep; its "
            f"description is the summary table, best first); its trials are the nested runs, named "
            f"`t<NN> <searched values>` (`stopped@<iteration>`: stopped early by ASHA; `errored`: "
            f"failed, reason in tag lmgan.error). Each sweep prints links to a view of its trials "
            f"and to their comparison; `lmgan report --experiment {video}` writes the full report.")


def ensure_experiment(uri: str, video: str, artifact_root: Path | None) -> str:
    """The video's experiment id, created on first use (artifacts beside a local store), marked
    a model-training experiment (also when it already existed)."""
    c = client(uri)
    name = experiment_name(video)
    exp = c.get_experiment_by_name(name)
    if exp is None:
        location = (Path(artifact_root).resolve() / name).as_uri() if artifact_root else None
        try:
            eid = c.create_experiment(name, artifact_location=location,
                                      tags={KIND: KIND_TRAINING, NOTE: _description(video)})
            return eid
        except Exception:  # another process created it between the lookup and here
            exp = c.get_experiment_by_name(name)
            if exp is None:
                raise
    mark_experiment(c, exp.experiment_id, video)
    return exp.experiment_id


def mark_experiment(c, experiment_id: str, video: str | None = None) -> None:
    """A model-training experiment with a description (one a person wrote is kept)."""
    tags = c.get_experiment(experiment_id).tags
    if tags.get(KIND) != KIND_TRAINING:
        c.set_experiment_tag(experiment_id, KIND, KIND_TRAINING)
    if video and not tags.get(NOTE):
        c.set_experiment_tag(experiment_id, NOTE, _description(video))


def find_run(c, experiment_id: str, **tags: str):
    """The run carrying all these tags, or None (how resumed sweeps and trials find theirs)."""
    flt = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    runs = c.search_runs([experiment_id], filter_string=flt, max_results=2,
                                   order_by=["attributes.start_time ASC"])
    return runs[0] if runs else None


def start_sweep_run(uri: str, experiment_id: str, sweep: str, tags: dict, params: dict,
                    files: dict[str, str]) -> str:
    """Create the sweep's parent run, or return the existing one (resume)."""
    c = client(uri)
    mark_experiment(c, experiment_id, tags.get(VIDEO))    # also an existing experiment
    run = find_run(c, experiment_id, **{ROLE: ROLE_SWEEP, SWEEP: sweep})
    if run is not None:
        c.update_run(run.info.run_id, status="RUNNING")
        return run.info.run_id
    run = c.create_run(experiment_id, run_name=sweep, tags={ROLE: ROLE_SWEEP, SWEEP: sweep, **tags})
    rid = run.info.run_id
    log_params(c, rid, params)
    for name, text in files.items():
        c.log_text(rid, text, name)
    return rid


def log_params(c, run_id: str, params: dict) -> None:
    from mlflow.entities import Param
    items = [Param(k, param_str(v)) for k, v in params.items()]
    for i in range(0, len(items), 100):
        c.log_batch(run_id, params=items[i:i + 100], synchronous=True)


def param_str(v) -> str:
    """How a value is stored as an MLflow param (lists comma-joined, None as null; MLflow's 6000-character limit)."""
    s = "null" if v is None else ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
    return s[:6000]


def final_wait_s() -> float:
    return float(os.environ.get("LMGAN_MLFLOW_WAIT_S", 600))


class TrialRun:
    """A trial's nested run, found again after a restart (by the parent run and Tune's trial id)
    or created on the first start; what it logs goes through an `Outbox`."""

    def __init__(self, uri: str, experiment_id: str, parent_run_id: str, sweep: str,
                 trial_id: str, params: dict, searched: list[str], index: int | None = None):
        c = client(uri)
        run = find_run(c, experiment_id, **{PARENT: parent_run_id, TRIAL_ID: trial_id})
        self.resumed = run is not None
        if run is None:
            # Tune's trial ids are hashes: the trial's number is Tune's (`index`, as the driver's
            # progress lines name it), else the order its run is created in (trials starting at
            # the same moment may share one; the sweep's end renumbers).
            index = index or len(trial_runs(c, experiment_id, parent_run_id)) + 1
            run = c.create_run(experiment_id, run_name=trial_run_name(index, params, searched), tags={
                PARENT: parent_run_id, ROLE: ROLE_TRIAL, SWEEP: sweep, TRIAL_ID: trial_id,
                SEARCHED: ",".join(searched), INDEX: str(index), STATUS: RUNNING})
            log_params(c, run.info.run_id, params)
        else:
            c.update_run(run.info.run_id, status="RUNNING")
            c.set_tag(run.info.run_id, STATUS, RUNNING)
        self.c, self.run_id = c, run.info.run_id
        self.outbox = Outbox(c, self.run_id)
        # A restarted trial repeats the iterations after its last checkpoint; what it logged of
        # them before it died stays, and the repeat is not logged twice (see `rewind`).
        history = c.get_metric_history(self.run_id, "it_per_s") if self.resumed else []
        self.logged_up_to = max((m.step for m in history), default=-1)

    @property
    def failed_sends(self) -> int:
        return self.outbox.failed_sends

    def rewind(self, iteration: int) -> None:
        """Log again from `iteration` on: a PBT clone continues from there with another lineage,
        whose values replace the old ones (outcome.latest_by_step reads the last of a step)."""
        self.logged_up_to = min(self.logged_up_to, iteration - 1)

    def tag(self, key: str, value: str) -> None:
        """Set a tag now, or as soon as the server answers again."""
        self.outbox.tag(key, value)
        self.outbox.flush()

    def delete_tag(self, key: str) -> None:
        """Remove a tag (a PBT clone a resumed sweep undid), now or once the server answers."""
        self.outbox.remove_tag(key)
        self.outbox.flush()

    def metrics(self, values: dict, step: int) -> None:
        if step > self.logged_up_to:
            for k, v in values.items():
                self.outbox.metric(k, v, step)

    def artifact(self, path: str | Path, folder: str | None = None) -> None:
        self.outbox.file(path, folder)

    def flush(self, wait_s: float = 0.0) -> bool:
        return self.outbox.flush(wait_s)

    def save_unsent(self, folder: Path) -> None:
        """What MLflow has not received yet, beside a checkpoint about to be reported."""
        self.outbox.save(folder)

    def take_back(self, folder: Path, keep_in: Path) -> None:
        self.outbox.take_back(folder, keep_in)

    def fail(self, reason: str, config: dict, folder: Path) -> None:
        """An errored trial: the reason and the config that hit it, on the run itself. Both are
        queued, so a tracking server that is down now receives them when `finish` reaches it."""
        import yaml
        self.outbox.tag(ERROR, reason)
        path = Path(folder) / ERROR_CONFIG
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            self.outbox.file(path)
        except OSError as e:     # the disk that failed the trial may be full: the reason still goes
            with suppress(OSError):
                path.unlink(missing_ok=True)     # no half-written config
            print(f"lmgan: could not write {path} ({first_line(e, 160)}); the run keeps its params",
                  file=sys.stderr)
        self.finish("errored")

    def finish(self, status: str) -> None:
        """status: finished | stopped | errored (the MLflow run status follows). What is still
        queued is retried for up to $LMGAN_MLFLOW_WAIT_S seconds (default 600): the trial's
        last results are worth waiting for a tracking server's restart."""
        self.flush(final_wait_s())
        try:
            self.c.set_tag(self.run_id, STATUS, status)
            self.c.set_terminated(self.run_id, end_status(status))
        except Exception as e:
            print(f"lmgan: could not close MLflow run {self.run_id}: {e}", file=sys.stderr)


def settle_lost(c, experiment_id: str, parent_run_id: str, known: set[str]) -> list[str]:
    """Trial runs of this sweep still "running" whose trial Tune no longer knows: a driver killed
    between a trial's start and Tune's next experiment snapshot leaves one, and the resumed
    sweep runs another trial in its place. Tagged lost and closed KILLED; their trial ids."""
    flt = f"tags.`{PARENT}` = '{parent_run_id}' and tags.`{STATUS}` = '{RUNNING}'"
    lost = [r for r in c.search_runs([experiment_id], filter_string=flt, max_results=5000)
            if r.data.tags.get(TRIAL_ID) not in known]
    for r in lost:
        c.set_tag(r.info.run_id, STATUS, LOST)
        c.set_terminated(r.info.run_id, "KILLED")
    return [r.data.tags.get(TRIAL_ID, r.info.run_id) for r in lost]


def all_runs(c, experiment_id: str, flt: str, order_by: list[str]) -> list:
    """Every run the filter matches, page after page (MLflow returns at most 1000 at a time)."""
    runs, token = [], None
    while True:
        page = c.search_runs([experiment_id], filter_string=flt, max_results=1000,
                             order_by=order_by, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def trial_runs(c, experiment_id: str, parent_run_id: str) -> list:
    """The sweep's trial runs in the order they were created."""
    flt = f"tags.`{PARENT}` = '{parent_run_id}' and tags.`{ROLE}` = '{ROLE_TRIAL}'"
    runs = all_runs(c, experiment_id, flt, ["attributes.start_time ASC"])
    return sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id))


def name_trials(c, experiment_id: str, parent_run_id: str, iterations: dict | None = None) -> dict:
    """Number the sweep's trial runs (their lmgan.trial_index when those are unique, else 1, 2,
    ... in the order they were created) and name each `trial_run_name`, with how it ended (its
    lmgan.status tag; `iterations`: run id → the iteration a stopped trial reached). Only runs
    whose name changes are touched. Returns run id → name."""
    names = {}
    runs = trial_runs(c, experiment_id, parent_run_id)
    given = [r.data.tags.get(INDEX) for r in runs]
    keep = all(given) and len(set(given)) == len(given)      # Tune's numbers, unique: kept
    for i, r in enumerate(runs, 1):
        tags = r.data.tags
        i = int(tags[INDEX]) if keep else i
        searched = [k for k in tags.get(SEARCHED, "").split(",") if k]
        name = trial_run_name(i, r.data.params, searched, tags.get(STATUS),
                              (iterations or {}).get(r.info.run_id))
        if name != r.info.run_name:
            c.update_run(r.info.run_id, name=name)         # keeps its status and end time
        if tags.get(INDEX) != str(i):
            c.set_tag(r.info.run_id, INDEX, str(i))
        names[r.info.run_id] = name
    return names


def save_sweep_view(c, experiment_id: str, sweep: str, objective: str, mode: str,
                    searched: list[str]) -> str:
    """Save a view of the sweep's runs table as the experiment tag mlflow.sharedViewState.<key>
    (what the UI's *Share* button writes; `experiment_url` opens it): this sweep's trials only, as
    rows of their own (not collapsed under the parent), best objective first, with columns
    best_<objective>, <objective>, the searched values, lmgan.status. Returns the key."""
    def col(kind, key):
        return f"{kind}.`{key}`"
    state = {
        "searchFilter": f"tags.`{SWEEP}` = '{sweep}' and tags.`{ROLE}` = '{ROLE_TRIAL}'",
        "orderByKey": col("metrics", best_metric(objective)),
        "orderByAsc": mode != "max",
        "selectedColumns": [col("metrics", best_metric(objective)), col("metrics", objective),
                            *(col("params", k) for k in searched), col("tags", STATUS)],
    }
    key = view_key(sweep)
    c.set_experiment_tag(experiment_id, VIEW_PREFIX + key, json.dumps(state))
    return key


def view_key(sweep: str) -> str:
    """The name of a sweep's saved runs-table view (save_sweep_view)."""
    return "lmgan-" + re.sub(r"[^A-Za-z0-9_.-]", "_", sweep)


def ui_base(uri: str) -> str:
    """Where the MLflow UI for this store is: the tracking server itself, else `mlflow ui`'s."""
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else UI_DEFAULT


def experiment_url(base: str, experiment_id: str, view: str | None = None) -> str:
    """The experiment's runs table in the model-training mode (workflowType=machine_learning:
    what MLflow 3's UI opens an experiment in), with a saved view if given."""
    q = f"viewStateShareKey={quote(view, safe='')}&" if view else ""
    return f"{base}/#/experiments/{experiment_id}/runs?{q}workflowType=machine_learning"


def compare_url(base: str, experiment_id: str, run_ids: list[str]) -> str:
    """MLflow's compare-runs page (route /compare-runs?runs=[...]&experiments=[...], JSON lists,
    percent-encoded so that terminals keep the link whole; the UI decodes them)."""
    runs = quote(json.dumps(list(run_ids), separators=(",", ":")), safe="")
    exps = quote(json.dumps([str(experiment_id)]), safe="")
    return f"{base}/#/compare-runs?runs={runs}&experiments={exps}&workflowType=machine_learning"
