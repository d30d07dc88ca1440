"""lmgan training as a Ray Tune function trainable: the loop's events become Tune reports with
checkpoints, MLflow metrics and artifacts, and Prometheus gauges. Nothing here changes training.

Each evaluation interval reports the held-out metrics together with the lmgan checkpoint of that
iteration, so ASHA decides on real scores and a restarted trial (a lost node, a failed worker, a
resumed sweep) continues from its last report with its optimizer, RNG and carried states.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lmgan import atomic
from lmgan.config import Config, apply_overrides, validate
from lmgan.errors import first_line, os_error_line
from lmgan.training import checkpoint
from lmgan.training.events import Samples, TrainingEvents
from lmgan.training.loop import LOSSES
from lmgan.training.run import open_run
from lmgan.sweep.lineage import exploit_of, read_lineage, read_origin, undo_after, write_origin
from lmgan.sweep.lineage import record as record_exploit
from lmgan.sweep.outbox import link_or_copy
from lmgan.sweep.plan import is_baseline
from lmgan.sweep.schema import (BASELINE, CKPT_FILE, EXPLOITED, FAILED_SENDS, FINISHED, IT_PER_S, ITER, NODE_ID, PID,
                                RESTORED_FROM, STOPPED, Exploit, schedule_metric, time_metric)
from lmgan.sweep.tracking import final_wait_s
from lmgan.weights import cache_dir



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
                 last_eval: dict | None = None, origin: dict | None = None, exploit: Exploit | None = None):
        self.tracker, self.gauges, self.run_dir = tracker, gauges, run_dir
        self.final_iter = final_iter
        self.origin = origin or {}       # this trial and its values, written beside each checkpoint
        self.exploit = exploit           # said once, in the first report after a PBT clone
        self.last_eval: dict = last_eval or {}
        self.it_per_s = 0.0
        # Where a trial's time goes (lmgan.bench.sweep_overhead prints it): the adapter's own cost is
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
            self.tracker.metrics({k: record[k] for k in (*LOSSES, IT_PER_S)}, record["iter"])

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
                self.tracker.metrics({schedule_metric(k): v for k, v in schedule.items()}, iteration)
            own = sum(v for k, v in self.times.items() if k != "setup")
            self.tracker.metrics({time_metric(k): v for k, v in self.times.items()}
                                 | {time_metric("train"): time.perf_counter() - self.t_run - own,
                                    FAILED_SENDS: self.tracker.failed_sends}, iteration)
            # The last report ends the trial (Tune stops its process right after): what could
            # not be sent yet is worth waiting for. Before, training goes on and retries later.
            self.tracker.flush(final_wait_s() if iteration >= self.final_iter else 0.0)
        with self._timed("tune"):
            self.report(iteration, path)

    def report(self, iteration: int, ckpt: Path) -> None:
        from ray import tune
        metrics = {ITER: iteration, IT_PER_S: self.it_per_s, **self.last_eval}
        if self.exploit:
            metrics[EXPLOITED], self.exploit = self.exploit.to_json(), None
        with tempfile.TemporaryDirectory(dir=self.run_dir) as d:
            link_or_copy(ckpt, Path(d) / CKPT_FILE)
            write_origin(Path(d), {**self.origin, "iter": iteration})
            self.tracker.save_unsent(Path(d))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


def train_trial(config: dict, spec: TrialSpec, video_bytes: bytes, weight_files: dict | None = None) -> None:
    """The Tune function trainable (bound with tune.with_parameters). `weight_files`: the
    pretrained weights the driver shipped (lmgan.sweep.ship); a trial never downloads one."""
    from ray import tune

    from lmgan import weights
    from lmgan.sweep.ship import receive
    from lmgan.sweep.telemetry import TrialGauges

    t_start = time.perf_counter()
    _limit_resources(spec)
    logging.getLogger("ray.train").setLevel(logging.WARNING)   # one line per checkpoint otherwise
    trial_id = tune.get_context().get_trial_id()
    cfg = trial_config(spec, config)
    run_dir = trial_run_dir(spec, trial_id)
    tracker = _open_run(spec, trial_id, cfg, config)
    trainer = gauges = None
    try:     # building the networks is where a too-big configuration usually runs out of memory
        restore, exploit, clones = _restored(tracker, spec, trial_id, run_dir, config)
        source = materialise_source(spec, video_bytes)
        with weights.given_only(receive(weight_files or {})):     # before any network is built
            trainer = open_run(run_dir, cfg, source, label=spec.video, restore=restore,
                               name=f"trial {trial_id}", progress=False)
        tracker.artifact(run_dir / "config.yaml")
        if restore is not None:
            tracker.tag(RESTORED_FROM, str(trainer.iteration))   # a restart continues there
        if spec.scheduled and exploit is None:     # where its schedule starts (a clone's: `_restored`)
            tracker.metrics({schedule_metric(k): config[k] for k in spec.scheduled}, trainer.iteration)
        gauges = TrialGauges(spec.sweep, trial_id)     # re-sends its values until closed
        trainer.callbacks.append(TuneEvents(tracker, gauges, run_dir, cfg.iters,
                                            setup_s=time.perf_counter() - t_start,
                                            last_eval=last_eval(trainer.history),
                                            origin={"trial": trial_id, "values": dict(config),
                                                    "schedule": {k: config[k] for k in spec.scheduled},
                                                    "clones": clones},
                                            exploit=exploit))
        if trainer.iteration >= cfg.iters:   # restored at its end (from a snapshot older than its
            trainer.save_checkpoint()        # last report, a resumed sweep): tell Tune again
        trainer.run(progress=False)
    except SystemExit:       # Tune stopped the trial (ASHA, or max_iters reached): not an error
        done = trainer is not None and trainer.iteration >= cfg.iters
        tracker.finish(FINISHED if done else STOPPED)
        raise
    except BaseException as e:
        tracker.fail(_reason(e), cfg.to_dict(), run_dir)
        raise
    finally:
        if gauges is not None:
            gauges.close()
    tracker.finish(FINISHED)


def _limit_resources(spec: TrialSpec) -> None:
    torch.set_num_threads(max(1, spec.threads))
    if 0 < spec.gpu_share < 1 and torch.cuda.is_available():
        # Trials sharing a GPU: one that outgrows its share fails alone with "out of memory"
        # instead of starving its neighbours (Ray's fractional GPUs do not limit memory).
        torch.cuda.set_per_process_memory_fraction(spec.gpu_share)


def _open_run(spec: TrialSpec, trial_id: str, cfg: Config, config: dict):
    """The trial's MLflow run (found again after a restart), tagged with where it runs."""
    import ray
    from ray import tune

    from lmgan.sweep.tracking import TrialRun

    # A tracking server that is down must not stall training in MLflow's own retry loop (minutes
    # of back-off): calls fail fast, the outbox keeps what failed and sends it at the next report.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    number = re.fullmatch(r"t(\d+)", tune.get_context().get_trial_name() or "")   # the driver's trial_name
    tracker = TrialRun(spec.tracking_uri, spec.experiment_id, spec.parent_run_id, spec.sweep,
                       trial_id, cfg.to_dict(), spec.searched, index=int(number.group(1)) if number else None)
    tracker.tag(NODE_ID, ray.get_runtime_context().get_node_id())
    tracker.tag(PID, str(os.getpid()))      # which process to look at (or kill)
    if is_baseline(config, spec.baseline):
        tracker.tag(BASELINE, "true")
    return tracker


def _restored(tracker, spec: TrialSpec, trial_id: str, run_dir: Path, config: dict):
    """(the lmgan checkpoint Tune hands this trial or None, the PBT clone that handed it or None,
    the number of clones in the trial's lineage now)."""
    from ray import tune

    lineage = read_lineage(run_dir)
    if (restored := tune.get_checkpoint()) is None:
        return None, None, len(lineage)
    with restored.as_directory() as d:
        ckpt = checkpoint.load(Path(d) / CKPT_FILE)
        origin = read_origin(Path(d))
        if origin.get("trial") in (None, trial_id):   # its own: a restart, a resumed sweep
            tracker.take_back(Path(d), run_dir / "unsent")   # (a donor's unsent are the donor's)
            lineage = undo_after(tracker, run_dir, lineage, origin.get("clones", 0))
            return ckpt, None, len(lineage)
    exploit = exploit_of(origin, run_dir, ckpt["iteration"], config, spec.scheduled)
    # The new lineage's values are logged again from the clone's iteration, its new schedule
    # there first: recording the exploit sends the tag and the schedule in one flush.
    tracker.rewind(exploit.iter)
    if spec.scheduled:
        tracker.metrics({schedule_metric(k): config[k] for k in spec.scheduled}, exploit.iter)
    lineage = record_exploit(tracker, run_dir, lineage, exploit)
    return ckpt, exploit, len(lineage)


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

