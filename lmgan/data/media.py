"""All PyAV decoding and encoding: the rest of lmgan sees numpy arrays and LmganError only.

Time is measured by presentation timestamps, never by frame or sample counts, so sources with
any frame rate (25, 29.97, 60, variable) and any audio start offset line up with each other.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np
import torch
import torch.nn.functional as F

from lmgan import atomic
from lmgan.errors import LmganError

AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)
_AV_ERRORS = (av.FFmpegError, OSError, UnicodeError)
_RESIZE_BATCH = 32  # frames resized together: bounds memory for 1080p crops


@dataclass
class Clip:
    frames: np.ndarray  # uint8 [T, S, S, 3] RGB at `fps`
    audio: np.ndarray  # float32 [N] mono at `sample_rate`; sample 0 is the time of output frame 0
    fps: float
    sample_rate: int


def _one_line(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


def _check_file(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise LmganError(f"{path}: file not found")
    if path.is_dir():
        raise LmganError(f"{path}: is a directory, expected a media file")
    if path.stat().st_size == 0:
        raise LmganError(f"{path}: file is empty (0 bytes)")
    return path


def _open(path):
    """Open for reading; a file FFmpeg cannot parse (corrupt, truncated, not media) is a user error."""
    path = _check_file(path)
    try:
        return av.open(str(path), metadata_errors="ignore")
    except _AV_ERRORS as e:
        reason = _one_line(e)
        raise LmganError(f"{path}: cannot decode media file (corrupt, truncated or not audio/video: {reason})") from None


def _video_stream(container):
    """Cover art in mp3/m4a shows up as a one-picture video stream; it is not video."""
    for s in container.streams.video:
        if not s.disposition & av.stream.Disposition.attached_pic:
            return s
    return None


def _audio_stream(container):
    return container.streams.audio[0] if container.streams.audio else None


def _duration(container, stream) -> float | None:
    if stream is not None and stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


# ---------------------------------------------------------------------------------------------
# Video in


def _crop_box(crop, width: int, height: int, path) -> tuple[int, int, int, int]:
    if crop is None:
        side = min(width, height)
        return (width - side) // 2, (height - side) // 2, side, side
    try:
        x, y, w, h = (int(v) for v in crop)
    except (TypeError, ValueError):
        raise LmganError(f"{path}: crop must be four integers (x, y, w, h), got {crop!r}") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise LmganError(f"{path}: crop box {(x, y, w, h)} does not lie inside the {width}x{height} frame")
    return x, y, w, h


def _resize(crops: list[np.ndarray], size: int) -> np.ndarray:
    """Antialiased bilinear resize of a batch of uint8 HWC images to size x size."""
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


class _Resampled:
    """Picks, for each output time t/fps, the latest source frame whose pts time <= t/fps."""

    def __init__(self, fps: float, box, size: int):
        self.fps, self.box, self.size = fps, box, size
        self.t0 = None  # time of the first decoded frame
        self.prev = None  # (relative time, frame) of the latest source frame
        self.prev_rgb = None
        self.n = 0  # output frames emitted so far
        self.pending: list[np.ndarray] = []
        self.out: list[np.ndarray] = []

    def _emit_prev(self):
        if self.prev_rgb is None:
            x, y, w, h = self.box
            rgb = self.prev[1].to_ndarray(format="rgb24")
            self.prev_rgb = rgb[y : y + h, x : x + w].copy()  # lets the full frame go
        self.pending.append(self.prev_rgb)
        self.n += 1
        if len(self.pending) >= _RESIZE_BATCH:
            self.out.append(_resize(self.pending, self.size))
            self.pending = []

    def _emit_until(self, t: float, limit: int | None = None):
        # 1e-6 s slack: pts time exactly on an output instant means "already displayed".
        while self.prev is not None and self.n / self.fps < t - 1e-6 and (limit is None or self.n < limit):
            self._emit_prev()

    def push(self, frame, t: float):
        if self.t0 is None:
            self.t0 = t
        t -= self.t0
        self._emit_until(t)
        self.prev, self.prev_rgb = (t, frame), None

    def finish(self, end: float) -> np.ndarray:
        """`end`: relative time at which the last source frame stops being displayed."""
        total = int(np.floor(end * self.fps + 1e-6))
        self._emit_until(float("inf"), limit=total)
        if self.pending:
            self.out.append(_resize(self.pending, self.size))
        frames = np.concatenate(self.out) if self.out else np.zeros((0, self.size, self.size, 3), np.uint8)
        return frames[:total]


def read_video(path, fps=20.0, size=128, crop=None, sample_rate=16000, progress=False) -> Clip:
    """Decode video and sound in one demux pass, resampled by timestamps to `fps` and `sample_rate`.

    One pass because sources may be minutes of 1080p; only kept frames become arrays. A crop box
    that is not square is stretched to size x size. Sound before the first video frame is dropped,
    a late start is zero-padded, so audio sample 0 is the time of output frame 0.
    """
    path = Path(path)
    with _open(path) as container:
        vs, aus = _video_stream(container), _audio_stream(container)
        if vs is None:
            raise LmganError(f"{path}: no video stream (an audio-only file?)")
        if aus is None:
            raise LmganError(f"{path}: no audio track")
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        if not rate or rate <= 0 or not vs.time_base:
            raise LmganError(f"{path}: video stream has no usable frame rate or time base")
        cc = vs.codec_context
        box = _crop_box(crop, cc.width, cc.height, path)
        vs.thread_type = "AUTO"
        declared = _duration(container, vs)

        picked = _Resampled(float(fps), box, int(size))
        resampler = Resampler(sample_rate, "mono")
        audio, audio_t0 = [], None
        last_t, last_dur, n_seen = None, 1.0 / float(rate), 0
        bar = None
        if progress:
            from tqdm import tqdm

            total = _duration(container, None)
            bar = tqdm(total=int(np.ceil(total)) if total else None, unit="s", desc=path.name, leave=False)
        try:
            for packet in container.demux(vs, aus):
                for frame in packet.decode():
                    if packet.stream is aus:
                        if audio_t0 is None and frame.time is not None:
                            audio_t0 = frame.time
                        audio.append(resampler(frame)[0])
                        continue
                    if frame.time is None:
                        raise LmganError(f"{path}: video frames carry no timestamps")
                    if bar is not None and picked.t0 is not None:
                        bar.update(max(0, int(frame.time - picked.t0) - bar.n))  # whole seconds
                    picked.push(frame, frame.time)
                    n_seen += 1
                    if getattr(frame, "duration", None) and frame.time_base:
                        last_dur = float(frame.duration * frame.time_base)
                    elif n_seen > 1 and frame.time > picked.t0:
                        last_dur = (frame.time - picked.t0) / (n_seen - 1)  # none stored: mean gap
                    last_t = frame.time
            audio.append(resampler(None)[0])
        except _AV_ERRORS as e:
            reason = _one_line(e)
            raise LmganError(f"{path}: decoding failed, file is corrupt or truncated ({reason})") from None
        finally:
            if bar is not None:
                bar.close()

    if picked.t0 is None:
        raise LmganError(f"{path}: no decodable video frames (corrupt or truncated file?)")
    end = last_t - picked.t0 + last_dur
    if declared and end < 0.9 * declared - 0.5:  # generous: some containers only estimate it
        raise LmganError(f"{path}: truncated file: video stops at {end:.1f} s of {declared:.1f} s")
    frames = picked.finish(end)
    if len(frames) == 0:
        raise LmganError(f"{path}: video is shorter than one frame at {fps} fps")

    wave = np.concatenate(audio) if audio else np.zeros(0, np.float32)
    offset = round(((audio_t0 if audio_t0 is not None else picked.t0) - picked.t0) * sample_rate)
    wave = np.concatenate([np.zeros(offset, np.float32), wave]) if offset > 0 else wave[-offset:]
    n = round(len(frames) / fps * sample_rate)
    wave = np.pad(wave[:n], (0, max(0, n - len(wave))))
    wave = wave.astype(np.float32, copy=False)
    return Clip(frames=frames, audio=wave, fps=float(fps), sample_rate=int(sample_rate))


# ---------------------------------------------------------------------------------------------
# Audio in


class AudioSource:
    """Streaming decode of the first audio stream of any file, so arbitrarily long sound fits."""

    def __init__(self, path):
        self.path = Path(path)
        self._container = _open(self.path)
        self._stream = _audio_stream(self._container)
        if self._stream is None:
            self._container.close()
            raise LmganError(f"{self.path}: no audio stream")
        self.rate: int = int(self._stream.rate or self._stream.codec_context.sample_rate)
        self.channels: int = int(self._stream.codec_context.layout.nb_channels)
        self.duration: float | None = _duration(self._container, self._stream)

    def frames(self) -> Iterator[av.AudioFrame]:
        """Single pass over the decoded frames in order."""
        try:
            for packet in self._container.demux(self._stream):
                for frame in packet.decode():
                    yield frame
        except _AV_ERRORS as e:
            reason = _one_line(e)
            raise LmganError(f"{self.path}: audio decoding failed, file is corrupt or truncated ({reason})") from None

    def close(self):
        self._container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Resampler:
    """Stateful libswresample wrapper: resampling block by block equals resampling the whole.

    If the input format changes mid-stream (some mp3/ogg files do), the old filter is flushed and
    a new one started, rather than failing (or, in PyAV's passthrough mode, passing it unconverted).
    """

    def __init__(self, rate: int, layout: str = "mono"):
        self.rate, self.layout = int(rate), layout
        self.channels = av.AudioLayout(layout).nb_channels
        self._r = av.AudioResampler(format="fltp", layout=layout, rate=self.rate)
        self._input = None  # (format, layout, rate) of the frames the filter was set up for

    def __call__(self, frame: av.AudioFrame | None) -> np.ndarray:
        out = []
        if frame is not None:
            key = (frame.format.name, frame.layout.name, frame.sample_rate)
            if self._input is not None and key != self._input:
                out += self._r.resample(None)
                self._r = av.AudioResampler(format="fltp", layout=self.layout, rate=self.rate)
            self._input = key
        out += self._r.resample(frame)
        arrays = [f.to_ndarray() for f in out]
        if not arrays:
            return np.zeros((self.channels, 0), np.float32)
        return np.concatenate(arrays, axis=1).astype(np.float32, copy=False)


def read_audio(path, sample_rate=16000) -> np.ndarray:
    """Whole file as float32 [N] mono at `sample_rate`."""
    resampler = Resampler(sample_rate, "mono")
    with AudioSource(path) as src:
        parts = [resampler(f)[0] for f in src.frames()]
    parts.append(resampler(None)[0])
    return np.concatenate(parts).astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------------------
# Video out


class VideoWriter:
    """Streams frames and sound into an mp4 (H.264 yuv420p + AAC), atomically.

    Writes to a hidden temp file beside `path` and commits it on a clean close (lmgan.atomic:
    fsync, rename, fsync the folder), so a crash or an exception never leaves a half-written file
    at `path` nor destroys an earlier one. A full disk is an OSError (ENOSPC) naming `path`.
    """

    def __init__(self, path, fps, width, height, audio_rate=None, audio_channels=1, crf=18,
                 deterministic=False):
        if width % 2 or height % 2:
            raise ValueError(f"H.264 yuv420p needs even width and height, got {width}x{height}")
        if audio_rate is not None and int(audio_rate) not in AAC_RATES:
            raise ValueError(f"AAC does not support a sample rate of {audio_rate} Hz")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.parent / f".{self.path.name}.{uuid.uuid4().hex[:8]}.tmp.mp4"
        self._closed = False
        self._rate = Fraction(fps).limit_denominator(1001)
        self._nframes = 0
        try:    # fail here, naming the folder, not at the first frame inside FFmpeg (no file name)
            self.tmp.touch(exist_ok=False)
        except OSError as e:
            if e.errno in atomic.DISK_FULL:
                raise atomic.disk_full_error(self.path, e.errno) from None
            raise LmganError(f"{self.path.parent}: cannot write {self.path.name} there "
                             f"({(e.strerror or str(e)).lower()})") from None
        self._container = av.open(str(self.tmp), "w", format="mp4")
        try:
            self._video = self._container.add_stream("libx264", rate=self._rate)
            self._video.width, self._video.height = int(width), int(height)
            self._video.pix_fmt = "yuv420p"
            self._video.codec_context.time_base = 1 / self._rate
            # One x264 thread: with frame threads its output depended on timing here (the same
            # frames encoded twice differed by up to 5 levels). Its assembly paths still gave 6
            # different files in 8 encodes of the same frames on a busy 2-core machine; without
            # them (asm=0) every encode is the same, 4x slower: `deterministic` asks for that,
            # for files a seed must reproduce (the demo clip).
            self._video.options = {"crf": str(crf), "threads": "1",
                                   **({"x264-params": "asm=0"} if deterministic else {})}
            self._audio = None
            if audio_rate is not None:
                self._layout = {1: "mono", 2: "stereo"}.get(audio_channels)
                if self._layout is None:
                    raise ValueError(f"audio_channels must be 1 or 2, got {audio_channels}")
                self._audio = self._container.add_stream("aac", rate=int(audio_rate), layout=self._layout)
                self._audio.format = "fltp"
                self._audio_rate = int(audio_rate)
                self._fifo = av.AudioFifo()
                self._nsamples = 0
        except BaseException:
            self.abort()
            raise

    def _mux(self, stream, frame):
        try:
            with atomic.naming_full_disk(self.path):     # FFmpeg names the temporary
                self._container.mux(stream.encode(frame))
        except OSError as e:
            if e.errno in atomic.DISK_FULL:
                self.abort()                             # give back the space at once
            raise

    def add_frames(self, frames: np.ndarray):
        """uint8 [n, H, W, 3] RGB."""
        for rgb in np.asarray(frames, dtype=np.uint8):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = self._nframes, 1 / self._rate
            self._nframes += 1
            self._mux(self._video, frame)

    def _encode_fifo(self, final=False):
        size = self._audio.codec_context.frame_size or 1024
        while self._fifo.samples >= size or (final and self._fifo.samples):
            frame = self._fifo.read(min(size, self._fifo.samples))
            frame.pts, frame.time_base = self._nsamples, Fraction(1, self._audio_rate)
            self._nsamples += frame.samples
            self._mux(self._audio, frame)

    def add_audio(self, samples: np.ndarray):
        """float32 [C, n] (or [n] for mono) at audio_rate, any block size."""
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim == 1:
            samples = samples[None]
        if samples.shape[1] == 0:
            return
        samples = np.ascontiguousarray(np.clip(samples, -1, 1))
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=self._layout)
        frame.sample_rate = self._audio_rate
        self._fifo.write(frame)
        self._encode_fifo()

    def close(self):
        """Flush the encoders, then commit the file (fsync, rename, fsync the folder); on any
        failure remove the temp file."""
        if self._closed:
            return
        try:
            with atomic.naming_full_disk(self.path):
                if self._audio is not None:
                    self._encode_fifo(final=True)
                    self._mux(self._audio, None)
                self._mux(self._video, None)
                self._container.close()
                atomic.commit(self.tmp, self.path)
            self._closed = True
        except BaseException:
            self.abort()
            raise

    def abort(self):
        """Drop everything written so far; whatever was at `path` stays."""
        self._closed = True
        try:
            self._container.close()
        except Exception:
            pass
        self.tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_video(path, frames, fps, audio=None, sample_rate=None):
    """One-call mp4 writer; audio is float32 [N] or [C, N] at sample_rate."""
    frames = np.asarray(frames)
    channels = 1
    if audio is not None:
        if sample_rate is None:
            raise ValueError("write_video: audio given without sample_rate")
        audio = np.asarray(audio, dtype=np.float32)
        audio = audio[None] if audio.ndim == 1 else audio
        channels = audio.shape[0]
    rate = sample_rate if audio is not None else None
    with VideoWriter(path, fps, frames.shape[2], frames.shape[1], rate, channels) as w:
        w.add_frames(frames)
        if audio is not None:
            w.add_audio(audio)


# ---------------------------------------------------------------------------------------------
# Inspection


def probe(path) -> dict:
    """Cheap facts about a media file, without decoding it."""
    path = Path(path)
    with _open(path) as container:
        vs, aus = _video_stream(container), _audio_stream(container)
        rate = (vs.average_rate or vs.guessed_rate) if vs is not None else None
        return {
            "duration": _duration(container, None) or _duration(container, vs or aus),
            "fps": float(rate) if rate else None,
            "width": vs.codec_context.width if vs is not None else None,
            "height": vs.codec_context.height if vs is not None else None,
            "has_video": vs is not None,
            "has_audio": aus is not None,
            "audio_rate": int(aus.rate) if aus is not None else None,
        }


def file_sha256(path) -> str:
    """Content hash for cache keys; streamed in 1 MiB blocks so big videos do not fill memory."""
    path = _check_file(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
