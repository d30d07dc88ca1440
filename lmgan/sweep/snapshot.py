"""Mending Tune's experiment snapshot before a killed sweep resumes.

Tune writes its experiment snapshot every few seconds, and deletes a trial's checkpoints that
fall out of its best `num_to_keep` as soon as a newer one is registered. A driver killed between
the two leaves a snapshot that names a checkpoint no longer on disk, and Tune's restore errors
the trial ("does not exist on storage anymore"). Every checkpoint of a trial holds its whole
lmgan state, so the trial's newest checkpoint can stand in for the deleted one: the trial then
continues from further on, which is what it would have done had the snapshot been newer.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

CHECKPOINT = re.compile(r"checkpoint_\d{6}")


def _strings(node):
    """Every string in a parsed snapshot entry, Tune's cloudpickled values decoded as text."""
    if isinstance(node, dict):
        if node.get("_type") == "CLOUDPICKLE_FALLBACK" and isinstance(node.get("value"), str):
            yield bytes.fromhex(node["value"]).decode("latin-1")
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


def mend_missing_checkpoints(experiment: Path) -> list[str]:
    """Put the trial's newest checkpoint (hard links, no copy where the file system allows)
    wherever the latest snapshot names a checkpoint that is gone; returns what it mended."""
    states = sorted(Path(experiment).glob("experiment_state-*.json"))
    if not states:
        return []
    mended = []
    for entry in json.loads(states[-1].read_text()).get("trial_data", []):
        parts = [json.loads(part) for part in entry]        # the trial, and its run metadata
        folder = Path(experiment) / str(parts[0].get("trial_id"))
        if not folder.is_dir():
            continue
        named = {name for s in _strings(parts) for name in CHECKPOINT.findall(s)}
        present = sorted(p.name for p in folder.glob("checkpoint_*") if p.is_dir())
        for name in sorted(named - set(present)):
            if present and present[-1] > name:
                _link_tree(folder / present[-1], folder / name)
                mended.append(f"{folder.name}/{name} (from {present[-1]})")
    return mended


def _link_tree(src: Path, dst: Path) -> None:
    def link(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)
    tmp = dst.with_name(f".{dst.name}.mending")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, copy_function=link)
    os.replace(tmp, dst)
