"""Named source videos: the registry, name resolution and `fetch`, with real yt-dlp and PyAV.

YouTube cannot be reached here, so real downloads go through yt-dlp from a local HTTP server on
127.0.0.1 (its generic extractor) or its file:// support, from clips written with
lmgan.data.media; network failures use an address nothing listens on.
"""

import os
import socket
import time

import numpy as np
import pytest

from lmgan.data.media import probe, read_audio, read_video, write_video
from lmgan.errors import LmganError
from lmgan.data import fetch as fetching
from lmgan.data import videos

FIVE = ["cello", "demo", "drums", "quintet", "talking-head"]
# The authors' boxes (docs/sweeps.md, named videos) as lmgan crops, with the frame size each was made for.
BOXES = {"cello": ([650, 400, 600, 600], (1920, 1080)), "quintet": ([290, 0, 720, 720], (1280, 720)),
         "drums": ([30, 0, 720, 720], (1280, 720)), "talking-head": ([500, 0, 1080, 1080], (1920, 1080))}
DEMO_SWEEP = {"objective": "motion_corr", "trials": 4, "max_iters": 900, "grace_iters": 200,
              "eval_every": 100, "space": "sweeps/spaces/demo.yaml"}


@pytest.fixture(autouse=True)
def data(tmp_path, monkeypatch):
    """Each test gets its own empty data folder and the shipped registry."""
    monkeypatch.setenv("LMGAN_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("LMGAN_VIDEOS", raising=False)
    return tmp_path / "data"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """4 s, 25 fps, 64x48: frame i has grey level 2i; the stereo sound is silent until 1.5 s,
    then a 440 Hz tone, so a trim's start and its sound's alignment can both be read back."""
    path = tmp_path_factory.mktemp("src") / "clip.mp4"
    frames = np.repeat((2 * np.arange(100, dtype=np.uint8))[:, None, None, None], 48 * 64 * 3).reshape(100, 48, 64, 3)
    t = np.arange(4 * 44100) / 44100
    tone = np.where(t >= 1.5, 0.3 * np.sin(2 * np.pi * 440 * t), 0.0).astype(np.float32)
    write_video(path, frames, 25, audio=np.stack([tone, tone]), sample_rate=44100)
    return path


@pytest.fixture(scope="module")
def sized(tmp_path_factory):
    """size → a real 2-frame mp4 of that frame size (written once per size)."""
    folder, made = tmp_path_factory.mktemp("sized"), {}

    def get(width: int, height: int):
        if (width, height) not in made:
            made[width, height] = folder / f"{width}x{height}.mp4"
            write_video(made[width, height], np.zeros((2, height, width, 3), np.uint8), 25)
        return made[width, height]
    return get


def place(data, name: str, src):
    data.mkdir(exist_ok=True)
    (data / f"{name}.mp4").write_bytes(src.read_bytes())


def registry(tmp_path, monkeypatch, text: str):
    path = tmp_path / "videos.yaml"
    path.write_text(text)
    monkeypatch.setenv("LMGAN_VIDEOS", str(path))
    return path


def one_line_error(fn, *args, match: str) -> str:
    with pytest.raises(LmganError) as e:
        fn(*args)
    msg = str(e.value)
    assert "\n" not in msg and match in msg, msg
    return msg


# --- the registry ------------------------------------------------------------------------------


def test_shipped_registry_has_the_five_videos():
    assert videos.registry_path().is_file()
    assert videos.known_names() == FIVE
    reg = videos.load_registry()
    assert reg["drums"]["start"] == 59 and "7H4hrsb_0tE" in reg["drums"]["url"]
    assert "zah9B0toTBQ" in reg["cello"]["url"] and "R-Tk7-Ytes4" in reg["quintet"]["url"]
    assert reg["talking-head"]["url"] is None and "MEAD" in reg["talking-head"]["licence"]
    assert {reg[n]["preset"] for n in ("cello", "quintet", "drums", "talking-head")} == {"paper-128"}
    assert reg["demo"]["preset"] == "demo" and reg["demo"]["sweep"] == DEMO_SWEEP
    assert all(reg[n]["crop"] is None and reg[n]["file"] == f"{n}.mp4" for n in FIVE)
    assert reg["quintet"]["authors_box"] == {"ltrb": [290, 0, 1010, 720], "frame": [1280, 720]}
    assert {n: (videos.ltrb_to_xywh(reg[n]["authors_box"]["ltrb"]), tuple(reg[n]["authors_box"]["frame"]))
            for n in BOXES} == BOXES
    assert reg["demo"]["authors_box"] is None


def test_unknown_name_lists_the_known_ones():
    msg = one_line_error(videos.resolve, "foo", match="unknown video 'foo'")
    assert "known: cello, demo, drums, quintet, talking-head; or give a file path" in msg
    one_line_error(fetching.fetch, "foo", match="known: cello, demo")


@pytest.mark.parametrize("entry, match", [
    ("{url: 'https://x.org/a.mp4', file: ../../etc/passwd}", "outside the data folder"),
    ("{url: 'https://x.org/a.mp4', file: sub/../../x.mp4}", "outside the data folder"),
    ("{url: 'https://x.org/a.mp4', file: /etc/passwd}", "absolute path"),
    ("{url: 'https://x.org/a.mp4', file: 'C:\\\\x.mp4'}", "absolute path"),
    ("{url: 'https://x.org/a.mp4', nmae: x}", "unknown field 'nmae'"),
    ("{url: 'ftp://x.org/a.mp4'}", "url must be"),
    ("{url: 'https://x.org/a.mp4', start: 5, end: 2}", "end must be"),
    ("{url: 'https://x.org/a.mp4', crop: [0, 0, 0, 10]}", "crop must be"),
    ("{url: 'https://x.org/a.mp4', preset: nope}", "unknown preset"),
    ("{url: 'https://x.org/a.mp4', authors_box: {ltrb: [0, 0, 10, 10]}}", "authors_box must be"),
    ("{url: 'https://x.org/a.mp4', authors_box: {ltrb: [0, 0, 1300, 720], frame: [1280, 720]}}",
     "not a box inside its 1280x720 frame"),
    ("{url: 'https://x.org/a.mp4', crop: [0, 0, 9, 9], authors_box: {ltrb: [0, 0, 9, 9], frame: [9, 9]}}",
     "not both"),
])
def test_bad_registry_entries_are_refused(tmp_path, monkeypatch, entry, match):
    path = registry(tmp_path, monkeypatch, f"videos:\n  evil: {entry}\n")
    msg = one_line_error(videos.resolve, "evil", match=match)
    assert str(path) in msg
    one_line_error(fetching.fetch, "evil", match=match)


@pytest.mark.parametrize("text, match", [
    ("videos:\n  '../x': {url: 'https://x.org/a.mp4'}\n", "bad video name '../x'"),
    ("videos:\n  Cello: {}\n", "bad video name 'Cello'"),
    ("videos:\n  off: {}\n", "quote it"),
    ("videos: [cello\n", "malformed YAML"),
    ("cello: {url: 'https://x.org/a.mp4'}\n", "top-level mapping 'videos:'"),
])
def test_bad_registry_files_are_refused(tmp_path, monkeypatch, text, match):
    path = registry(tmp_path, monkeypatch, text)
    assert str(path) in one_line_error(videos.load_registry, match=match)


def test_inner_folders_are_allowed(tmp_path, monkeypatch, data, clip):
    registry(tmp_path, monkeypatch, "videos:\n  mine: {url: 'https://x.org/a.mp4', file: sub/./x/../mine.mp4, crop: [0, 0, 48, 48]}\n")
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "mine.mp4").write_bytes(clip.read_bytes())
    v = videos.resolve("mine")
    assert v.path == data / "sub" / "mine.mp4" and v.crop == [0, 0, 48, 48] and v.preset is None


# --- resolve -----------------------------------------------------------------------------------


def test_resolve_a_local_file(tmp_path, clip):
    path = tmp_path / "My Clip (take 2).mp4"
    path.write_bytes(clip.read_bytes())
    v = videos.resolve(str(path))
    assert v == videos.Video(name="my-clip-take-2", path=path, preset=None, crop=None, sweep={},
                             what=f"local file {path.name}")
    one_line_error(videos.resolve, str(tmp_path / "missing.mp4"), match="file not found")


def test_resolve_named_videos(data, clip):
    msg = one_line_error(videos.resolve, "quintet", match="quintet: not downloaded yet")
    assert f"run `lmgan fetch quintet` (saves {data / 'quintet.mp4'})" in msg
    data.mkdir()
    (data / "quintet.mp4").write_bytes(clip.read_bytes())
    v = videos.resolve("quintet")
    assert v.path == data / "quintet.mp4" and v.preset == "paper-128" and v.crop is None
    assert "quintet" in v.what


def test_talking_head_explains_the_licence(data):
    for fn in (videos.resolve, fetching.fetch):
        msg = one_line_error(fn, "talking-head", match="MEAD")
        assert "M31" in msg and f"place it at {data / 'talking-head.mp4'}" in msg


def test_resolve_demo_uses_an_existing_file(data, clip):
    data.mkdir()
    (data / "demo.mp4").write_bytes(clip.read_bytes())  # present: nothing is generated
    v = videos.resolve("demo")
    assert v.path == data / "demo.mp4" and v.preset == "demo" and v.sweep == DEMO_SWEEP


# --- fetch -------------------------------------------------------------------------------------


def test_fetch_refused_connection_is_quick_and_leaves_nothing(tmp_path, monkeypatch, data):
    registry(tmp_path, monkeypatch, "videos:\n  down: {url: 'http://127.0.0.1:9/x.mp4'}\n")
    import yt_dlp  # noqa: F401  (imported before the clock starts: the bound is on waiting, not on a busy CPU)
    t = time.monotonic()
    msg = one_line_error(fetching.fetch, "down", match="down: cannot download http://127.0.0.1:9/x.mp4: connection refused")
    assert time.monotonic() - t < 15
    assert f"place it at {data / 'down.mp4'}" in msg
    assert not data.exists() or os.listdir(data) == []


def test_fetch_from_youtube_offline(data):
    try:
        socket.getaddrinfo("www.youtube.com", 443)
        pytest.skip("www.youtube.com resolves: this machine is online")
    except OSError:
        pass
    import yt_dlp  # noqa: F401  (imported before the clock starts: the bound is on waiting, not on a busy CPU)
    t = time.monotonic()
    msg = one_line_error(fetching.fetch, "quintet", match="quintet: cannot download https://www.youtube.com/watch?v=R-Tk7-Ytes4")
    assert "offline" in msg and f"place it at {data / 'quintet.mp4'}" in msg
    assert time.monotonic() - t < 30
    assert not data.exists() or os.listdir(data) == []


def test_fetch_file_url_trims_and_keeps_sound(tmp_path, monkeypatch, data, clip, capsys):
    registry(tmp_path, monkeypatch,
             f"videos:\n  local: {{url: '{clip.as_uri()}', start: 1, end: 3, what: test clip}}\n")
    path = fetching.fetch("local", progress=False)
    assert path == data / "local.mp4" and os.listdir(data) == ["local.mp4"]  # no raw download left
    info = probe(path)
    assert abs(info["duration"] - 2.0) < 0.1 and info["has_audio"]
    assert (info["fps"], info["width"], info["height"], info["audio_rate"]) == (25.0, 64, 48, 44100)

    frames = read_video(path, fps=25, size=48, crop=[0, 0, 64, 48]).frames
    assert len(frames) == 50
    assert abs(frames[0].mean() - 50) < 3 and abs(frames[-1].mean() - 148) < 3  # source frames 25 and 74
    sound = read_audio(path, 16000)
    assert abs(len(sound) / 16000 - 2.0) < 0.1
    assert np.abs(sound[: int(0.45 * 16000)]).max() < 0.02  # silent until source 1.5 s = output 0.5 s
    assert np.abs(sound[int(0.6 * 16000): int(1.9 * 16000)]).max() > 0.2

    mtime = path.stat().st_mtime_ns
    assert fetching.fetch("local") == path and path.stat().st_mtime_ns == mtime  # present: no download
    assert videos.resolve("local").path == path

    assert fetching.fetch_main(["local", "nope"], force=False) == 2
    out, err = capsys.readouterr()
    assert f"local: {path}" in out and "unknown video 'nope'" in err


def test_fetch_force_replaces_a_present_file(tmp_path, monkeypatch, data, clip):
    registry(tmp_path, monkeypatch, f"videos:\n  whole: {{url: '{clip.as_uri()}'}}\n")
    data.mkdir()
    (data / "whole.mp4").write_bytes(b"old")
    assert fetching.fetch("whole", progress=False) == data / "whole.mp4"
    assert (data / "whole.mp4").read_bytes() == b"old"
    fetching.fetch("whole", force=True, progress=False)  # no trim: the download itself, renamed
    assert (data / "whole.mp4").read_bytes() == clip.read_bytes() and os.listdir(data) == ["whole.mp4"]


def test_fetch_a_named_video_over_http_with_yt_dlp(tmp_path, monkeypatch, data, http_server, capsys):
    """`lmgan fetch drums` through yt-dlp for real (its generic extractor, an HTTP download from a
    server on 127.0.0.1): the shipped registry's entry with only its URL pointed at the server
    (LMGAN_VIDEOS), so the paper's start at 59 s trims it, and the file decodes with its sound."""
    import yaml

    from lmgan.cli import main

    served, base = http_server
    n, fps, rate = 620, 10, 44100                   # 62 s, 128x72 (16:9, the box's shape)
    grey = (np.arange(n) * 250 // n).astype(np.uint8)
    frames = np.repeat(grey[:, None, None, None], 72 * 128 * 3).reshape(n, 72, 128, 3)
    t = np.arange(62 * rate) / rate
    tone = np.where(t >= 60, 0.3 * np.sin(2 * np.pi * 440 * t), 0.0).astype(np.float32)
    write_video(served / "drums-source.mp4", frames, fps, audio=np.stack([tone, tone]), sample_rate=rate)
    shipped = yaml.safe_load(videos.registry_path().read_text())
    assert shipped["videos"]["drums"]["start"] == 59
    shipped["videos"]["drums"]["url"] = f"{base}/drums-source.mp4"
    registry(tmp_path, monkeypatch, yaml.safe_dump(shipped))

    assert main(["fetch", "drums"]) == 0
    out = capsys.readouterr().out
    path = data / "drums.mp4"
    assert f"drums: {path}" in out and os.listdir(data) == ["drums.mp4"]       # no raw download left
    assert "drums: crop [3, 0, 72, 72] (x, y, w, h): the authors' box" in out  # 1280x720's box, scaled
    info = probe(path)
    assert info["has_video"] and info["has_audio"] and abs(info["duration"] - 3.0) < 0.15
    frames = read_video(path, fps=fps, size=72, crop=[0, 0, 128, 72]).frames
    assert len(frames) == 30 and abs(frames[0].mean() - grey[590]) < 3 and abs(frames[-1].mean() - grey[619]) < 3
    sound = read_audio(path, 16000)
    assert np.abs(sound[: int(0.9 * 16000)]).max() < 0.02          # silent until source 60 s = output 1 s
    assert np.abs(sound[int(1.1 * 16000): int(2.9 * 16000)]).max() > 0.2
    assert videos.resolve("drums").path == path                     # what the sweep and training read


def test_demo_needs_no_registry_file(tmp_path, monkeypatch, data, clip):
    data.mkdir()
    (data / "demo.mp4").write_bytes(clip.read_bytes())
    monkeypatch.setattr(videos, "registry_path", lambda: tmp_path / "absent.yaml")
    v = videos.resolve("demo")
    assert v.path == data / "demo.mp4" and v.preset == "demo"
    one_line_error(videos.resolve, "cello", match="video registry not found")


# --- the authors' crop boxes -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BOXES))
def test_a_file_of_the_boxes_frame_size_gets_the_authors_box(data, sized, capsys, name):
    crop, (width, height) = BOXES[name]
    place(data, name, sized(width, height))
    assert videos.resolve(name).crop == crop
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"{name}: crop {crop} (x, y, w, h): the authors' box"), err
    assert f"made for {width}x{height} frames" in err and "--set crop=" in err


@pytest.mark.parametrize("name, size, crop", [
    ("quintet", (640, 360), [145, 0, 360, 360]),      # what a single-file YouTube download may be
    ("quintet", (1920, 1080), [435, 0, 1080, 1080]),  # larger: scaled, not the 1280x720 numbers
    ("cello", (1280, 720), [433, 267, 400, 400]),
])
def test_a_scaled_copy_gets_the_box_scaled(data, sized, capsys, name, size, crop):
    place(data, name, sized(*size))
    assert videos.resolve(name).crop == crop
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{name}: crop {crop} (x, y, w, h): the authors' box"), err
    assert f"scaled to this file's {size[0]}x{size[1]}" in err


@pytest.mark.parametrize("name, size", [
    ("drums", (720, 1280)),      # same pixels, turned
    ("quintet", (720, 720)),     # another shape
])
def test_other_frame_shapes_get_the_centred_square(data, sized, capsys, name, size):
    place(data, name, sized(*size))
    assert videos.resolve(name).crop is None
    err = capsys.readouterr().err.strip()
    made = "x".join(map(str, BOXES[name][1]))
    assert err.startswith(f"{name}: crop: centred square, not the authors' box: the file is "
                          f"{size[0]}x{size[1]}, the box was made for {made} frames"), err
    assert videos.resolve(name, quiet=True).crop is None and capsys.readouterr().err == ""


def test_a_video_without_a_box_says_so(data, clip, capsys):
    place(data, "demo", clip)
    assert videos.resolve("demo").crop is None
    assert capsys.readouterr().err.startswith("demo: crop: centred square (the registry has no authors' box")


def test_fetch_says_which_crop_it_will_use(tmp_path, monkeypatch, data, clip, capsys):
    registry(tmp_path, monkeypatch, f"""videos:
  fits: {{url: '{clip.as_uri()}', authors_box: {{ltrb: [8, 0, 56, 48], frame: [64, 48]}}}}
  other: {{url: '{clip.as_uri()}', authors_box: {{ltrb: [0, 0, 96, 96], frame: [128, 128]}}}}
  broken: {{url: '{clip.as_uri()}', authors_box: {{ltrb: [8, 0, 56, 48], frame: [64, 48]}}}}
""")
    data.mkdir()
    (data / "broken.mp4").write_bytes(b"not a video")  # present already: fetch keeps it
    assert fetching.fetch_main(["fits", "other", "broken"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"fits: {data / 'fits.mp4'}" and len(out) == 6
    assert out[1].startswith("fits: crop [8, 0, 48, 48] (x, y, w, h): the authors' box (left, top, "
                             "right, bottom [8, 0, 56, 48]), made for 64x48 frames like this file's")
    assert out[3].startswith("other: crop: centred square, not the authors' box: the file is 64x48, "
                             "the box was made for 128x128 frames")
    assert out[5].startswith("broken: crop: centred square, not the authors' box: cannot read the file's frame size")


def test_an_explicit_crop_wins_in_the_sweep(data, sized, capsys, tmp_path):
    from lmgan.sweep import driver as search

    place(data, "quintet", sized(1280, 720))

    def crop(*sets):
        args = search.build_parser().parse_args(["--video", "quintet", *sets])
        return search.make_plan(args, str(tmp_path / "sweeps")).config.crop

    assert crop() == [290, 0, 720, 720]
    assert crop("--set", "crop=0,0,100,100") == [0, 0, 100, 100]
    assert "quintet: crop [290, 0, 720, 720] (x, y, w, h): the authors' box" in capsys.readouterr().err


# --- registry names in `lmgan train` and `lmgan eval` --------------------------------------------


def test_train_and_eval_take_registry_names(tmp_path, monkeypatch, data, demo_clip, capsys):
    """A named video trains with its file, its preset and its crop, as in the sweep; an explicit
    --set crop wins; `lmgan eval --video NAME` reads the same file."""
    import yaml

    from support import train_cli
    from lmgan.cli import main

    registry(tmp_path, monkeypatch, "videos:\n  clip: {crop: [8, 8, 48, 48], preset: tiny}\n")
    place(data, "clip", demo_clip)
    assert train_cli("--video", "clip", "--out", tmp_path / "run", "--set", "iters=2") == 0
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["crop"] == [8, 8, 48, 48] and saved["image_size"] == 32      # the tiny preset's size
    assert "clip: crop [8, 8, 48, 48] (x, y, w, h) from the registry" in capsys.readouterr().err
    assert train_cli("--video", "clip", "--out", tmp_path / "own", "--set", "iters=2",
                     "--set", "crop=0,0,64,64") == 0
    assert yaml.safe_load((tmp_path / "own" / "config.yaml").read_text())["crop"] == [0, 0, 64, 64]
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(tmp_path / "run"), "--video", "clip", "--quiet", "--json"]) == 0
    assert "not the video this model was trained on" not in capsys.readouterr().err
    for cmd in (["train", "--video", "cello"], ["eval", "--checkpoint", str(tmp_path / "run"), "--video", "cello"]):
        assert main(cmd) == 2
        assert "unknown video 'cello'" in capsys.readouterr().err


def test_help_texts_list_what_the_registries_hold(tmp_path, monkeypatch):
    """The names a user may type come from the registries, so a new video, preset or metric
    appears in --help without editing it; a broken registry does not break --help."""
    from lmgan.cli import build_parser
    from lmgan.config import presets
    from lmgan.metrics import REGISTRY
    from lmgan.sweep.arguments import build_parser as sweep_parser

    registry(tmp_path, monkeypatch, "videos:\n  zither: {url: 'https://example.org/z'}\n")
    sub = build_parser()._subparsers._group_actions[0].choices
    train, evaluate = sub["train"].format_help(), " ".join(sub["eval"].format_help().split())
    sweep = " ".join(sweep_parser().format_help().split())
    assert "zither" in train and "zither" in sweep and "zither" in sub["fetch"].format_help()
    assert all(p in " ".join(train.split()) for p in presets())
    assert all(m in evaluate and m in sweep for m in REGISTRY)
    registry(tmp_path, monkeypatch, "videos: [not, a, mapping]\n")
    assert "demo" in build_parser()._subparsers._group_actions[0].choices["train"].format_help()


def test_the_sweep_plans_the_presets_own_values_as_its_first_trial(data, sized, capsys, tmp_path):
    """Unless --no-baseline, the plan carries the preset's values of the searched keys (the
    paper's, for paper-128), which Optuna proposes first; with one outside the space there is no
    baseline (Optuna cannot propose it), and the sweep says why."""
    from lmgan.sweep import driver as search

    place(data, "quintet", sized(1280, 720))

    def plan(*extra):
        args = search.build_parser().parse_args(["--video", "quintet", *extra])
        return search.make_plan(args, str(tmp_path / "sweeps"))

    assert plan().baseline == {"lr_d": 4e-4, "lr_g": 1e-4, "rnn_layers": 3, "vp_kernel": 3}
    assert plan("--no-baseline").baseline is None
    capsys.readouterr()
    assert plan("--set", "lr_g=5e-6").baseline is None
    assert "no baseline trial: the preset's lr_g=5e-06 is outside the search space (loguniform[1e-05, 0.001])" \
        in capsys.readouterr().err


def test_the_sweep_plans_its_scheduler_and_objectives(data, sized, tmp_path):
    """One objective: ASHA unless --scheduler says otherwise; several: every trial to the end
    (fifo), their directions from the registry; what cannot work is one line before Ray."""
    from lmgan.sweep import driver as search

    place(data, "quintet", sized(1280, 720))

    def plan(*extra):
        args = search.build_parser().parse_args(["--video", "quintet", *extra])
        return search.make_plan(args, str(tmp_path / "sweeps"))

    p = plan()
    assert (p.scheduler, p.goals, p.multi_objective) == ("asha", [("fvd", "min")], False)
    p = plan("--scheduler", "pbt")
    assert p.scheduler == "pbt" and p.mutable == ["lr_d", "lr_g"] and p.judged_by_last
    p = plan("--objective", "fvd,av_align")
    assert p.scheduler == "fifo" and p.goals == [("fvd", "min"), ("av_align", "max")] and p.judged_by_last
    assert {"fvd", "av_align"} <= set(p.config.eval_metrics)
    with pytest.raises(LmganError, match="--scheduler asha ranks trials by one metric"):
        plan("--objective", "fvd,av_align", "--scheduler", "asha")
    with pytest.raises(LmganError, match="give one metric, or two or three different ones"):
        plan("--objective", "ssim,ssim")
    with pytest.raises(LmganError, match="unknown metric"):
        plan("--objective", "ssim,nope")
    with pytest.raises(LmganError, match="--trials 1 is no population"):
        plan("--scheduler", "pbt", "--trials", "1")
    space = tmp_path / "arch.yaml"
    space.write_text("rnn_layers: {int: [1, 4]}\n")
    with pytest.raises(LmganError, match="--scheduler pbt: arch.yaml searches none of the settings PBT can change"):
        plan("--scheduler", "pbt", "--space", str(space))
