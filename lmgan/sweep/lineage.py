"""A PBT trial's lineage: which trials' checkpoints it continued from, and when.

Each Tune checkpoint a trial reports carries ORIGIN_FILE: the trial that reported it, the values
it trained with and how many clones its lineage had. When a trial is handed a checkpoint, the
origin says which case it is: its own (a restart, a resumed sweep: clones recorded after that
checkpoint did not happen and are undone) or another trial's (an exploit: recorded as an
`Exploit`, on its MLflow run as a numbered tag and in LINEAGE_FILE, in its folder and on its run).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from lmgan import atomic
from lmgan.sweep.schema import LINEAGE_FILE, ORIGIN_FILE, Exploit, exploit_tag
from lmgan.training import checkpoint


def write_origin(folder: Path, origin: dict) -> None:
    (Path(folder) / ORIGIN_FILE).write_text(json.dumps(origin))


def read_origin(folder: Path) -> dict:
    """Who reported a Tune checkpoint ({} for one written before origins were recorded)."""
    try:
        return json.loads((Path(folder) / ORIGIN_FILE).read_text())
    except (OSError, ValueError):
        return {}


def read_lineage(run_dir: Path) -> list[Exploit]:
    try:
        return [Exploit.from_dict(d) for d in json.loads((run_dir / LINEAGE_FILE).read_text())]
    except (OSError, ValueError):
        return []


def exploit_of(origin: dict, run_dir: Path, iteration: int, config: dict, scheduled: list) -> Exploit:
    """The exploit that handed this trial another trial's checkpoint of `iteration`. The trial's
    own checkpoints past that iteration belong to a lineage that ended and are removed."""
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
    return Exploit(iter=iteration, from_trial=origin["trial"], at=max(own.values(), default=None),
                   was={k: was[k] for k in keys if k in was},
                   donor={k: origin.get("values", {}).get(k) for k in keys},
                   new={k: config[k] for k in keys if k in config})


def record(tracker, run_dir: Path, lineage: list[Exploit], exploit: Exploit) -> list[Exploit]:
    """One more exploit, on the trial's MLflow run (a numbered tag, the lineage file) and in its
    folder; the same clone restarted before its first report is recorded once."""
    if lineage and lineage[-1].same_clone(exploit):
        return lineage
    lineage = [*lineage, exploit]
    _write(tracker, run_dir, lineage)
    tracker.tag(exploit_tag(len(lineage)), exploit.to_json())
    return lineage


def undo_after(tracker, run_dir: Path, lineage: list[Exploit], kept: int) -> list[Exploit]:
    """A trial restored from its own checkpoint (a resumed sweep whose last snapshot predates a
    clone) continues the lineage that checkpoint had: later clones did not happen."""
    if len(lineage) <= kept:
        return lineage
    for n in range(kept + 1, len(lineage) + 1):
        tracker.delete_tag(exploit_tag(n))
    _write(tracker, run_dir, lineage[:kept])
    return lineage[:kept]


def _write(tracker, run_dir: Path, lineage: list[Exploit]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(run_dir / LINEAGE_FILE, json.dumps([e.to_dict() for e in lineage], indent=1))
    tracker.artifact(run_dir / LINEAGE_FILE)
