"""lmgan training as a Ray Tune function trainable: the loop's events become Tune reports with
checkpoints, MLflow metrics and artifacts, and Prometheus gauges. Nothing here changes training.

Each evaluation interval reports the held-out metrics together with the lmgan checkpoint of that
iteration, so ASHA decides on real scores and a restarted trial (a lost node, a failed worker, a
resumed sweep) continues from its last report with its optimizer, RNG and carried states.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from lmgan import atomic
from lmgan.config import Config, apply_overrides, validate
from lmgan.errors import first_line, os_error_line
from lmgan.training import checkpoint
from lmgan.training.events import Samples, TrainingEvents
from lmgan.training.loop import LOSSES
from lmgan.training.run import open_run
from lmgan.sweep.plan import is_baseline
from lmgan.sweep.tracking import final_wait_s, link_or_copy
from lmgan.weights import cache_dir

CKPT_FILE = "ckpt.pt"
ORIGIN_FILE = "origin.json"      # beside it: which trial reported the checkpoint, with which values
LINEAGE_FILE = "lineage.json"    # in a trial's folder and on its run: the checkpoints it was cloned from
EXPLOIT = "lmgan.exploit."       # + 01, 02, ...: one tag per clone, its JSON on the trial's run
BASELINE = "lmgan.baseline"      # tag of the trial that runs the preset's own values


@dataclass(frozen=True)
class TrialSpec:
    """What every trial shares (the searched values come in Tune's config)."""
    sweep: str
    video: str                   # the video's name
    source_name: str             # file name of the source video (suffix kept for the decoder)
    source_sha: str              # content hash: trials verify what they received
    fixed: dict                  # config values that are not searched
    objective: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    searched: list = field(default_factory=list)
    threads: int = 1
    gpu_share: float = 0.0       # a fraction of a GPU per trial caps the trial's GPU memory
    baseline: dict | None = None # the preset's values of the searched keys (the first trial's)
    scheduled: list = field(default_factory=list)   # keys PBT may change: logged as schedule.<key>
    trials_dir: str = ""         # the sweep's folder in a local storage: <trial id>/lmgan is a run folder


def trial_run_dir(spec: TrialSpec, trial_id: str) -> Path:
    """The trial's lmgan run folder: beside its Tune checkpoints in a local storage, else in this
    node's cache. Not Tune's trial dir: a reused actor is given a scratch folder under Ray's session
    for each later trial, so a trial that pauses and resumes (PBT) would lose its folder."""
    root = Path(spec.trials_dir) if spec.trials_dir else cache_dir() / "trials" / spec.sweep
    return root / trial_id / "lmgan"


def trial_config(spec: TrialSpec, searched: dict) -> Config:
    return validate(apply_overrides(Config(), {**spec.fixed, **searched}, "trial"))


def materialise_source(spec: TrialSpec, video_bytes: bytes) -> Path:
    """The source video as a local file on this node, content-addressed in the lmgan cache, so
    worker nodes need no shared file system and the decoded-data cache is shared by trials."""
    folder = cache_dir() / "sources"
    path = folder / f"{spec.source_sha}{Path(spec.source_name).suffix or '.mp4'}"
    if not path.is_file():
        if hashlib.sha256(video_bytes).hexdigest() != spec.source_sha:
            raise RuntimeError(f"{spec.source_name}: the video received is not the one the sweep hashed")
        folder.mkdir(parents=True, exist_ok=True)
        with atomic.replacing(path) as tmp:
            Path(tmp).write_bytes(video_bytes)
    return path


class TuneEvents(TrainingEvents):
    """The Trainer's listener in a trial: losses → gauges + MLflow metrics; evaluations → MLflow
    + gauges; samples → MLflow artifacts; checkpoints → tune.report(metrics, checkpoint)."""

    def __init__(self, tracker, gauges, run_dir: Path, final_iter: int, setup_s: float = 0.0,
                 last_eval: dict | None = None, origin: dict | None = None, clone: dict | None = None):
        self.tracker, self.gauges, self.run_dir = tracker, gauges, run_dir
        self.final_iter = final_iter
        self.origin = origin or {}       # this trial and its values, written beside each checkpoint
        self.clone = clone               # said once, in the first report after a PBT clone
        self.last_eval: dict = last_eval or {}
        self.it_per_s = 0.0
        # Where a trial's time goes (lmgan.sweep.bench prints it): the adapter's own cost is
        # measured here, the rest of Trainer.run is lmgan's training and evaluation.
        self.times = {"setup": setup_s, "mlflow": 0.0, "tune": 0.0, "telemetry": 0.0}
        self.t_run = time.perf_counter()
        if self.last_eval:       # a restored trial shows its latest evaluation from the start
            gauges.on_eval(self.last_eval)

    @contextmanager
    def _timed(self, what: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.times[what] += time.perf_counter() - t0

    def on_log(self, record: dict) -> None:
        with self._timed("telemetry"):
            self.it_per_s = record["it_per_s"]
            self.gauges.on_log(record, LOSSES)
            self.tracker.metrics({k: record[k] for k in (*LOSSES, "it_per_s")}, record["iter"])

    def on_evaluated(self, record: dict) -> None:
        with self._timed("telemetry"):
            self.last_eval = eval_values(record)
            self.gauges.on_eval(self.last_eval)
            self.tracker.metrics(self.last_eval, record["iter"])

    def on_sampled(self, samples: Samples) -> None:
        with self._timed("telemetry"):
            for path in (samples.video, samples.grid, samples.motion):
                self.tracker.artifact(path, "samples")

    def on_checkpointed(self, iteration: int, path: Path) -> None:
        with self._timed("mlflow"):
            self.tracker.artifact(self.run_dir / "losses.png")
            if schedule := self.origin.get("schedule"):     # a PBT trial's values over iterations
                self.tracker.metrics({f"schedule.{k}": v for k, v in schedule.items()}, iteration)
            own = sum(v for k, v in self.times.items() if k != "setup")
            self.tracker.metrics({f"time_{k}_s": v for k, v in self.times.items()}
                                 | {"time_train_s": time.perf_counter() - self.t_run - own,
                                    "mlflow_failed_sends": self.tracker.failed_sends}, iteration)
            # The last report ends the trial (Tune stops its process right after): what could
            # not be sent yet is worth waiting for. Before, training goes on and retries later.
            self.tracker.flush(final_wait_s() if iteration >= self.final_iter else 0.0)
        with self._timed("tune"):
            self.report(iteration, path)

    def report(self, iteration: int, ckpt: Path) -> None:
        from ray import tune
        metrics = {"iter": iteration, "it_per_s": self.it_per_s, **self.last_eval}
        if self.clone:
            metrics["cloned"], self.clone = json.dumps(self.clone), None
        with tempfile.TemporaryDirectory(dir=self.run_dir) as d:
            link_or_copy(ckpt, Path(d) / CKPT_FILE)
            (Path(d) / ORIGIN_FILE).write_text(json.dumps({**self.origin, "iter": iteration}))
            self.tracker.save_unsent(Path(d))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


def train_trial(config: dict, spec: TrialSpec, video_bytes: bytes, weight_files: dict | None = None) -> None:
    """The Tune function trainable (bound with tune.with_parameters). `weight_files`: the
    pretrained weights the driver shipped (lmgan.sweep.ship); a trial never downloads one."""
    import ray
    from ray import tune

    from lmgan import weights
    from lmgan.sweep.ship import receive
    from lmgan.sweep.telemetry import TrialGauges
    from lmgan.sweep.tracking import TrialRun

    t_start = time.perf_counter()
    torch.set_num_threads(max(1, spec.threads))
    if 0 < spec.gpu_share < 1 and torch.cuda.is_available():
        # Trials sharing a GPU: one that outgrows its share fails alone with "out of memory"
        # instead of starving its neighbours (Ray's fractional GPUs do not limit memory).
        torch.cuda.set_per_process_memory_fraction(spec.gpu_share)
    logging.getLogger("ray.train").setLevel(logging.WARNING)   # one line per checkpoint otherwise
    ctx = tune.get_context()
    trial_id = ctx.get_trial_id()
    cfg = trial_config(spec, config)
    run_dir = trial_run_dir(spec, trial_id)

    # A tracking server that is down must not stall training in MLflow's own retry loop (minutes
    # of back-off): calls fail fast, TrialRun keeps what failed and sends it at the next report.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    number = re.fullmatch(r"t(\d+)", ctx.get_trial_name() or "")    # the driver's trial_name
    tracker = TrialRun(spec.tracking_uri, spec.experiment_id, spec.parent_run_id, spec.sweep,
                       trial_id, cfg.to_dict(), spec.searched, index=int(number.group(1)) if number else None)
    tracker.tag("lmgan.node_id", ray.get_runtime_context().get_node_id())
    tracker.tag("lmgan.pid", str(os.getpid()))      # which process to look at (or kill)
    if is_baseline(config, spec.baseline):
        tracker.tag(BASELINE, "true")
    trainer = gauges = None
    try:     # building the networks is where a too-big configuration usually runs out of memory
        restore, clone, lineage = None, None, _lineage(run_dir)
        if (restored := tune.get_checkpoint()) is not None:
            with restored.as_directory() as d:
                restore = checkpoint.load(Path(d) / CKPT_FILE)
                origin = _origin(Path(d))
                if origin.get("trial") in (None, trial_id):   # its own: a restart, a resumed sweep
                    tracker.take_back(Path(d), run_dir / "unsent")   # (a donor's unsent are the donor's)
                    lineage = _undo_clones(tracker, run_dir, lineage, origin.get("clones", 0))
                else:
                    clone = _clone(origin, run_dir, restore["iteration"], config, spec.scheduled)
        if clone is not None:     # (a clone restarted before its first report is recorded once)
            if not (lineage and _same_clone(lineage[-1], clone)):
                lineage = _record_clone(tracker, run_dir, lineage, clone)
            tracker.logged_up_to = clone["iter"] - 1    # the new lineage's values are logged again
        source = materialise_source(spec, video_bytes)
        with weights.given_only(receive(weight_files or {})):     # before any network is built
            trainer = open_run(run_dir, cfg, source, label=spec.video, restore=restore,
                               name=f"trial {trial_id}", progress=False)
        tracker.artifact(run_dir / "config.yaml")
        if restore is not None:
            tracker.tag("lmgan.restored_from", str(trainer.iteration))   # a restart continues there
        if spec.scheduled:     # where its schedule starts, or changes after a clone
            tracker.metrics({f"schedule.{k}": config[k] for k in spec.scheduled}, trainer.iteration)
        gauges = TrialGauges(spec.sweep, trial_id)     # re-sends its values until closed
        trainer.callbacks.append(TuneEvents(tracker, gauges, run_dir, cfg.iters,
                                            setup_s=time.perf_counter() - t_start,
                                            last_eval=last_eval(trainer.history),
                                            origin={"trial": trial_id, "values": dict(config),
                                                    "schedule": {k: config[k] for k in spec.scheduled},
                                                    "clones": len(lineage)},
                                            clone=clone))
        if trainer.iteration >= cfg.iters:   # restored at its end (from a snapshot older than its
            trainer.save_checkpoint()        # last report, a resumed sweep): tell Tune again
        trainer.run(progress=False)
    except SystemExit:       # Tune stopped the trial (ASHA, or max_iters reached): not an error
        done = trainer is not None and trainer.iteration >= cfg.iters
        tracker.finish("finished" if done else "stopped")
        raise
    except BaseException as e:
        tracker.fail(_reason(e), cfg.to_dict(), run_dir)
        raise
    finally:
        if gauges is not None:
            gauges.close()
    tracker.finish("finished")


def _origin(folder: Path) -> dict:
    """Who reported a Tune checkpoint ({} for one written before origins were recorded)."""
    try:
        return json.loads((folder / ORIGIN_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _lineage(run_dir: Path) -> list[dict]:
    try:
        return json.loads((run_dir / LINEAGE_FILE).read_text())
    except (OSError, ValueError):
        return []


def _clone(origin: dict, run_dir: Path, iteration: int, config: dict, scheduled: list) -> dict:
    """The exploit that handed this trial another trial's checkpoint (PBT). The trial's own
    checkpoints past the clone's iteration are another lineage now and are removed."""
    was = {}
    try:
        was = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        pass
    own = {p: checkpoint.iteration_of(p) for p in checkpoint.all_checkpoints(checkpoint.ckpt_dir(run_dir))}
    for p, it in own.items():
        if it > iteration:
            p.unlink(missing_ok=True)
    keys = scheduled or sorted(config)
    return {"iter": iteration, "at": max(own.values(), default=None), "from": origin["trial"],
            "was": {k: was[k] for k in keys if k in was},
            "donor": {k: origin.get("values", {}).get(k) for k in keys},
            "new": {k: config[k] for k in keys if k in config}}


def _same_clone(a: dict, b: dict) -> bool:
    """The same clone restarted (its process died before its first report)."""
    return (a["from"], a["iter"], a["new"]) == (b["from"], b["iter"], b["new"])


def _record_clone(tracker, run_dir: Path, lineage: list[dict], clone: dict) -> list[dict]:
    """One exploit on the trial's MLflow run (a numbered tag, the lineage file) and in its folder."""
    lineage = [*lineage, clone]
    _write_lineage(tracker, run_dir, lineage)
    tracker.tag(f"{EXPLOIT}{len(lineage):02d}", json.dumps(clone))
    return lineage


def _undo_clones(tracker, run_dir: Path, lineage: list[dict], kept: int) -> list[dict]:
    """A trial restored from its own checkpoint (a resumed sweep whose last snapshot predates a
    clone) continues the lineage that checkpoint had: later clones did not happen."""
    if len(lineage) <= kept:
        return lineage
    for n in range(kept + 1, len(lineage) + 1):
        tracker.delete_tag(f"{EXPLOIT}{n:02d}")
    _write_lineage(tracker, run_dir, lineage[:kept])
    return lineage[:kept]


def _write_lineage(tracker, run_dir: Path, lineage: list[dict]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(run_dir / LINEAGE_FILE, json.dumps(lineage, indent=1))
    tracker.artifact(run_dir / LINEAGE_FILE)


def is_out_of_memory(e: BaseException) -> bool:
    return isinstance(e, (torch.OutOfMemoryError, MemoryError)) or (
        isinstance(e, RuntimeError) and "DefaultCPUAllocator" in str(e) and "allocate" in str(e))


def eval_values(rec: dict) -> dict:
    """The metric values of an evaluation record of the loop's history."""
    return {k: v for k, v in rec.items() if k not in ("kind", "iter")}


def last_eval(history: list[dict]) -> dict:
    """The metric values of a run's latest evaluation ({} before the first)."""
    evals = [r for r in history if r["kind"] == "eval"]
    return eval_values(evals[-1]) if evals else {}


def _reason(e: BaseException) -> str:
    """The one line recorded on an errored trial's run. Running out of memory reads the same
    on the GPU (torch.OutOfMemoryError) and the CPU (the allocator's RuntimeError); a full disk
    is the line `lmgan train` prints for it (the file that could not be written and "no space
    left on device")."""
    if is_out_of_memory(e):
        return f"out of memory ({first_line(e, 300)})"
    if isinstance(e, OSError) and atomic.disk_full(e):
        return os_error_line(e)[:500]
    text = first_line(e) if str(e).strip() else ""
    return f"{e.__class__.__name__}: {text}"[:500]

