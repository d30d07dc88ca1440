"""Render: any sound PyAV reads → an mp4 of duration × fps frames with that sound muxed in."""

import av
import numpy as np
import pytest
import torch

from lmgan.cli import main
from lmgan.data.dataset import load_video_data
from lmgan.data.features import SoundFeatures
from lmgan.data.media import AudioSource, read_audio
from lmgan.nets.model import ListenAndMove
from lmgan.pixels import to_uint8
from lmgan.render import load_model, model_from_checkpoint, stream
from lmgan.training import checkpoint

from support import chirp, write_sound


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



def test_render_is_gain_invariant(tmp_path, tiny_run):
    """The same sound 20 dB quieter renders the same frames (one seed, one checkpoint): the
    features are chunk-relative dB (docs/model.md), so a gain changes none of them.

    Float WAV, so the quiet copy is exactly the loud one times 0.1 (16-bit PCM would add
    quantisation noise 20 dB closer to the signal, a different sound in the quiet bins). The
    frames are compared as render generates them, before x264 encodes them: x264's output for
    the same frames depends on the machine's load (0.61 levels apart on a busy machine)."""
    loud, quiet = (_streamed(tiny_run, write_sound(tmp_path / f"g{gain}.wav", 2.0, "pcm_f32le", layout="mono",
                                                    wave=chirp(2.0, 44100, gain)), seed=3)
                   for gain in (1.0, 0.1))
    assert loud.shape == quiet.shape == (40, 32, 32, 3)
    # Measured: identical. Only a float-rounding flip of one uint8 level on a few pixels is allowed;
    # absolute dB gave mean 1.7 and max 13 levels.
    assert np.abs(loud - quiet).max() <= 1 and (loud != quiet).mean() < 1e-3


def test_white_noise_lands_in_the_training_range(tmp_path, tiny_run, demo_clip):
    """White noise at any level, read as render reads it and normalised with the model's
    training statistics, stays near the range the demo clip's training part spans per bin.

    Measured (tiny preset, 16 mel bins, noise sd 0.001 … 1): max |z| 4.9-5.4 and at most
    0.7 sd beyond the per-bin training range; with absolute dB it was max |z| 5.7-11.1 and up to
    4.3 sd beyond (the quiet noise), shifting with the level."""
    model, cfg = load_model(tiny_run, torch.device("cpu"))
    data = load_video_data(demo_clip, cfg, progress=False)
    z = lambda f: (f - model.feat_mean) / model.feat_std
    train = z(data.feats[: data.n_train])
    lo, hi = train.min(0).values, train.max(0).values
    rng = np.random.default_rng(0)
    fx = SoundFeatures(cfg)
    for sd in (0.001, 0.1, 1.0):
        sound = write_sound(tmp_path / f"noise{sd}.wav", 3.0, "pcm_f32le", layout="mono",
                            wave=sd * rng.standard_normal(3 * 44100))
        wave = read_audio(sound, cfg.sample_rate)
        f = z(fx(wave, 0, 59))
        assert f.abs().max() < 6, sd
        assert torch.maximum(f - hi, lo - f).max() < 1, sd


class Collected:
    """A render sink that keeps what it is given (VideoWriter's add_frames/add_audio)."""

    def __init__(self):
        self.frames, self.audio = [], []

    def add_frames(self, frames):
        self.frames.append(frames)

    def add_audio(self, block):
        self.audio.append(block)


def test_render_of_the_clips_own_sound_is_what_training_generates(tiny_run, demo_clip):
    """Streaming render of the training clip's own sound = the model run as training runs it,
    written here independently of render: the checkpoint's weights in a fresh model normalised
    with the training part's statistics, the training-time features of the decoded clip,
    consecutive windows from frame 0 with the state carried, the same seed. Features (stream
    offset, grid), normalisation (saved with the weights) and carried state must all agree."""
    ck = checkpoint.load(tiny_run)
    model, cfg = model_from_checkpoint(ck, tiny_run, torch.device("cpu"))
    data = load_video_data(demo_clip, cfg, progress=False)
    sink = Collected()
    with AudioSource(demo_clip) as src:
        n, _ = stream(model, cfg, src, sink, seed=5)
    got = np.concatenate(sink.frames).astype(int)
    assert n == data.n_frames == len(got) == 80 and not sink.audio

    ref = ListenAndMove(cfg)
    ref.load_state_dict(ck["model"])
    ref.set_feature_stats(*data.feature_stats())
    torch.manual_seed(5)
    state, want = ref.initial_state(1, "cpu"), []
    with torch.no_grad():
        for t in range(0, data.n_frames, cfg.seq_len):
            frames, state = ref.generate(data.feats[t:t + cfg.seq_len][None], state)
            want.append(to_uint8(frames[0]))
    want = np.concatenate(want).astype(int)
    # The same computation: only a float-rounding flip of one uint8 level on a few pixels is allowed.
    assert np.abs(got - want).max() <= 1 and (got != want).mean() < 1e-3


def _streamed(ckpt, sound, seed=3):
    """The frames `lmgan render --checkpoint ckpt --audio sound --seed seed` generates, as uint8
    [n, S, S, 3] before they are encoded (render.stream into a sink that keeps them)."""
    model, cfg = load_model(ckpt, torch.device("cpu"))
    sink = Collected()
    with AudioSource(sound) as src:
        n, _ = stream(model, cfg, src, sink, seed=seed)
    frames = np.concatenate(sink.frames).astype(int)
    assert len(frames) == n
    return frames


def test_a_trained_model_moves_with_its_sound(tmp_path, tiny_run, demo_clip):
    """Render's frames from one seed: another sound → other frames; the same sound again → the
    same frames, bit for bit (compared before encoding, so x264 cannot blur either)."""
    own = write_sound(tmp_path / "own.wav", 4.0, "pcm_f32le", layout="mono",
                      wave=read_audio(demo_clip, 44100))
    other = write_sound(tmp_path / "chirp.wav", 4.0, "pcm_f32le", layout="mono")
    a, again, b = (_streamed(tiny_run, s) for s in (own, own, other))
    assert a.shape == b.shape == (80, 32, 32, 3)
    assert np.array_equal(a, again)
    assert np.abs(a - b).mean() > 1.0


def _clicks(seconds, rate, at):
    wave = np.zeros(int(seconds * rate), np.float32)
    for s in at:
        wave[int(s * rate):int(s * rate) + 32] = 0.8
    return wave


def _decoded_sound(path):
    with av.open(str(path)) as c:
        rate = c.streams.audio[0].rate
        wave = np.concatenate([f.to_ndarray().mean(0) for f in c.decode(audio=0)])
    return wave, rate


def test_render_sound_track_keeps_the_inputs_duration_and_timing(tmp_path, tiny_run):
    """The muxed sound is the input's: same length (to an AAC frame), clicks at the same times
    (to a millisecond), and as many frames as the sound lasts."""
    at = [0.5, 1.3, 2.05, 2.9]
    sound = write_sound(tmp_path / "clicks.wav", 3.2, "pcm_f32le", layout="mono", wave=_clicks(3.2, 44100, at))
    out = tmp_path / "clicks.mp4"
    assert main(["render", "--checkpoint", str(tiny_run), "--audio", str(sound), "--out", str(out), "--quiet"]) == 0
    wave, rate = _decoded_sound(out)
    assert rate == 44100 and abs(len(wave) / rate - 3.2) < 1024 / rate, len(wave) / rate
    loud = np.flatnonzero(np.abs(wave) > 0.3)
    onsets = loud[np.r_[True, np.diff(loud) > rate // 10]] / rate
    assert len(onsets) == len(at) and np.abs(onsets - at).max() < 1e-3, onsets
    n, _, _ = frames_and_streams(out)
    assert n == 64


def test_sound_shorter_than_one_frame_is_one_line_and_writes_nothing(tmp_path, tiny_run, capsys):
    sound = write_sound(tmp_path / "blip.wav", 0.02, "pcm_s16le", layout="mono")
    out = tmp_path / "blip.mp4"
    assert main(["render", "--checkpoint", str(tiny_run), "--audio", str(sound), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "shorter than one frame" in err[0], err
    assert not out.exists()
