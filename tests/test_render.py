"""Render: any sound PyAV reads → an mp4 of duration × fps frames with that sound muxed in."""

import av
import numpy as np
import pytest

from lmgan.cli import main


def write_sound(path, seconds, codec, rate=44100, layout="stereo"):
    """A real encoded sound file: a chirp, written with PyAV."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    wave = (0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t)).astype(np.float32)
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=rate, layout=layout)
        chans = 2 if layout == "stereo" else 1
        fmt = s.codec_context.format.name
        planar = fmt.endswith("p")
        data = np.tile(wave, (chans, 1))
        step = 1024
        for i in range(0, n, step):
            block = data[:, i:i + step]
            if fmt.startswith("s16"):
                block = (block * 32767).astype(np.int16)
            elif fmt.startswith("s32"):
                block = (block * 2147483647).astype(np.int32)
            arr = block if planar else block.T.reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=fmt, layout=layout)
            frame.sample_rate = rate
            frame.pts = i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def frames_and_streams(path):
    with av.open(str(path)) as c:
        types = sorted(s.type for s in c.streams)
        n = sum(1 for _ in c.decode(video=0))
        dur = float(c.duration / av.time_base)
    return n, types, dur


@pytest.mark.parametrize("name, codec, seconds, layout", [
    ("a.wav", "pcm_s16le", 2.3, "mono"), ("a.flac", "flac", 1.7, "stereo"),
    ("a.mp3", "libmp3lame", 2.0, "stereo"), ("a.ogg", "libopus", 1.55, "stereo"),
])
def test_render_any_sound(tmp_path, tiny_run, name, codec, seconds, layout):
    rate = 48000 if codec == "libopus" else 44100
    sound = write_sound(tmp_path / name, seconds, codec, rate=rate, layout=layout)
    out = tmp_path / "out.mp4"
    assert main(["render", "--checkpoint", str(tiny_run), "--audio", str(sound), "--out", str(out), "--quiet"]) == 0
    n, types, _ = frames_and_streams(out)
    assert types == ["audio", "video"]
    assert abs(n - seconds * 20) <= 1


def test_render_from_a_videos_sound(tmp_path, tiny_run, demo_clip):
    out = tmp_path / "from_video.mp4"
    ckpt = sorted((tiny_run / "checkpoints").glob("ckpt_*.pt"))[-1]
    assert main(["render", "--checkpoint", str(ckpt), "--audio", str(demo_clip), "--out", str(out), "--quiet"]) == 0
    n, types, _ = frames_and_streams(out)
    assert types == ["audio", "video"] and abs(n - 4.0 * 20) <= 1


def test_render_longer_than_many_windows(tmp_path, tiny_run):
    """12 s = 30 windows of 8 frames: state carries across windows, length stays exact."""
    sound = write_sound(tmp_path / "long.wav", 12.0, "pcm_s16le", rate=22050, layout="mono")
    out = tmp_path / "long.mp4"
    assert main(["render", "--checkpoint", str(tiny_run), "--audio", str(sound), "--out", str(out), "--quiet"]) == 0
    n, _, _ = frames_and_streams(out)
    assert abs(n - 240) <= 1

