"""One source video → decoded frames + sound features, cached on disk as Arrow IPC files.

The cache is keyed by the file's content hash and the data settings (Config.data_key), so the
next run, or the next trial of a sweep on the same machine, memory-maps it instead of decoding.
Entries are written to a temporary folder, fsynced and renamed into place (lmgan.atomic): a
killed decode or a full disk leaves no half-written entry, and concurrent trials racing to write
the same key are harmless.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from lmgan import atomic, weights
from lmgan.config import Config
from lmgan.data import media
from lmgan.data.features import SoundFeatures
from lmgan.errors import LmganError

CACHE_VERSION = 2   # 2: chunk-relative (gain-invariant) log-mel and mfcc


@dataclass
class VideoData:
    frames: torch.Tensor     # uint8 [T, S, S, 3]
    feats: torch.Tensor      # float32 [T, F], un-normalised
    audio: np.ndarray        # float32 [N] mono at sample_rate; sample 0 = frame 0
    fps: float
    sample_rate: int
    n_train: int             # frames 0 … n_train-1 train; the rest is held out
    key: str                 # cache key: content hash + data settings
    source: str
    cached: bool             # True when this load was served from the cache

    @property
    def n_frames(self) -> int:
        return self.frames.shape[0]

    def heldout_starts(self, seq_len: int, limit: int = 0) -> list[int]:
        """Starts of consecutive non-overlapping held-out windows (the last 20 %)."""
        n = (self.n_frames - self.n_train) // seq_len
        if limit:
            n = min(n, limit)
        return [self.n_train + k * seq_len for k in range(n)]

    def heldout_key(self, seq_len: int, limit: int = 0) -> str:
        """Names the real windows heldout_starts gives (cached real-video statistics are keyed
        by it): the video's data key and the windowing."""
        return f"{self.key}-L{seq_len}-w{limit}"

    def audio_span(self, start: int, n: int) -> np.ndarray:
        """The sound of frames start … start+n-1."""
        a = round(start / self.fps * self.sample_rate)
        b = round((start + n) / self.fps * self.sample_rate)
        return self.audio[a:b]

    def feature_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-bin mean and std over the training part: the model's input normalisation."""
        f = self.feats[: self.n_train]
        return f.mean(0), f.std(0).clamp_min(1e-3)


def cache_key(path: str | Path, cfg: Config) -> str:
    settings = json.dumps({"v": CACHE_VERSION, **cfg.data_key()}, sort_keys=True)
    digest = media.file_sha256(path)
    return f"{digest[:16]}-{hashlib.sha256(settings.encode()).hexdigest()[:12]}"


def load_video_data(path: str | Path, cfg: Config, progress: bool = True, key: str | None = None) -> VideoData:
    """Decode (or load from the cache) a source video and check it holds one window of each part."""
    path = Path(path)
    key = key or cache_key(path, cfg)
    entry = weights.cache_dir() / "data" / key
    cached = (entry / "meta.json").is_file()
    if not cached:
        clip = media.read_video(path, fps=cfg.fps, size=cfg.image_size, crop=cfg.crop,
                                sample_rate=cfg.sample_rate, progress=progress)
        feats = SoundFeatures(cfg)(clip.audio, 0, len(clip.frames)).numpy()
        _write_entry(entry, clip.frames, feats, clip.audio, {"source": str(path), **cfg.data_key()})
    data = _read_entry(entry, cfg, key, str(path), cached)
    _check_length(data, cfg, path)
    return data


def load_cached(key: str, cfg: Config) -> VideoData | None:
    """The cached entry for key, or None (resume uses it so the source file need not be present)."""
    entry = weights.cache_dir() / "data" / key
    if not (entry / "meta.json").is_file():
        return None
    meta = json.loads((entry / "meta.json").read_text())
    return _read_entry(entry, cfg, key, meta.get("source", ""), True)


def _check_length(data: VideoData, cfg: Config, path: Path) -> None:
    n_held = data.n_frames - data.n_train
    if data.n_train < cfg.seq_len or n_held < cfg.seq_len:
        need = cfg.seq_len / min(cfg.train_frac, 1 - cfg.train_frac) / cfg.fps
        raise LmganError(
            f"{path}: clip too short: {data.n_frames / cfg.fps:.1f} s gives {data.n_train} training "
            f"and {n_held} held-out frames, but seq_len={cfg.seq_len} needs {cfg.seq_len} of each "
            f"(at least {need:.1f} s)")


def _write_entry(entry: Path, frames: np.ndarray, feats: np.ndarray, audio: np.ndarray, meta: dict) -> None:
    """Write a cache entry as a temporary folder and commit it (lmgan.atomic: its files and the
    folder fsynced, renamed, the cache folder fsynced). On any failure the temporary goes; a full
    disk is an OSError (ENOSPC) naming the entry."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.parent / f".{entry.name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with atomic.naming_full_disk(entry):
            tmp.mkdir()
            t, s = frames.shape[0], frames.shape[1]
            table = pa.table({
                "frame": pa.FixedSizeBinaryArray.from_buffers(
                    pa.binary(s * s * 3), t, [None, pa.py_buffer(np.ascontiguousarray(frames))]),
                "feature": pa.FixedSizeListArray.from_arrays(pa.array(feats.reshape(-1), pa.float32()),
                                                             feats.shape[1]),
            })
            with pa.OSFile(str(tmp / "frames.arrow"), "wb") as f, pa.ipc.new_file(f, table.schema) as w:
                w.write_table(table)
            audio_table = pa.table({"audio": pa.array(audio.astype(np.float32))})
            with pa.OSFile(str(tmp / "audio.arrow"), "wb") as f, pa.ipc.new_file(f, audio_table.schema) as w:
                w.write_table(audio_table)
            (tmp / "meta.json").write_text(json.dumps({**meta, "frames": t, "size": s, "samples": len(audio)}))
            try:
                atomic.commit(tmp, entry)
            except OSError:
                if not (entry / "meta.json").is_file():
                    raise
                # another process wrote the same entry first: theirs is as good as ours
    finally:
        shutil.rmtree(tmp, ignore_errors=True)     # gone already where the commit renamed it


def _read_entry(entry: Path, cfg: Config, key: str, source: str, cached: bool) -> VideoData:
    table = pa.ipc.open_file(pa.memory_map(str(entry / "frames.arrow"))).read_all().combine_chunks()
    t, s = table.num_rows, cfg.image_size
    frame_buf = table.column("frame").chunk(0).buffers()[1]
    frames = np.frombuffer(frame_buf, dtype=np.uint8, count=t * s * s * 3).reshape(t, s, s, 3)
    feats = table.column("feature").chunk(0).flatten().to_numpy().reshape(t, -1)
    audio = pa.ipc.open_file(pa.memory_map(str(entry / "audio.arrow"))).read_all().column("audio")
    audio = audio.to_numpy().astype(np.float32, copy=False)
    n_train = int(t * cfg.train_frac + 1e-9)   # the first train_frac of the time (1e-9: 10 × 0.7 is 6.99…)
    feats = _training_feats_hear_training_sound(feats.copy(), audio, cfg, n_train)
    return VideoData(frames=torch.from_numpy(frames.copy()), feats=torch.from_numpy(feats),
                     audio=audio, fps=cfg.fps, sample_rate=cfg.sample_rate, n_train=n_train,
                     key=key, source=source, cached=cached)


def _training_feats_hear_training_sound(feats: np.ndarray, audio: np.ndarray, cfg: Config,
                                         n_train: int) -> np.ndarray:
    """The training frames' features from the training sound only (samples before time
    n_train / fps), the held-out sound taken as silence.

    A frame's chunk reaches up to half a chunk past its time (docs/model.md), so the cached
    features of the last training frames may read the first milliseconds of the held-out sound:
    not at 20 fps with the default chunk (42.5 ms of a 50 ms frame), but 2.5 ms at 25 fps and
    more at 30. Those frames are recomputed here, where the boundary is known (train_frac is not
    part of the cache key), so no training window ever hears the held-out part.
    """
    fx = SoundFeatures(cfg)
    end = math.ceil(n_train * cfg.sample_rate / cfg.fps - 1e-9)   # first held-out sample
    first = n_train
    while first > 0 and fx.samples_needed(first - 1) > end:
        first -= 1
    if first < n_train:
        lo = max(0, fx.first_sample(first))
        feats[first:n_train] = fx(audio[lo:end].copy(), first, n_train - first, offset=lo).numpy()
    return feats


class TrainStreams:
    """`batch` streams, each walking the training part one window after the next.

    Consecutive windows of a stream are consecutive in time, so recurrent states carried from one
    window to the next (truncated back-propagation) see continuous motion. A stream that reaches
    the end of the training part restarts at a random phase in [0, L) and its states are reset.
    With `restart_every` = k > 0 a stream also restarts, from zero states at a random place,
    after k windows: evaluation and rendering start from zero states, and a model that meets them
    once per pass through the video (every 60 windows of the demo) draws its first frames
    washed out. Streams start spread evenly over the training part.
    """

    def __init__(self, n_train: int, seq_len: int, batch: int, seed: int, restart_every: int = 0):
        self.n_train, self.seq_len, self.restart_every = n_train, seq_len, restart_every
        self.gen = torch.Generator().manual_seed(seed)
        span = max(1, (n_train - seq_len) // batch)
        self.pos = [min(b * span, n_train - seq_len) for b in range(batch)]
        self.fresh = [True] * batch
        self.walked = [0] * batch

    def next(self) -> tuple[list[int], list[bool]]:
        """Window starts for this step, and which streams start from zero states."""
        starts, reset = [], []
        for b, p in enumerate(self.pos):
            if self.restart_every and self.walked[b] >= self.restart_every:
                p = int(torch.randint(self.n_train - self.seq_len + 1, (), generator=self.gen))
                self.fresh[b] = True
            elif p + self.seq_len > self.n_train:
                hi = min(self.seq_len, self.n_train - self.seq_len + 1)
                p = int(torch.randint(hi, (), generator=self.gen))
                self.fresh[b] = True
            if self.fresh[b]:
                self.walked[b] = 0
            starts.append(p)
            reset.append(self.fresh[b])
            self.fresh[b] = False
            self.walked[b] += 1
            self.pos[b] = p + self.seq_len
        return starts, reset

    def state_dict(self) -> dict:
        return {"pos": list(self.pos), "fresh": list(self.fresh), "walked": list(self.walked),
                "gen": self.gen.get_state()}

    def load_state_dict(self, sd: dict) -> None:
        self.pos, self.fresh = list(sd["pos"]), list(sd["fresh"])
        self.walked = list(sd.get("walked", [0] * len(self.pos)))
        self.gen.set_state(sd["gen"])
