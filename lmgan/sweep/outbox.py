"""What a trial has to tell MLflow and has not yet: metrics, tags, tag removals and files, sent
in batches. A send that fails keeps everything for the next try, so a tracking server that goes
away for a while loses nothing once it is back. What is still queued when the trial reports a
checkpoint is saved beside it (`save`): Tune may tear the trial's process down seconds later (an
ASHA stop, a lost node), and whoever restores that checkpoint sends it (`take_back`, `send_saved`).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from lmgan.errors import first_line
from lmgan.sweep.schema import UNSENT


class Outbox:
    def __init__(self, client, run_id: str):
        self.c, self.run_id = client, run_id
        self.metrics: list = []                  # mlflow.entities.Metric
        self.files: list[tuple[str, str | None]] = []    # (local path, artifact folder)
        self.tags: dict[str, str] = {}
        self.removed: set[str] = set()           # tags to delete
        self.failed_sends = 0                    # sends an outage made wait

    def __bool__(self) -> bool:
        return bool(self.metrics or self.files or self.tags or self.removed)

    def metric(self, key: str, value: float, step: int) -> None:
        from mlflow.entities import Metric
        self.metrics.append(Metric(key, float(value), int(time.time() * 1000), step))

    def tag(self, key: str, value: str) -> None:
        self.removed.discard(key)
        self.tags[key] = value

    def remove_tag(self, key: str) -> None:
        self.tags.pop(key, None)
        self.removed.add(key)

    def file(self, path: str | Path, folder: str | None = None) -> None:
        self.files.append((str(path), folder))

    def flush(self, wait_s: float = 0.0) -> bool:
        """Send what is queued; on failure keep it, say so, and try again for up to `wait_s`.
        True when nothing is left."""
        deadline, pause = time.monotonic() + wait_s, 1.0
        while not self._send() and time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(2 * pause, 30.0)
        return not self

    def _send(self) -> bool:
        try:
            log_metrics(self.c, self.run_id, self.metrics)
            self.metrics = []
            if self.tags:
                from mlflow.entities import RunTag
                self.c.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in self.tags.items()], synchronous=True)
                self.tags = {}
            for key in sorted(self.removed):
                try:
                    self.c.delete_tag(self.run_id, key)
                except Exception as e:      # a tag that is not there is removed already
                    if "RESOURCE_DOES_NOT_EXIST" not in str(e) and "No tag with name" not in str(e):
                        raise
                self.removed.discard(key)
            while self.files:
                path, folder = self.files[0]
                if Path(path).is_file():
                    self.c.log_artifact(self.run_id, path, folder)
                self.files.pop(0)
            return True
        except Exception as e:
            self.failed_sends += 1
            print(f"lmgan: MLflow logging failed, will retry ({first_line(e, 160)})", file=sys.stderr)
            return False

    # ------------------------------------------------------------------ beside a checkpoint
    def save(self, folder: Path) -> None:
        """Put the queued metrics and files into `folder`/UNSENT (a checkpoint about to be
        reported): hard links where the file system allows, no copies of large files."""
        if not (self.metrics or self.files):
            return
        out = Path(folder) / UNSENT
        files = []
        for i, (path, art_folder) in enumerate(dict.fromkeys(self.files)):
            if Path(path).is_file():
                dst = out / str(i) / Path(path).name
                dst.parent.mkdir(parents=True)
                link_or_copy(path, dst)
                files.append([str(dst.relative_to(out)), art_folder])
        out.mkdir(exist_ok=True)
        metrics = [[m.key, m.value, m.timestamp, m.step] for m in self.metrics]
        (out / "unsent.json").write_text(json.dumps({"metrics": metrics, "files": files}))

    def take_back(self, folder: Path, keep_in: Path) -> None:
        """A restarted trial queues again what its previous process left at `folder` (a restored
        checkpoint; its files are copied to `keep_in`, which outlives it)."""
        metrics, files = read_saved(self.c, self.run_id, folder)
        for rel, art_folder in files:
            dst = Path(keep_in) / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(folder) / UNSENT / rel, dst)
            self.files.append((str(dst), art_folder))
        self.metrics = metrics + self.metrics


def send_saved(c, run_id: str, folder: Path) -> int:
    """Send what a trial left at `folder`/UNSENT; what MLflow already has is skipped, so sending
    twice logs nothing twice. Returns the number of metric values sent."""
    metrics, files = read_saved(c, run_id, folder)
    log_metrics(c, run_id, metrics)
    for rel, art_folder in files:       # the same artifact path twice is one file: no duplicates
        c.log_artifact(run_id, str(Path(folder) / UNSENT / rel), art_folder)
    return len(metrics)


def read_saved(c, run_id: str, folder: Path) -> tuple[list, list]:
    """(metrics MLflow does not have yet, [relative file, artifact folder]) saved at `folder`."""
    from mlflow.entities import Metric
    path = Path(folder) / UNSENT / "unsent.json"
    if not path.is_file():
        return [], []
    saved = json.loads(path.read_text())
    metrics = [Metric(k, v, ts, step) for k, v, ts, step in saved["metrics"]]
    # Sending is in step order, per key: a value is in MLflow iff its step is at most the
    # newest step MLflow has for that key (a batch cut by the outage leaves a prefix).
    newest = {k: max((m.step for m in c.get_metric_history(run_id, k)), default=-1)
              for k in {m.key for m in metrics}}
    return [m for m in metrics if m.step > newest[m.key]], saved["files"]


def log_metrics(c, run_id: str, metrics: list) -> None:
    for i in range(0, len(metrics), 500):      # MLflow's limit per log_batch is 1000
        c.log_batch(run_id, metrics=metrics[i:i + 500], synchronous=True)


def link_or_copy(src, dst) -> None:
    """Put `src` at `dst` as a hard link where the file system allows, else as a copy."""
    import os
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
