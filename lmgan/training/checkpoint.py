"""Checkpoints: everything needed to resume exactly, written atomically, loaded without pickle.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so
`torch.load(weights_only=True)` reads it: loading an artifact can never run code. Files are
written to a temporary name, fsynced and renamed (lmgan.atomic); a run killed mid-write, or one
whose disk fills up, keeps its previous one.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import torch

from lmgan import atomic
from lmgan.errors import LmganError

FORMAT = "lmgan-checkpoint"
VERSION = 2   # 2: the authors' widths and critic layout (version-1 weights do not fit)
_NAME = re.compile(r"ckpt_(\d+)\.pt$")


def ckpt_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save(path: Path, payload: dict) -> Path:
    """Write a checkpoint durably (lmgan.atomic: temporary, fsync, rename, fsync the folder). On a
    full disk: OSError ENOSPC naming `path`, the previous checkpoints untouched, no temporary left."""
    path = Path(path)
    with atomic.replacing(path) as tmp, open(tmp, "wb") as f:
        # Into a Python file object, not a name: a short write then carries its errno (torch's
        # own stream reports only "unexpected pos").
        torch.save({"format": FORMAT, "version": VERSION, **payload}, f)
    return path


def load(path: str | Path) -> dict:
    """Read and check a checkpoint; LmganError if it is missing or not an lmgan checkpoint."""
    path = Path(path)
    if path.is_dir():
        return load_latest(path)[0]
    if not path.is_file():
        raise LmganError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated, corrupt, or a pickle of arbitrary objects
        raise LmganError(f"{path}: not a readable lmgan checkpoint ({e.__class__.__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise LmganError(f"{path}: not an lmgan checkpoint")
    if ckpt.get("version") != VERSION:
        raise LmganError(f"{path}: checkpoint version {ckpt.get('version')} is not supported (expected {VERSION})")
    return ckpt


def load_latest(folder: Path) -> tuple[dict, Path]:
    """The newest readable checkpoint of a run folder (or its checkpoints/ folder) and its path.

    A truncated or corrupt newest file (a disk that filled up, a copy cut short) is skipped with
    a warning and the one before it is used: that is what keeping the last N is for.
    """
    folder = Path(folder)
    found = all_checkpoints(folder) or all_checkpoints(ckpt_dir(folder))
    if not found:
        raise LmganError(f"{folder}: no checkpoint in this folder")
    for path in reversed(found):
        try:
            return load(path), path
        except LmganError as e:
            print(f"lmgan: warning: skipping {e}", file=sys.stderr)
    raise LmganError(f"{folder}: none of its {len(found)} checkpoints is readable")


def all_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints in a folder, oldest first."""
    if not Path(folder).is_dir():
        return []
    found = [(int(m.group(1)), p) for p in Path(folder).iterdir() if (m := _NAME.search(p.name))]
    return [p for _, p in sorted(found)]


def iteration_of(path: Path) -> int:
    """The iteration a checkpoint file holds, from its name."""
    return int(_NAME.search(Path(path).name).group(1))


def latest(folder: Path) -> Path | None:
    found = all_checkpoints(folder)
    return found[-1] if found else None


def prune(folder: Path, keep: int) -> None:
    for p in all_checkpoints(folder)[:-keep]:
        p.unlink(missing_ok=True)


def name_for(iteration: int) -> str:
    return f"ckpt_{iteration:07d}.pt"
