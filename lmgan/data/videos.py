"""Named source videos (docs/sweeps.md, named videos): the registry as data (sweeps/videos.yaml),
a name or a path → a file, and where source videos live (the data folder).

`lmgan train`, `lmgan eval`, `lmgan fetch` and the sweep take either a registry name or any
media file path; a name resolves to a file in the data folder ($LMGAN_DATA, else ./data), and
`demo` to the synthetic clip, generated on first use. Nothing here imports torch, Ray or MLflow.

The paper authors' crop boxes (`authors_box`) are used for a file of the frame size they were
made for, or of that shape (scaled; choose_crop says why); otherwise the centred square.
`lmgan fetch` (downloading a named video) is lmgan/data/fetch.py.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from urllib.parse import urlparse

from lmgan.config import load_yaml
from lmgan.errors import LmganError
from lmgan.paths import sweep_files

DEMO = "demo"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
FIELDS = ("url", "start", "end", "authors_box", "crop", "what", "preset", "file", "licence", "how",
          "sweep")
MEDIA_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts",
                  ".flv", ".wmv", ".ogv", ".3gp"}


@dataclass(frozen=True)
class Video:
    """A resolved source: what to train on and with which defaults."""
    name: str
    path: Path
    preset: str | None = None
    crop: list | None = None       # [x, y, w, h] in source pixels; None = centred square
    sweep: dict = field(default_factory=dict)  # defaults for the sweep driver
    what: str = ""

    def config(self, preset: str | None = None, config_file: str | None = None,
               sets: list[str] | None = None):
        """A run's validated config on this video: the video's preset unless `preset` is given,
        its crop under the config file and --set (which may override it)."""
        from lmgan.config import build_config
        return build_config(preset or self.preset, config_file, sets,
                            video=None if self.crop is None else {"crop": list(self.crop)})


# ---------------------------------------------------------------------------------------------
# The registry


def registry_path() -> Path:
    """$LMGAN_VIDEOS, else the shipped sweeps/videos.yaml (lmgan.paths.sweep_files: the
    checkout's, else the installed package's; any working directory works), else
    ./sweeps/videos.yaml."""
    env = os.environ.get("LMGAN_VIDEOS")
    if env:
        return Path(env)
    shipped = sweep_files() / "videos.yaml"
    return shipped if shipped.is_file() else Path("sweeps") / "videos.yaml"


def data_dir() -> Path:
    """Where source videos live: $LMGAN_DATA, else ./data."""
    return Path(os.environ.get("LMGAN_DATA") or "data")


def demo_video_path() -> Path:
    """The embedded default source: a synthetic clip generated on first use."""
    from lmgan.data.demo import make_demo_video
    path = data_dir() / "demo.mp4"
    if not path.is_file():
        print(f"generating the demo source video {path} (60 s, synthetic, offline)", file=sys.stderr)
        make_demo_video(path)
    return path


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
    stat = path.stat()
    return copy.deepcopy(_read_registry(path, stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=8)
def _read_registry(path: Path, mtime_ns: int, size: int) -> dict[str, dict]:
    """Parsed and checked once per version of the file: building the CLI's help texts alone asks
    for it several times."""
    data = load_yaml(path)
    if set(data) != {"videos"} or not isinstance(data["videos"], dict):
        raise LmganError(f"{path}: expected a single top-level mapping 'videos:' of name → entry")
    return {name: _check_entry(path, name, entry) for name, entry in data["videos"].items()}


def known_names() -> list[str]:
    """The registry's names plus the built-in demo."""
    return sorted(set(load_registry()) | {DEMO})


def names_for_help() -> str:
    """The names a --video option takes, for its help text (never an error: a broken registry
    is reported when a name is resolved, not when help is shown)."""
    try:
        return ", ".join(known_names())
    except LmganError:
        return DEMO


def sweep_default(key: str, fallback):
    """The demo's sweep default for `key` (help texts say what the quick start runs)."""
    try:
        return demo_entry()["sweep"].get(key, fallback)
    except LmganError:
        return fallback


def unknown_video(name: str) -> LmganError:
    return LmganError(f"unknown video {name!r} (known: {', '.join(known_names())}; or give a file path)")


def supply_message(name: str, entry: dict, dest: Path) -> str:
    if entry["licence"] or entry["how"]:
        parts = [p.strip().rstrip(".") for p in (entry["licence"], entry["how"]) if p]
        return f"{name}: {'; '.join(parts)} and place it at {dest}"
    return f"{name}: has no download URL; place the file at {dest}"


def _sanitise(stem: str) -> str:
    name = re.sub(r"[^a-z0-9_-]+", "-", stem.lower()).strip("-_")
    return name or "video"


def looks_like_path(text: str) -> bool:
    return "/" in text or os.sep in text or Path(text).suffix.lower() in MEDIA_SUFFIXES


def demo_entry() -> dict:
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
    if looks_like_path(text):
        path = _check_file(text)
        return Video(name=_sanitise(path.stem), path=path, what=f"local file {path.name}")
    if text == DEMO:  # built in: works even where no registry file is installed
        return _video(DEMO, demo_entry(), demo_video_path(), quiet)
    registry = load_registry()
    if text in registry:
        entry = registry[text]
        path = data_dir() / entry["file"]
        if path.is_file() and path.stat().st_size > 0:
            return _video(text, entry, path, quiet)
        if entry["url"] is None:
            raise LmganError(supply_message(text, entry, path))
        raise LmganError(f"{text}: not downloaded yet; run `lmgan fetch {text}` (saves {path})")
    if Path(text).is_file():
        path = _check_file(text)
        return Video(name=_sanitise(path.stem), path=path, what=f"local file {path.name}")
    raise unknown_video(text)
