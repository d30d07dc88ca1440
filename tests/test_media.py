"""Media I/O: timestamp resampling, crop, audio alignment, formats, errors, atomic writes."""

from fractions import Fraction

import av
import numpy as np
import pytest

from lmgan.data.demo import make_demo_video
from lmgan.data.media import (
    AudioSource,
    Resampler,
    VideoWriter,
    file_sha256,
    probe,
    read_audio,
    read_video,
    write_video,
)
from lmgan.errors import LmganError


def _ramp_frames(n, height=32, width=48, step=6):
    """Frame i is a flat grey of brightness i*step, so a decoded frame tells its source index."""
    return np.repeat((np.arange(n) * step).astype(np.uint8), height * width * 3).reshape(n, height, width, 3)


def _click(seconds, sr, at, channels=1):
    audio = np.zeros((channels, int(seconds * sr)), np.float32)
    audio[:, int(round(at * sr))] = 0.9
    return audio


def _source_index(frames, step=6):
    return np.round(frames.reshape(len(frames), -1).mean(1) / step).astype(int)


def _write_audio_file(path, codec, rate, seconds=1.0, layout="mono", fmt=None):
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=rate, layout=layout)
        for i in range(0, tone.shape[1], 1000):
            block = np.ascontiguousarray(tone[:, i : i + 1000])
            f = av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
            f.sample_rate, f.pts, f.time_base = rate, i, Fraction(1, rate)
            c.mux(s.encode(f))
        c.mux(s.encode(None))


@pytest.mark.parametrize("src_fps", [25, 30000 / 1001, 60])
def test_round_trip_resamples_by_timestamps(tmp_path, src_fps):
    n = 40
    path = tmp_path / "ramp.mp4"
    write_video(path, _ramp_frames(n), src_fps, _click(n / src_fps, 16000, 0.5), 16000)
    clip = read_video(path, fps=20, size=16)
    duration = n / src_fps
    assert clip.frames.shape == (int(np.floor(duration * 20 + 1e-9)), 16, 16, 3)
    assert clip.frames.dtype == np.uint8 and clip.audio.dtype == np.float32
    assert clip.fps == 20.0 and clip.sample_rate == 16000
    assert len(clip.audio) == round(len(clip.frames) / 20 * 16000)
    # Output frame t shows the source frame displayed at t/20 s (latest pts <= t/20).
    expected = np.floor(np.arange(len(clip.frames)) / 20 * src_fps + 1e-6).astype(int)
    np.testing.assert_array_equal(_source_index(clip.frames), expected)


def test_variable_frame_rate(tmp_path):
    times = [0.0, 0.02, 0.13, 0.14, 0.31, 0.32, 0.33, 0.6, 0.75]  # ms precision, irregular
    path = tmp_path / "vfr.mp4"
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 32, 32, "yuv420p"
        vs.codec_context.time_base = Fraction(1, 1000)
        aus = c.add_stream("aac", rate=16000, layout="mono")
        for i, t in enumerate(times):
            f = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 20, np.uint8), format="rgb24")
            f.pts, f.time_base = round(t * 1000), Fraction(1, 1000)
            c.mux(vs.encode(f))
        a = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="fltp", layout="mono")
        a.sample_rate, a.pts, a.time_base = 16000, 0, Fraction(1, 16000)
        c.mux(aus.encode(a))
        c.mux(aus.encode(None))
        c.mux(vs.encode(None))
    clip = read_video(path, fps=20, size=8)
    got = _source_index(clip.frames, step=20)
    expected = [np.searchsorted(times, k / 20 + 1e-9, side="right") - 1 for k in range(len(got))]
    np.testing.assert_array_equal(got, expected)
    assert len(got) >= 15  # last frame shown up to ~0.79 s


def test_centre_crop_and_crop_box(tmp_path):
    frame = np.zeros((1, 32, 64, 3), np.uint8)
    frame[:, :, :32] = (255, 0, 0)
    frame[:, :, 32:] = (0, 0, 255)
    path = tmp_path / "halves.mp4"
    write_video(path, np.repeat(frame, 10, 0), 25, _click(0.4, 16000, 0.1), 16000)

    centred = read_video(path, fps=20, size=16).frames[0].astype(int)
    assert (centred[:, :6, 0] > 200).all() and (centred[:, :6, 2] < 60).all()  # left of centre: red
    assert (centred[:, 10:, 2] > 200).all() and (centred[:, 10:, 0] < 60).all()  # right: blue
    left = read_video(path, fps=20, size=16, crop=(0, 0, 28, 32)).frames[0].astype(int)
    right = read_video(path, fps=20, size=16, crop=(36, 0, 28, 32)).frames[0].astype(int)
    assert left[..., 0].min() > 200 and left[..., 2].max() < 60
    assert right[..., 2].min() > 200 and right[..., 0].max() < 60
    for bad in [(40, 0, 32, 32), (-1, 0, 8, 8), (0, 0, 0, 8)]:
        with pytest.raises(LmganError, match="crop"):
            read_video(path, crop=bad)


@pytest.mark.parametrize("click_at", [0.5, 1.234])
def test_audio_click_lands_on_its_sample(tmp_path, click_at):
    path = tmp_path / "click.mp4"
    write_video(path, _ramp_frames(50), 25, _click(2.0, 44100, click_at, channels=2), 44100)
    clip = read_video(path, fps=20, sample_rate=16000, size=8)
    assert abs(int(np.argmax(np.abs(clip.audio))) - click_at * 16000) <= 16  # 1 ms


@pytest.mark.parametrize("video_start,audio_start", [(0.0, 0.3), (0.2, 0.0)])
def test_audio_aligned_to_first_frame_by_timestamps(tmp_path, video_start, audio_start):
    """Late audio is zero-padded, early audio is cut: sample 0 is the time of the first frame."""
    path = tmp_path / "offset.mp4"
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 16, 16, "yuv420p"
        aus = c.add_stream("aac", rate=16000, layout="mono")
        for i in range(40):
            f = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
            f.pts, f.time_base = i + round(video_start * 25), Fraction(1, 25)
            c.mux(vs.encode(f))
        a = av.AudioFrame.from_ndarray(_click(1.5, 16000, 0.5), format="fltp", layout="mono")
        a.sample_rate, a.pts, a.time_base = 16000, round(audio_start * 16000), Fraction(1, 16000)
        c.mux(aus.encode(a))
        c.mux(aus.encode(None))
        c.mux(vs.encode(None))
    clip = read_video(path, fps=20, size=8)
    assert len(clip.audio) == 32 * 800
    assert abs(int(np.argmax(np.abs(clip.audio))) - (0.5 + audio_start - video_start) * 16000) <= 16
    if audio_start > video_start:
        assert np.abs(clip.audio[: round((audio_start - video_start) * 16000) - 50]).max() == 0


def test_mp4_streams(tmp_path):
    path = tmp_path / "out" / "nested" / "v.mp4"
    write_video(path, _ramp_frames(10), 20, np.zeros(8000, np.float32), 16000)
    with av.open(str(path)) as c:
        assert [s.codec_context.name for s in c.streams.video] == ["h264"]
        assert [s.codec_context.name for s in c.streams.audio] == ["aac"]
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
    info = probe(path)
    assert info["has_video"] and info["has_audio"] and info["audio_rate"] == 16000
    assert (info["width"], info["height"], info["fps"]) == (48, 32, 20.0)
    assert abs(info["duration"] - 0.5) < 0.1
    assert len(file_sha256(path)) == 64


@pytest.mark.parametrize(
    "name,codec,rate,fmt",
    [
        ("a.wav", "pcm_s16le", 22050, None),
        ("a.flac", "flac", 44100, None),
        ("a.mp3", "libmp3lame", 44100, None),
        ("a.ogg", "libopus", 48000, "ogg"),
    ],
)
def test_audio_formats(tmp_path, name, codec, rate, fmt):
    path = tmp_path / name
    _write_audio_file(path, codec, rate, seconds=1.0, fmt=fmt)
    with AudioSource(path) as src:
        assert src.rate == rate and src.channels == 1
        assert src.duration is not None and abs(src.duration - 1.0) < 0.1
        assert sum(f.samples for f in src.frames()) > 0.9 * rate
    audio = read_audio(path, sample_rate=16000)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 16000) < 0.06 * 16000
    assert 0.3 < np.abs(audio).max() <= 1.0


def test_audio_of_a_video_and_resampler_block_invariance(tmp_path):
    path = tmp_path / "v.mp4"
    write_video(path, _ramp_frames(25), 25, _click(1.0, 44100, 0.25, channels=2), 44100)
    with AudioSource(path) as src:
        assert (src.rate, src.channels) == (44100, 2)
        frames = list(src.frames())
    whole = np.concatenate([f.to_ndarray() for f in frames], axis=1)

    def run(blocks):
        r = Resampler(16000, "mono")
        parts = []
        for b in blocks:
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(b), format="fltp", layout="stereo")
            f.sample_rate = 44100
            parts.append(r(f))
        parts.append(r(None))
        return np.concatenate(parts, axis=1)

    mono = Resampler(44100, "mono")  # no conversion needed: PyAV passes frames through
    f = av.AudioFrame.from_ndarray(np.ascontiguousarray(whole[:1]), format="fltp", layout="mono")
    f.sample_rate = 44100
    assert mono(f).shape == (1, whole.shape[1]) and mono(None).shape == (1, 0)
    switch = Resampler(16000, "mono")  # input format changing mid-stream: flushed, not failed
    a = av.AudioFrame.from_ndarray(np.ascontiguousarray(whole[:, :4410]), format="fltp", layout="stereo")
    b = av.AudioFrame.from_ndarray(np.zeros((1, 2205), np.float32), format="fltp", layout="mono")
    a.sample_rate, b.sample_rate = 44100, 22050
    got = np.concatenate([switch(a), switch(b), switch(None)], axis=1)
    assert abs(got.shape[1] - 3200) <= 2
    one = run([whole])
    many = run(np.array_split(whole, [37, 1000, 1001, 20000], axis=1))
    assert one.shape == many.shape and one.shape[0] == 1
    np.testing.assert_allclose(one, many, atol=1e-6)


def _assert_error(fn, path, *words):
    with pytest.raises(LmganError) as info:
        fn(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    for w in words:
        assert w in msg
    return msg


def test_errors(tmp_path):
    good = tmp_path / "good.mp4"
    write_video(good, _ramp_frames(25), 25, _click(1.0, 16000, 0.2), 16000)
    half = tmp_path / "half.mp4"
    half.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video\n" * 100)
    wav = tmp_path / "a.wav"
    _write_audio_file(wav, "pcm_s16le", 16000)
    silent = tmp_path / "silent.mp4"
    write_video(silent, _ramp_frames(10), 25)

    kinds = {}  # problem -> message text without the path
    for fn in (read_video, AudioSource, probe, read_audio):
        kinds["missing"] = _assert_error(fn, tmp_path / "missing.mp4", "not found")
        kinds["directory"] = _assert_error(fn, tmp_path, "directory")
        kinds["empty"] = _assert_error(fn, empty, "empty")
        kinds["truncated"] = _assert_error(fn, half, "decode")
        kinds["garbage"] = _assert_error(fn, garbage, "decode")
    kinds["no video"] = _assert_error(read_video, wav, "no video stream")
    kinds["no audio"] = _assert_error(read_video, silent, "no audio")
    _assert_error(AudioSource, silent, "no audio")
    texts = {k: m.split(": ", 1)[1] for k, m in kinds.items()}
    assert len(set(texts.values())) == len(texts) - 1  # a moov-less half and garbage are one problem
    assert not probe(silent)["has_audio"] and not probe(wav)["has_video"]
    with pytest.raises(LmganError):
        file_sha256(tmp_path / "missing.mp4")


def test_truncated_faststart_mp4(tmp_path):
    """moov at the front: the first half opens and decodes, so the short decode must be caught."""
    path = tmp_path / "fs.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", options={"movflags": "faststart"}) as c:
        vs = c.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        aus = c.add_stream("aac", rate=16000, layout="mono")
        for i in range(100):
            f = av.VideoFrame.from_ndarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 25)
            c.mux(vs.encode(f))
        a = av.AudioFrame.from_ndarray(np.zeros((1, 64000), np.float32), format="fltp", layout="mono")
        a.sample_rate, a.pts, a.time_base = 16000, 0, Fraction(1, 16000)
        c.mux(aus.encode(a))
        c.mux(aus.encode(None))
        c.mux(vs.encode(None))
    assert read_video(path, size=8).frames.shape[0] == 80
    half = tmp_path / "fs_half.mp4"
    half.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _assert_error(read_video, half, "truncated")


def test_writer_is_atomic(tmp_path):
    path = tmp_path / "v.mp4"
    write_video(path, _ramp_frames(5), 25)
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        with VideoWriter(path, 25, 48, 32, audio_rate=16000) as w:
            w.add_frames(_ramp_frames(30, step=8))
            w.add_audio(np.zeros((1, 5000), np.float32))
            raise RuntimeError("boom")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]
    with pytest.raises(ValueError):
        VideoWriter(tmp_path / "w.mp4", 25, 48, 32, audio_rate=17000)
    with VideoWriter(path, 25, 48, 32, audio_rate=16000) as w:  # replaced on a clean close
        w.add_frames(_ramp_frames(30, step=8))
        for block in np.array_split(np.zeros((1, 19200), np.float32), 7, axis=1):
            w.add_audio(block)
    assert path.read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]
    assert read_video(path, fps=25, size=8).frames.shape[0] == 30


def test_demo_video(tmp_path):
    path = tmp_path / "demo.mp4"
    make_demo_video(path, seconds=3)
    info = probe(path)
    assert info["has_audio"] and info["width"] != info["height"] and info["fps"] != 20
    clip = read_video(path, fps=20, size=32, progress=True)
    assert clip.frames.shape == (60, 32, 32, 3)
    assert clip.frames.astype(float).std(axis=0).mean() > 2  # the picture moves
    assert np.abs(clip.audio).max() > 0.1
    again = tmp_path / "again.mp4"
    make_demo_video(again, seconds=3)
    np.testing.assert_allclose(read_video(again, fps=20, size=32).frames, clip.frames, atol=2)
