"""Named source videos (DESIGN §6): a registry as data (sweeps/videos.yaml), name → file, and
`lmgan fetch NAME`, which downloads a named video with yt-dlp and trims it with PyAV.

Training and sweeps take either a registry name or any media file path; a name resolves to a
file in the data folder ($LMGAN_DATA, else ./data). Nothing here imports Ray or MLflow, so the
CLI can use it without the sweep extras.

Choices:
- Downloads pick a single file that has both sound and picture: these machines have no ffmpeg
  binary, so yt-dlp cannot merge separate audio and video streams.
- A trim (start/end) is re-encoded through lmgan.data.media (H.264 + AAC at the source's frame
  rate and size): stream copy cannot cut between keyframes, and the trimmed file must start at
  `start`, not at the keyframe before it.
- Every file reaches its final name by a rename, so an interrupted fetch never leaves half a
  video where training would find it.
- The paper authors' crop boxes (`authors_box`) are used for a file of the frame size they were
  made for, or of that shape (scaled; choose_crop says why); otherwise the centred square.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from urllib.parse import urlparse

import numpy as np

import lmgan
from lmgan.config import load_yaml
from lmgan.errors import LmganError

DEMO = "demo"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
FIELDS = ("url", "start", "end", "authors_box", "crop", "what", "preset", "file", "licence", "how",
          "sweep")
MEDIA_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts",
                  ".flv", ".wmv", ".ogv", ".3gp"}
# yt-dlp: one file with both streams (no ffmpeg to merge), mp4 preferred (H.264/AAC, no re-encode).
FORMAT = "best[ext=mp4][acodec!=none][vcodec!=none]/best[acodec!=none][vcodec!=none]/best"
_OFFLINE = ("failed to resolve", "name or service not known", "temporary failure in name resolution",
            "nodename nor servname", "network is unreachable", "no route to host",
            "getaddrinfo failed", "no address associated")


@dataclass(frozen=True)
class Video:
    """A resolved source: what to train on and with which defaults."""
    name: str
    path: Path
    preset: str | None = None
    crop: list | None = None       # [x, y, w, h] in source pixels; None = centred square
    sweep: dict = field(default_factory=dict)  # defaults for the sweep driver
    what: str = ""


# ---------------------------------------------------------------------------------------------
# The registry


def registry_path() -> Path:
    """$LMGAN_VIDEOS, else the repository's sweeps/videos.yaml (found from the package, so any
    working directory works in a checkout), else ./sweeps/videos.yaml."""
    env = os.environ.get("LMGAN_VIDEOS")
    if env:
        return Path(env)
    beside = Path(lmgan.__file__).resolve().parent.parent / "sweeps" / "videos.yaml"
    return beside if beside.is_file() else Path("sweeps") / "videos.yaml"


def _data_dir() -> Path:
    from lmgan.cli import data_dir
    return data_dir()


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_file_field(where: str, value) -> str:
    """Relative, inside the data folder: a registry (perhaps someone else's) must not make lmgan
    write or read outside it. Checked lexically, so a symlink the user put into the data folder
    (to a dataset elsewhere, say) still works."""
    if not isinstance(value, str) or not value.strip():
        raise LmganError(f"{where}: file must be a path relative to the data folder, got {value!r}")
    if "\0" in value:
        raise LmganError(f"{where}: file contains a NUL character")
    if PurePosixPath(value).is_absolute() or PureWindowsPath(value).anchor or value.startswith("~"):
        raise LmganError(f"{where}: file must be relative to the data folder, got the absolute path {value!r}")
    norm = os.path.normpath(value.replace("\\", "/"))
    if norm in (".", "") or norm == ".." or norm.startswith("../"):
        raise LmganError(f"{where}: file {value!r} points outside the data folder")
    return norm


def _check_entry(path: Path, name, entry) -> dict:
    if isinstance(name, bool):
        raise LmganError(f"{path}: video name read as {name} (YAML reads yes/no/on/off as booleans; quote it)")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise LmganError(f"{path}: bad video name {name!r} (lowercase letters, digits, '-' and '_'; "
                         "starting with a letter or digit)")
    where = f"{path}: video '{name}'"
    if entry is None:
        entry = {}
    if not isinstance(entry, dict):
        raise LmganError(f"{where}: expected a mapping of fields, got {type(entry).__name__}")
    unknown = sorted(str(k) for k in entry if k not in FIELDS)
    if unknown:
        raise LmganError(f"{where}: unknown field '{unknown[0]}' (known: {', '.join(FIELDS)})")
    out = {"url": None, "start": 0.0, "end": None, "authors_box": None, "crop": None, "what": "",
           "preset": None, "file": f"{name}.mp4", "licence": None, "how": None, "sweep": {}}
    out.update({k: v for k, v in entry.items() if v is not None})

    url = out["url"]
    if url is not None:
        parsed = urlparse(url) if isinstance(url, str) else None
        if parsed is None or parsed.scheme not in ("http", "https", "file") or not (parsed.netloc or parsed.path):
            raise LmganError(f"{where}: url must be an http(s):// or file:// URL, got {url!r}")
    if not _is_number(out["start"]) or out["start"] < 0:
        raise LmganError(f"{where}: start must be a number of seconds >= 0, got {out['start']!r}")
    if out["end"] is not None and (not _is_number(out["end"]) or out["end"] <= out["start"]):
        raise LmganError(f"{where}: end must be null or a number of seconds after start, got {out['end']!r}")
    out["start"] = float(out["start"])
    out["end"] = None if out["end"] is None else float(out["end"])
    crop = out["crop"]
    if crop is not None and not (isinstance(crop, list) and len(crop) == 4 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in crop)
            and crop[0] >= 0 and crop[1] >= 0 and crop[2] > 0 and crop[3] > 0):
        raise LmganError(f"{where}: crop must be null or [x, y, w, h] (integers, w and h > 0), got {crop!r}")
    if out["authors_box"] is not None:
        if crop is not None:
            raise LmganError(f"{where}: give crop or authors_box, not both")
        _check_box(where, out["authors_box"])
    if out["preset"] is not None:
        from lmgan.config import presets
        if out["preset"] not in presets():
            raise LmganError(f"{where}: unknown preset {out['preset']!r} (known: {', '.join(presets())})")
    for key in ("what", "licence", "how"):
        if out[key] is not None and not isinstance(out[key], str):
            raise LmganError(f"{where}: {key} must be text, got {out[key]!r}")
    if not isinstance(out["sweep"], dict):
        raise LmganError(f"{where}: sweep must be a mapping of sweep defaults, got {out['sweep']!r}")
    out["file"] = _check_file_field(where, out["file"])
    return out


def _ints(v, n: int) -> bool:
    return isinstance(v, list) and len(v) == n and all(isinstance(i, int) and not isinstance(i, bool) for i in v)


def _check_box(where: str, box) -> None:
    if not (isinstance(box, dict) and set(box) == {"ltrb", "frame"} and _ints(box["ltrb"], 4)
            and _ints(box["frame"], 2)):
        raise LmganError(f"{where}: authors_box must be {{ltrb: [left, top, right, bottom], frame: "
                         f"[width, height]}} (integers), got {box!r}")
    (left, top, right, bottom), (width, height) = box["ltrb"], box["frame"]
    if not (0 <= left < right <= width and 0 <= top < bottom <= height):
        raise LmganError(f"{where}: authors_box ltrb {box['ltrb']} is not a box inside its "
                         f"{width}x{height} frame")


def ltrb_to_xywh(ltrb) -> list[int]:
    """The authors' [left, top, right, bottom] as lmgan's Config.crop [x, y, w, h] (the one place
    the two conventions meet)."""
    left, top, right, bottom = ltrb
    return [left, top, right - left, bottom - top]


def choose_crop(name: str, entry: dict, path: Path) -> tuple[list | None, str]:
    """The crop a named video trains with, and one line saying which and why.

    Rule: the authors' box is used when the file's frame is the frame the box was made for, or
    that frame scaled (same aspect ratio: YouTube serves each video at several sizes of one
    picture), the box then scaled with it; any other shape gets the centred square (None). "The
    box lies inside the frame" is not used: the quintet's 1280x720 box lies inside a 1920x1080
    copy but, unscaled, frames its upper-left. An entry's own `crop` applies to any file, as before; a `--set crop=...`
    is applied after this, and wins."""
    suffix = "; --set crop=x,y,w,h overrides it"
    if entry["crop"] is not None:
        return list(entry["crop"]), f"{name}: crop {list(entry['crop'])} (x, y, w, h) from the registry{suffix}"
    box = entry["authors_box"]
    if box is None:
        return None, f"{name}: crop: centred square (the registry has no authors' box for it){suffix}"
    made = "x".join(map(str, box["frame"]))
    from lmgan.data.media import probe
    try:
        info = probe(path)
        size = (info["width"], info["height"]) if info["has_video"] else None
    except LmganError as e:
        size, why = None, f"cannot read the file's frame size ({e})"
    else:
        why = "the file has no video stream" if size is None else f"the file is {size[0]}x{size[1]}"
    fw, fh = box["frame"]
    if size is not None and size[0] * fh == size[1] * fw:
        scale = size[0] / fw
        crop = ltrb_to_xywh([round(v * scale) for v in box["ltrb"]])
        like = "like this file's" if scale == 1 else f"scaled to this file's {size[0]}x{size[1]}"
        return crop, (f"{name}: crop {crop} (x, y, w, h): the authors' box (left, top, right, bottom "
                      f"{box['ltrb']}), made for {made} frames {like}{suffix}")
    return None, (f"{name}: crop: centred square, not the authors' box: {why}, the box was made "
                  f"for {made} frames (another shape){suffix}")


def load_registry(path: str | os.PathLike | None = None) -> dict[str, dict]:
    """name → entry with every field filled in; any problem is one LmganError naming the file,
    so a bad registry fails before a download or a sweep starts."""
    path = Path(path) if path is not None else registry_path()
    if not path.is_file():
        raise LmganError(f"{path}: video registry not found (set LMGAN_VIDEOS to a videos.yaml)")
    data = load_yaml(path)
    if set(data) != {"videos"} or not isinstance(data["videos"], dict):
        raise LmganError(f"{path}: expected a single top-level mapping 'videos:' of name → entry")
    return {name: _check_entry(path, name, entry) for name, entry in data["videos"].items()}


def known_names() -> list[str]:
    """The registry's names plus the built-in demo."""
    return sorted(set(load_registry()) | {DEMO})


def _unknown(name: str) -> LmganError:
    return LmganError(f"unknown video {name!r} (known: {', '.join(known_names())}; or give a file path)")


def _supply_message(name: str, entry: dict, dest: Path) -> str:
    if entry["licence"] or entry["how"]:
        parts = [p.strip().rstrip(".") for p in (entry["licence"], entry["how"]) if p]
        return f"{name}: {'; '.join(parts)} and place it at {dest}"
    return f"{name}: has no download URL; place the file at {dest}"


def _sanitise(stem: str) -> str:
    name = re.sub(r"[^a-z0-9_-]+", "-", stem.lower()).strip("-_")
    return name or "video"


def _looks_like_path(text: str) -> bool:
    return "/" in text or os.sep in text or Path(text).suffix.lower() in MEDIA_SUFFIXES


def _demo_entry() -> dict:
    found = os.environ.get("LMGAN_VIDEOS") or registry_path().is_file()
    return (load_registry() if found else {}).get(DEMO) or _check_entry(Path("<built-in>"), DEMO, {"preset": DEMO})


def _video(name: str, entry: dict, path: Path, quiet: bool) -> Video:
    crop, note = choose_crop(name, entry, path)
    if not quiet:
        print(note, file=sys.stderr)
    return Video(name=name, path=path, preset=entry["preset"], crop=crop,
                 sweep=dict(entry["sweep"]), what=entry["what"])


def resolve(name_or_path: str, quiet: bool = False) -> Video:
    """A file path (it has a separator or a media suffix) → that file; `demo` → the synthetic
    clip, generated on first use; a registry name → its file in the data folder, or an error
    saying how to get it. A bare word is looked up in the registry before the working directory,
    so a stray file or folder called `cello` cannot shadow the named video. A named video's crop
    comes from choose_crop, whose one line goes to stderr (unless `quiet`): the sweep driver
    calls this, and so says which crop it trains with."""
    from lmgan.data.media import _check_file

    text = str(name_or_path)
    if _looks_like_path(text):
        path = _check_file(text)
        return Video(name=_sanitise(path.stem), path=path, what=f"local file {path.name}")
    if text == DEMO:  # built in: works even where no registry file is installed
        from lmgan.cli import demo_video_path
        return _video(DEMO, _demo_entry(), demo_video_path(), quiet)
    registry = load_registry()
    if text in registry:
        entry = registry[text]
        path = _data_dir() / entry["file"]
        if path.is_file() and path.stat().st_size > 0:
            return _video(text, entry, path, quiet)
        if entry["url"] is None:
            raise LmganError(_supply_message(text, entry, path))
        raise LmganError(f"{text}: not downloaded yet; run `lmgan fetch {text}` (saves {path})")
    if Path(text).is_file():
        path = _check_file(text)
        return Video(name=_sanitise(path.stem), path=path, what=f"local file {path.name}")
    raise _unknown(text)


# ---------------------------------------------------------------------------------------------
# Fetching


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
        from lmgan.cli import data_dir, demo_video_path
        if force:
            from lmgan.data.demo import make_demo_video
            path = data_dir() / "demo.mp4"
            make_demo_video(path)  # atomic (VideoWriter)
            return path
        return demo_video_path()
    registry = load_registry()
    if name not in registry:
        if _looks_like_path(name):
            raise LmganError(f"{name}: fetch takes a video name from {registry_path()}, not a file path")
        raise _unknown(name)
    entry = registry[name]
    dest = _data_dir() / entry["file"]
    if entry["url"] is None:
        raise LmganError(_supply_message(name, entry, dest))
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
        print(choose_crop(name, _demo_entry() if name == DEMO else load_registry()[name], path)[1])
    return rc
