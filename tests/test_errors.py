"""Bad input: a one-line error naming the problem, exit code 2, no traceback, nothing touched."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from lmgan.cli import main
from lmgan.data.media import write_video
from lmgan.training import checkpoint


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    return rc, err


def assert_one_line(rc, err, *words):
    assert rc == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lmgan: error:"), err
    assert "Traceback" not in err
    for w in words:
        assert w in err, (w, err)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, demo_clip):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.mp4").write_bytes(b"")
    data = demo_clip.read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (d / "folder.mp4").mkdir()
    frames = np.full((40, 64, 64, 3), 128, np.uint8)
    write_video(d / "silent.mp4", frames, 20)                                   # no audio track
    write_video(d / "short.mp4", frames[:20], 20, audio=np.zeros(16000, np.float32), sample_rate=16000)
    import av
    with av.open(str(d / "tone.wav"), "w") as c:                               # audio only
        s = c.add_stream("pcm_s16le", rate=16000, layout="mono")
        f = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.int16), format="s16", layout="mono")
        f.sample_rate = 16000
        for p in [*s.encode(f), *s.encode(None)]:
            c.mux(p)
    (d / "noise.mp3").write_bytes(np.random.default_rng(0).bytes(5000))
    (d / "bad.yaml").write_text("iters: [1\n")
    (d / "unknown.yaml").write_text("iters: 5\nwarp_speed: 9\n")
    torch.save({"hello": torch.zeros(1)}, d / "not_a_ckpt.pt")
    (d / "garbage.pt").write_bytes(b"\x00" * 100)
    return d


@pytest.mark.parametrize("video, words", [
    ("missing.mp4", ["missing.mp4", "file not found"]),
    ("folder.mp4", ["folder.mp4", "directory"]),
    ("empty.mp4", ["empty.mp4", "empty"]),
    ("truncated.mp4", ["truncated.mp4"]),
    ("silent.mp4", ["silent.mp4", "no audio"]),
    ("tone.wav", ["tone.wav", "no video"]),
    ("short.mp4", ["short.mp4", "too short"]),
])
def test_bad_video(capsys, tmp_path, bad_files, video, words):
    out = tmp_path / "run"
    rc, err = run(capsys, "train", "--quiet", "--video", bad_files / video, "--out", out, "--preset", "tiny")
    assert_one_line(rc, err, *words)
    assert not out.exists()


@pytest.mark.parametrize("args, words", [
    (["--set", "bogus=1"], ["unknown config key", "bogus"]),
    (["--set", "vp_kernel=4"], ["vp_kernel", "odd"]),
    (["--set", "image_size=100"], ["image_size", "power of two"]),
    (["--set", "lr_g=-0.001"], ["lr_g", "positive"]),
    (["--set", "lr_d=0"], ["lr_d", "positive"]),
    (["--out", "RUNS/../elsewhere"], ["--out", "'..'"]),
    (["--config", "BAD/bad.yaml"], ["malformed YAML"]),
    (["--config", "BAD/unknown.yaml"], ["unknown config key", "warp_speed"]),
    (["--preset", "huge"], ["unknown preset", "huge"]),
    (["--frobnicate"], ["unrecognized arguments"]),
])
def test_bad_config_touches_nothing(capsys, bad_files, demo_clip, tiny_run, args, words):
    """Pointing a failing command at an existing run leaves every file of it as it was."""
    before = {p: p.stat().st_mtime_ns for p in tiny_run.rglob("*")}
    args = [str(a).replace("BAD", str(bad_files)).replace("RUNS", str(tiny_run.parent)) for a in args]
    rc, err = run(capsys, "train", "--quiet", "--video", demo_clip, "--out", tiny_run, "--preset", "tiny", *args)
    assert_one_line(rc, err, *words)
    assert {p: p.stat().st_mtime_ns for p in tiny_run.rglob("*")} == before


def test_existing_run_is_not_overwritten(capsys, demo_clip, tiny_run):
    before = {p: p.stat().st_mtime_ns for p in tiny_run.rglob("*")}
    rc, err = run(capsys, "train", "--quiet", "--video", demo_clip, "--out", tiny_run, "--preset", "tiny")
    assert_one_line(rc, err, "already holds a run", "--resume")
    assert {p: p.stat().st_mtime_ns for p in tiny_run.rglob("*")} == before


@pytest.mark.parametrize("ckpt, audio, words", [
    ("RUN", "BAD/noise.mp3", ["noise.mp3"]),
    ("RUN", "BAD/missing.wav", ["missing.wav", "file not found"]),
    ("RUN", "BAD/folder.mp4", ["folder.mp4", "directory"]),
    ("RUN", "BAD/silent.mp4", ["silent.mp4", "no audio"]),
    ("BAD/not_a_ckpt.pt", "BAD/tone.wav", ["not an lmgan checkpoint"]),
    ("BAD/garbage.pt", "BAD/tone.wav", ["garbage.pt", "not a readable"]),
    ("BAD/nothing.pt", "BAD/tone.wav", ["nothing.pt", "no such checkpoint"]),
])
def test_bad_render_input_keeps_earlier_output(capsys, tmp_path, bad_files, tiny_run, ckpt, audio, words):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"an earlier result")
    ckpt = ckpt.replace("RUN", str(tiny_run)).replace("BAD", str(bad_files))
    rc, err = run(capsys, "render", "--quiet", "--checkpoint", ckpt, "--audio", audio.replace("BAD", str(bad_files)),
                  "--out", out)
    assert_one_line(rc, err, *words)
    assert out.read_bytes() == b"an earlier result"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_render_out_through_dotdot_is_refused(capsys, tmp_path, bad_files, tiny_run):
    rc, err = run(capsys, "render", "--quiet", "--checkpoint", tiny_run, "--audio", bad_files / "tone.wav",
                  "--out", tmp_path / "a" / ".." / "out.mp4")
    assert_one_line(rc, err, "--out", "'..'")
    assert list(tmp_path.iterdir()) == []


def test_stream_without_a_declared_frame_rate_is_placed_by_its_timestamps(tmp_path):
    """Not an error: frames are resampled by their timestamps, so a stream that declares no rate
    (Matroska without a default duration, variable-rate phone video) decodes to the right frames.
    (Frames without timestamps are an error: media.read_video.)"""
    import av
    from fractions import Fraction

    from lmgan.data.media import read_video
    path = tmp_path / "norate.mkv"
    with av.open(str(path), "w", format="matroska") as c:
        v = c.add_stream("mjpeg")
        v.width = v.height = 32
        v.pix_fmt = "yuvj420p"
        v.codec_context.framerate = Fraction(0, 1)
        v.time_base = v.codec_context.time_base = Fraction(1, 1000)
        a = c.add_stream("pcm_s16le", rate=16000, layout="mono")
        for i in range(40):                                    # 2 s at 20 fps, grey level = index
            f = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 5 * i, np.uint8), format="rgb24")
            f.pts, f.time_base = 50 * i + (7, -7)[i % 2] * (0 < i < 39), Fraction(1, 1000)  # jitter
            for p in v.encode(f):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
        af = av.AudioFrame.from_ndarray(np.zeros((1, 32000), np.int16), format="s16", layout="mono")
        af.sample_rate, af.pts = 16000, 0
        for p in [*a.encode(af), *a.encode(None)]:
            c.mux(p)
    with av.open(str(path)) as c:
        assert not c.streams.video[0].codec_context.framerate
    clip = read_video(path, fps=20, size=32)
    assert len(clip.frames) == 40
    levels = clip.frames.reshape(40, -1).mean(1)
    assert np.all(np.abs(levels - 5 * np.arange(40)) < 5 + 3), levels   # within one jittered frame
    assert np.all(np.diff(levels) >= -1), levels


def test_checkpoint_whose_config_does_not_match_its_weights(capsys, tmp_path, bad_files, tiny_run):
    from lmgan.training import checkpoint
    ck = checkpoint.load(tiny_run)
    ck["config"]["g_channel_base"] = 256
    ck.pop("format"), ck.pop("version")
    checkpoint.save(tmp_path / "mismatch.pt", ck)
    rc, err = run(capsys, "render", "--quiet", "--checkpoint", tmp_path / "mismatch.pt", "--audio",
                  bad_files / "tone.wav", "--out", tmp_path / "o.mp4")
    assert_one_line(rc, err, "does not match")


def test_resume_errors(capsys, tmp_path, tiny_run):
    assert_one_line(*run(capsys, "train", "--resume", tmp_path / "nope"), "no run to resume")
    assert_one_line(*run(capsys, "train", "--resume", tiny_run, "--set", "image_size=64"), "cannot change")


def test_missing_vgg_weights_say_how_to_provide_them(capsys, tmp_path, demo_clip):
    rc, err = run(capsys, "train", "--quiet", "--video", demo_clip, "--out", tmp_path / "r", "--preset", "tiny",
                  "--set", "lambda_pl=10")
    assert_one_line(rc, err, "VGG16", "LMGAN_VGG16_WEIGHTS", "vgg16-397923af.pth")
    assert not (tmp_path / "r").exists()


def test_real_process_exit_code_and_one_line(tmp_path):
    """The console entry point itself: exit status 2 and a single stderr line, no traceback."""
    p = subprocess.run([sys.executable, "-m", "lmgan", "train", "--video", str(tmp_path / "none.mp4")],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [f"lmgan: error: {tmp_path / 'none.mp4'}: file not found"]


def test_first_line_of_an_exception():
    from lmgan.errors import first_line
    assert first_line(RuntimeError("boom\n  at frame 1\n  at frame 2")) == "boom"
    assert first_line(ConnectionResetError()) == "ConnectionResetError"   # no text: no IndexError
    assert first_line(ValueError("x" * 50), 10) == "x" * 10


def test_torchaudio_that_does_not_load_into_torch_is_one_line(tmp_path):
    """A hand-upgraded torch or torchaudio (torchaudio 2.11.1 over torch 2.11.0 raises exactly this
    chain in torch.ops.load_library): one line naming both versions and the pip command that repairs
    it. The broken torchaudio is a stand-in package shadowing the real one, with its own version."""
    site = tmp_path / "site"
    (site / "torchaudio").mkdir(parents=True)
    (site / "torchaudio" / "__init__.py").write_text(
        "try:\n"
        "    raise OSError('/x/libtorchaudio.so: undefined symbol: torch_exception_get_what_without_backtrace')\n"
        "except OSError as e:\n"
        "    raise OSError('Could not load this library: /x/libtorchaudio.so') from e\n")
    (site / "torchaudio-2.11.1.dist-info").mkdir()
    (site / "torchaudio-2.11.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: torchaudio\nVersion: 2.11.1\n")
    r = subprocess.run([sys.executable, "-m", "lmgan", "train", "--video", str(tmp_path / "x.mp4"),
                        "--out", str(tmp_path / "run")],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(site)})
    from importlib.metadata import version
    assert_one_line(r.returncode, r.stderr.strip(),
                    "torchaudio 2.11.1 does not load into torch " + version("torch"),
                    "undefined symbol: torch_exception_get_what_without_backtrace",
                    "pip install torch==2.11.0 torchaudio==2.11.0 torchvision==0.26.0")
    assert not (tmp_path / "run").exists()


def test_demo_video_of_no_length_is_one_line(capsys, tmp_path):
    for seconds in ("0", "-1"):
        rc = main(["demo-video", str(tmp_path / "clip.mp4"), "--seconds", seconds])
        assert_one_line(rc, capsys.readouterr().err, f"--seconds {float(seconds):g}", "must be positive")
    assert not (tmp_path / "clip.mp4").exists()


def _without_root_powers(cmd):
    """`cmd` as it runs for a user: as root, without the capability that overrides file
    permissions (setpriv), so a read-only folder is read-only."""
    if os.geteuid() != 0:
        return cmd
    import shutil
    if not shutil.which("setpriv"):
        pytest.skip("running as root and util-linux's setpriv is missing: permissions do not bind")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *cmd]


@pytest.mark.slow
def test_unwritable_output_folders_are_one_line(tmp_path, demo_clip, tiny_run):
    """A folder the user cannot write to: exit 2, one line naming the path, nothing written."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    ckpt = checkpoint.latest(checkpoint.ckpt_dir(tiny_run))
    lm = [sys.executable, "-m", "lmgan"]
    for args in (["demo-video", str(locked / "demo.mp4"), "--seconds", "1"],
                 ["train", "--video", str(demo_clip), "--preset", "tiny", "--out", str(locked / "run"), "--quiet"],
                 ["render", "--checkpoint", str(ckpt), "--audio", str(demo_clip), "--out", str(locked / "r.mp4"),
                  "--quiet"]):
        p = subprocess.run(_without_root_powers(lm + args), capture_output=True, text=True, timeout=300)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1, (args[0], p.stderr[-2000:])
        assert lines[0].startswith(f"lmgan: error: {locked}") and "permission denied" in lines[0], lines
    assert sorted(locked.iterdir()) == []
