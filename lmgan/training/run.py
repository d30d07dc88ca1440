"""Opening a run: the one way `lmgan train`, `lmgan train --resume` and a Ray Tune trial start.

Each gets its data (the decoded cache, else the source video), a Trainer whose networks are built
before the run folder is touched (a configuration that does not fit leaves nothing behind), the
checkpoint it continues from, and the run's config.yaml. They differ only in where the config and
the checkpoint come from: the command line, the run's latest checkpoint, or Tune.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from lmgan import atomic
from lmgan.config import RESUMABLE_KEYS, Config, apply_overrides, validate
from lmgan.data.dataset import VideoData, load_cached, load_video_data
from lmgan.errors import LmganError
from lmgan.training import checkpoint
from lmgan.training.events import TrainingEvents
from lmgan.training.loop import Trainer


def open_run(run_dir: Path, cfg: Config, source: str | Path, *, label: str | None = None,
             restore: dict | None = None, callbacks: list[TrainingEvents] = (), name: str | None = None,
             progress: bool = True) -> Trainer:
    """A Trainer for `cfg` on `source`, continuing from the checkpoint dict `restore` if given.
    `label` is the video as config.yaml names it (a registry name, say; default the source)."""
    run_dir = Path(run_dir)
    data = _data(source, cfg, restore["data"]["key"] if restore else None, progress, run_dir)
    trainer = Trainer(cfg, data, run_dir, callbacks, name=name)
    if restore is not None:
        trainer.load_state_dict(restore)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(run_dir / "config.yaml",
                      yaml.safe_dump({"video": label or str(source), **cfg.to_dict()}, sort_keys=False))
    return trainer


def new_run(video: str | Path, cfg: Config, run_dir: Path, callbacks=(), progress=True) -> Trainer:
    """`lmgan train`: a fresh run in a folder that holds none."""
    run_dir = Path(run_dir)
    if checkpoint.all_checkpoints(checkpoint.ckpt_dir(run_dir)):
        raise LmganError(f"{run_dir}: already holds a run; resume it with --resume {run_dir} "
                         f"or choose another --out")
    return open_run(run_dir, cfg, video, callbacks=callbacks, progress=progress)


def resume_run(run_dir: Path, overrides: dict | None = None, callbacks=(), progress=True) -> Trainer:
    """`lmgan train --resume`: continue from the latest checkpoint; only RESUMABLE_KEYS may change."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or checkpoint.latest(checkpoint.ckpt_dir(run_dir)) is None:
        raise LmganError(f"{run_dir}: no run to resume (no checkpoints/ckpt_*.pt)")
    ck, latest = checkpoint.load_latest(checkpoint.ckpt_dir(run_dir))
    fixed = sorted(k for k in (overrides or {}) if k not in RESUMABLE_KEYS)
    if fixed:
        raise LmganError(f"--resume: {fixed[0]!r} cannot change in a resumed run "
                         f"(changeable: {', '.join(sorted(RESUMABLE_KEYS))})")
    cfg = validate(apply_overrides(apply_overrides(Config(), ck["config"], str(latest)), overrides or {}, "--set"))
    source = ck["data"]["source"]
    return open_run(run_dir, cfg, source, label=source, restore=ck, callbacks=callbacks, progress=progress)


def _data(source: str | Path, cfg: Config, key: str | None, progress: bool, run_dir: Path) -> VideoData:
    """A restored run's data comes from the cache when it is there, so its source file need not
    be; else the source is decoded, and must still be the video the run started on."""
    data = load_cached(key, cfg) if key else None
    if data is not None:
        return data
    if key and not Path(source).is_file():
        raise LmganError(f"{run_dir}: the decoded data is no longer cached and the source video {source} is gone")
    data = load_video_data(source, cfg, progress=progress)
    if key and data.key != key:
        raise LmganError(f"{source}: the file changed since this run started")
    return data
