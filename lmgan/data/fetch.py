"""`lmgan fetch NAME`: download a named video of the registry (lmgan/data/videos.py) with yt-dlp
into the data folder, trimmed with PyAV.

Choices:
- Downloads pick a single file that has both sound and picture: these machines have no ffmpeg
  binary, so yt-dlp cannot merge separate audio and video streams.
- A trim (start/end) is re-encoded through lmgan.data.media (H.264 + AAC at the source's frame
  rate and size): stream copy cannot cut between keyframes, and the trimmed file must start at
  `start`, not at the keyframe before it.
- Every file reaches its final name by a rename, so an interrupted fetch never leaves half a
  video where training would find it.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from lmgan.data.videos import (DEMO, choose_crop, data_dir, demo_entry, demo_video_path,
                               known_names, load_registry, looks_like_path, registry_path,
                               supply_message, unknown_video)
from lmgan.errors import LmganError

# yt-dlp: one file with both streams (no ffmpeg to merge), mp4 preferred (H.264/AAC, no re-encode).
FORMAT = "best[ext=mp4][acodec!=none][vcodec!=none]/best[acodec!=none][vcodec!=none]/best"
_OFFLINE = ("failed to resolve", "name or service not known", "temporary failure in name resolution",
            "nodename nor servname", "network is unreachable", "no route to host",
            "getaddrinfo failed", "no address associated")


class _Log:
    """yt-dlp's logger: keeps errors for our one-line message, prints nothing."""

    def __init__(self):
        self.errors: list[str] = []

    def debug(self, msg):
        pass

    info = warning = debug

    def error(self, msg):
        self.errors.append(str(msg))


def _reason(message: str) -> str:
    """yt-dlp's error (often several lines with a chained cause) as a short phrase."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", message)
    low = text.lower()
    if any(s in low for s in _OFFLINE):
        return "no network connection (offline?)"
    if "connection refused" in low:
        return "connection refused (offline, or nothing serves that address?)"
    if "timed out" in low:
        return "the connection timed out (offline or a very slow network?)"
    text = re.sub(r"^\s*ERROR:\s*", "", text)
    text = re.sub(r"^\[[^\]]+\]\s*[^:\s]*:\s*", "", text)  # "[youtube] R-Tk7-Ytes4: "
    text = " ".join(text.split(" (caused by")[0].split())
    return (text[:200] + "...") if len(text) > 200 else (text or "download failed")


def _download(name: str, url: str, work: Path, dest: Path, progress: bool) -> Path:
    """Download `url` into the folder `work`; returns the file. Network trouble is an LmganError
    within seconds: one retry, a 10 s socket timeout."""
    try:
        import yt_dlp
    except ImportError:
        raise LmganError("yt-dlp is not installed (pip install yt-dlp)") from None

    bar = None

    def hook(d):
        nonlocal bar
        if not progress:
            return
        if bar is None:
            from tqdm import tqdm
            bar = tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc=name, leave=False, file=sys.stderr)
        total = d.get("total_bytes") or d.get("total_bytes_estimate")
        if total and bar.total != total:
            bar.total = int(total)
        done = d.get("downloaded_bytes") or 0
        if done > bar.n:
            bar.update(done - bar.n)

    log = _Log()
    opts = {
        "format": FORMAT,
        "outtmpl": str(work / "download.%(ext)s"),
        "noplaylist": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": log,
        "color": "no_color",
        "socket_timeout": 10,
        "retries": 1,
        "fragment_retries": 1,
        "extractor_retries": 1,
        "file_access_retries": 1,
        "cachedir": False,
        "overwrites": True,
        "postprocessors": [],
        "progress_hooks": [hook],
        # Local files only when the entry itself names one: a remote page must never be able to
        # make yt-dlp read local files (why yt-dlp disables file:// by default).
        "enable_file_urls": urlparse(url).scheme == "file",
    }
    try:
        with yt_dlp.YoutubeDL(opts) as ydl:
            info = ydl.extract_info(url, download=True)
    except yt_dlp.utils.YoutubeDLError as e:
        why = _reason(log.errors[-1] if log.errors else str(e))
        raise LmganError(f"{name}: cannot download {url}: {why}. "
                         f"Download it elsewhere and place it at {dest}") from None
    except OSError as e:
        raise LmganError(f"{name}: download failed ({' '.join(str(e).split())})") from None
    finally:
        if bar is not None:
            bar.close()
    paths = [d.get("filepath") for d in (info or {}).get("requested_downloads") or []]
    paths = [Path(p) for p in paths if p and Path(p).is_file()]
    paths = paths or [p for p in work.iterdir() if p.is_file() and not p.name.endswith((".part", ".ytdl"))]
    if not paths:
        raise LmganError(f"{name}: yt-dlp reported success but wrote no file for {url}")
    return paths[0]


class _AudioAligner:
    """Feeds the writer sound that starts at the first kept video frame and never runs ahead of
    the frames written, so picture and sound of the trimmed file share time 0."""

    def __init__(self, writer, rate: int, channels: int):
        self.writer, self.rate, self.channels = writer, rate, channels
        self.first = None        # source time of the first resampled sample
        self.t0 = None           # source time of the first kept video frame
        self.raw: list = []      # blocks received before both times are known
        self.aligned = False
        self.buf: list = []
        self.skip = 0            # samples still to drop (sound before t0)
        self.queued = 0
        self.written = 0

    def add(self, t, block):
        if self.first is None and t is not None:
            self.first = t
        self.raw.append(block)
        self._align()

    def start(self, t0: float):
        self.t0 = t0
        self._align()

    def _align(self):
        if self.t0 is None or not self.raw:
            return
        if not self.aligned:  # sound starting late is padded with silence, early is dropped
            first = self.first if self.first is not None else self.t0
            offset = round((first - self.t0) * self.rate)
            if offset > 0:
                self._queue(np.zeros((self.channels, offset), np.float32))
            self.skip = max(0, -offset)
            self.aligned = True
        for block in self.raw:
            self._queue(block)
        self.raw = []

    def _queue(self, block):
        if self.skip:
            n = min(self.skip, block.shape[1])
            block, self.skip = block[:, n:], self.skip - n
        if block.shape[1]:
            self.buf.append(block)
            self.queued += block.shape[1]

    @property
    def available(self) -> int:
        return self.written + self.queued

    def flush(self, upto: int):
        while self.buf and self.written < upto:
            block = self.buf[0]
            n = min(block.shape[1], upto - self.written)
            self.writer.add_audio(block[:, :n])
            self.written += n
            self.queued -= n
            if n == block.shape[1]:
                self.buf.pop(0)
            else:
                self.buf[0] = block[:, n:]

    def finish(self, total: int):
        self.flush(total)
        if self.written < total:
            self.writer.add_audio(np.zeros((self.channels, total - self.written), np.float32))
            self.written = total


def _reencode(name: str, src: Path, dst: Path, start: float, end: float | None, progress: bool) -> None:
    """Frames whose timestamps lie in [start, end) and the sound beside them, as H.264 + AAC at the
    source's frame rate and size (odd sizes lose a pixel row/column: yuv420p needs even)."""
    import av

    from lmgan.data import media

    with media._open(src) as c:
        vs, aus = media._video_stream(c), media._audio_stream(c)
        if vs is None:
            raise LmganError(f"{name}: the downloaded file has no video stream")
        if aus is None:
            raise LmganError(f"{name}: the downloaded file has no audio track")
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        if not rate or rate <= 0:
            raise LmganError(f"{name}: the downloaded video has no usable frame rate")
        fps = float(rate)
        width, height = vs.codec_context.width // 2 * 2, vs.codec_context.height // 2 * 2
        channels = 2 if aus.codec_context.layout.nb_channels >= 2 else 1
        arate = int(aus.rate or 0)
        arate = arate if arate in media.AAC_RATES else 48000
        resampler = media.Resampler(arate, "stereo" if channels == 2 else "mono")
        vs.thread_type = "AUTO"
        total_s = media._duration(c, None)
        if start > 0:
            try:  # to the keyframe at or before `start`; earlier frames are dropped below
                c.seek(int(start * av.time_base))
            except media._AV_ERRORS:
                pass  # unseekable: decode from the beginning instead
        bar = None
        if progress:
            from tqdm import tqdm
            stop = min(end, total_s) if end is not None and total_s else end if end is not None else total_s
            bar = tqdm(total=max(0, int(stop - start)) if stop else None, unit="s", desc=f"{name} trim", leave=False, file=sys.stderr)
        nframes, t0, video_done = 0, None, False
        try:
            with media.VideoWriter(dst, rate, width, height, arate, channels) as writer:
                sound = _AudioAligner(writer, arate, channels)
                for packet in c.demux(vs, aus):
                    for frame in packet.decode():
                        if packet.stream is aus:
                            sound.add(frame.time, resampler(frame))
                            continue
                        t = frame.time
                        if t is None:
                            raise LmganError(f"{name}: video frames carry no timestamps")
                        if video_done or t < start - 1e-6:
                            continue
                        if end is not None and t >= end - 1e-6:
                            video_done = True
                            continue
                        if t0 is None:
                            t0 = t
                            sound.start(t)
                        writer.add_frames(frame.to_ndarray(format="rgb24")[None, :height, :width])
                        nframes += 1
                        sound.flush(round(nframes / fps * arate))
                        if bar is not None:
                            bar.update(max(0, int(t - t0) - bar.n))
                    if video_done and sound.t0 is not None and sound.available >= round(nframes / fps * arate):
                        break
                else:
                    sound.add(None, resampler(None))
                if t0 is None:
                    length = f" (the video is {total_s:.1f} s long)" if total_s else ""
                    raise LmganError(f"{name}: no video frames between {start:g} s and "
                                     f"{'the end' if end is None else f'{end:g} s'}{length}")
                sound.finish(round(nframes / fps * arate))
        except media._AV_ERRORS as e:
            raise LmganError(f"{name}: cannot re-encode the download ({media._one_line(e)})") from None
        finally:
            if bar is not None:
                bar.close()


def fetch(name: str, force: bool = False, progress: bool = True) -> Path:
    """Put the named video into the data folder and return its path. Present already → no
    download (unless `force`). The raw download lives in a hidden temporary folder beside the
    destination and is removed whatever happens."""
    from lmgan.data import media

    if name == DEMO:
        if force:
            from lmgan.data.demo import make_demo_video
            path = data_dir() / "demo.mp4"
            make_demo_video(path)  # atomic (VideoWriter)
            return path
        return demo_video_path()
    registry = load_registry()
    if name not in registry:
        if looks_like_path(name):
            raise LmganError(f"{name}: fetch takes a video name from {registry_path()}, not a file path")
        raise unknown_video(name)
    entry = registry[name]
    dest = data_dir() / entry["file"]
    if entry["url"] is None:
        raise LmganError(supply_message(name, entry, dest))
    if dest.is_file() and dest.stat().st_size > 0 and not force:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.fetch-", dir=dest.parent))
    try:
        raw = _download(name, entry["url"], work, dest, progress)
        if entry["start"] > 0 or entry["end"] is not None or raw.suffix.lower() != ".mp4":
            _reencode(name, raw, dest, entry["start"], entry["end"], progress)
        else:
            info = media.probe(raw)
            if not info["has_video"] or not info["has_audio"]:
                missing = "video stream" if not info["has_video"] else "audio track"
                raise LmganError(f"{name}: the downloaded file has no {missing}")
            os.replace(raw, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def fetch_main(names: list[str], force: bool = False) -> int:
    """`lmgan fetch NAME [NAME...] [--force]`: fetches each name, prints where it went and the
    crop training will use for that file (choose_crop); a failure is reported (one line) and the
    others still run. Exit 0 when all succeeded, else 2."""
    if not names:
        print(f"lmgan: error: fetch needs a video name (known: {', '.join(known_names())})", file=sys.stderr)
        return LmganError.exit_code
    rc = 0
    for name in dict.fromkeys(names):
        try:
            path = fetch(name, force=force, progress=sys.stderr.isatty())
        except LmganError as e:
            print(f"lmgan: error: {e}", file=sys.stderr)
            rc = LmganError.exit_code
            continue
        print(f"{name}: {path}")
        print(choose_crop(name, demo_entry() if name == DEMO else load_registry()[name], path)[1])
    return rc
