"""The held-out split (DESIGN §1, paper 4.2): the first 80 % of the video (in time) trains, the
last 20 % is held out, and nothing of the held-out part, neither its frames nor its sound, ever
reaches a training step; evaluation generates exactly the held-out part.

Written from that rule, not from the current output: every window and every sample index is
enumerated and compared with the boundary time n_train / fps.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lmgan import weights
from lmgan.config import Config, apply_overrides, validate
from lmgan.data.dataset import TrainStreams, VideoData, _write_entry, load_cached, load_video_data
from lmgan.data.features import SoundFeatures
from lmgan.metrics.evaluator import Evaluator, heldout_pass

TINY = dict(image_size=32, seq_len=8, n_mels=16, rnn_layers=2, g_channel_base=128, d_channel_base=128,
            max_channels=16, lambda_pl=0, d_norm="layer")


def _cfg(**kw) -> Config:
    return validate(apply_overrides(Config(), {**TINY, **kw}, "test"))


def _first_heldout_sample(n_train: int, cfg: Config) -> int:
    """Samples i with i / sample_rate < n_train / fps train; the rest is held out."""
    return math.ceil(n_train * cfg.sample_rate / cfg.fps - 1e-9)


# ------------------------------------------------------------------------------ where the boundary is
@pytest.mark.parametrize("frames, frac, n_train", [(80, 0.8, 64), (82, 0.8, 65), (99, 0.8, 79), (10, 0.7, 7)])
def test_the_training_part_is_the_first_train_frac_of_the_time(tmp_path, monkeypatch, frames, frac, n_train):
    """Frames 0 … n_train−1 cover [0, n_train / fps): the largest n_train with
    n_train ≤ train_frac · T, so no training frame reaches into the last 20 % (82 frames: 65.6 →
    65, not 66, whose frame would straddle the boundary); float rounding must not lose a frame
    either (10 × 0.7 is 6.999… in floating point)."""
    monkeypatch.setenv("LMGAN_CACHE", str(tmp_path))
    cfg = _cfg(train_frac=frac)
    s = cfg.image_size
    audio = np.zeros(round(frames / cfg.fps * cfg.sample_rate), np.float32)
    _write_entry(weights.cache_dir() / "data" / "k", np.zeros((frames, s, s, 3), np.uint8),
                 np.zeros((frames, cfg.n_mels), np.float32), audio, {"source": "synthetic"})
    data = load_cached("k", cfg)
    assert data.n_train == n_train and data.n_frames == frames


# ------------------------------------------------------------------------------ training never reads it
@pytest.mark.parametrize("n_train, seq_len, batch, restart_every", [
    (24, 8, 1, 0), (24, 8, 2, 2), (25, 8, 3, 1), (64, 16, 4, 4), (9, 8, 2, 0), (8, 8, 1, 0), (100, 7, 5, 3),
])
def test_training_windows_lie_in_the_training_part_and_cover_it(n_train, seq_len, batch, restart_every):
    """Every window the streams hand out, through wrap-arounds and restarts, is frames
    [start, start + L) with 0 ≤ start and start + L ≤ n_train; and the whole training part is
    used (every training frame is in some window)."""
    streams = TrainStreams(n_train, seq_len, batch, seed=1, restart_every=restart_every)
    seen = np.zeros(n_train, bool)
    for _ in range(3000 // batch):
        starts, reset = streams.next()
        assert len(starts) == len(reset) == batch
        for s in starts:
            assert 0 <= s and s + seq_len <= n_train, (s, seq_len, n_train)
            seen[s:s + seq_len] = True
    assert seen.all()


def _poisoned(cfg: Config, train_windows: int = 3, heldout_windows: int = 1) -> VideoData:
    """Random training frames and features; the held-out part's frames and features are NaN,
    so anything that reads them turns the losses (or the normalisation) into NaN."""
    n_train, n = train_windows * cfg.seq_len, (train_windows + heldout_windows) * cfg.seq_len
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (n, cfg.image_size, cfg.image_size, 3), generator=g).float()
    feats = torch.randn(n, cfg.n_mels, generator=g) * 10 - 40
    frames[n_train:], feats[n_train:] = float("nan"), float("nan")
    audio = np.zeros(round(n / cfg.fps * cfg.sample_rate), np.float32)
    return VideoData(frames=frames, feats=feats, audio=audio, fps=cfg.fps, sample_rate=cfg.sample_rate,
                     n_train=n_train, key="poisoned", source="synthetic", cached=False)


def test_a_training_step_reads_no_held_out_frame_or_feature(tmp_path):
    """Training steps (2 streams, restarting every 2 windows, through several wrap-arounds of a
    3-window training part) and the model's input normalisation touch only the training part:
    with NaN held out, every loss and weight stays finite."""
    from lmgan.training.loop import Trainer
    cfg = _cfg(batch=2, restart_every=2, iters=12)
    data = _poisoned(cfg)
    trainer = Trainer(cfg, data, tmp_path / "run")
    assert torch.isfinite(trainer.model.feat_mean).all() and torch.isfinite(trainer.model.feat_std).all()
    for _ in range(12):
        trainer.step()
    assert torch.isfinite(trainer._loss_sum).all(), trainer._loss_sum
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    # The poison works: a held-out window does make the model's output NaN.
    held = data.feats[data.n_train:data.n_train + cfg.seq_len][None]
    with torch.no_grad():
        out, _ = trainer.model.generate(held, trainer.model.initial_state(1, "cpu"))
    assert torch.isnan(out).all()


@pytest.mark.parametrize("fps", [20.0, 25.0, 30.0])
def test_training_features_hear_only_the_training_sound(tmp_path, monkeypatch, fps):
    """The features of frames 0 … n_train−1, as the dataset gives them, are the features of the
    training sound alone (samples before n_train / fps; after it, silence): the same whatever
    the held-out part sounds like. A frame's chunk reaches 42.5 ms past its time, so at 25 or
    30 fps the last training frame's chunk would otherwise hear the held-out sound."""
    monkeypatch.setenv("LMGAN_CACHE", str(tmp_path))
    cfg = _cfg(fps=fps)
    frames = 3 * cfg.seq_len * 5 // 4 + 3            # n_train not a multiple of anything
    n_train = int(frames * cfg.train_frac)
    end = _first_heldout_sample(n_train, cfg)
    rng = np.random.default_rng(0)
    sound = (0.01 * rng.standard_normal(round(frames / fps * cfg.sample_rate))).astype(np.float32)
    sound[end:] *= 100                                # a quiet training part, a loud held-out part
    fx = SoundFeatures(cfg)
    whole = fx(sound, 0, frames).numpy()              # what load_video_data caches
    _write_entry(weights.cache_dir() / "data" / "k", np.zeros((frames, 32, 32, 3), np.uint8), whole, sound,
                 {"source": "synthetic"})
    data = load_cached("k", cfg)
    assert data.n_train == n_train
    training_only = fx(sound[:end], 0, data.n_train)
    torch.testing.assert_close(data.feats[:data.n_train], training_only, atol=1e-4, rtol=0)
    if fps != 20:   # here the features of the whole sound do hear the held-out part
        assert (torch.from_numpy(whole[:data.n_train]) - training_only).abs().max() > 1
    # The held-out frames keep the features of the whole sound (evaluation feeds them as they are).
    torch.testing.assert_close(data.feats[data.n_train:], torch.from_numpy(whole[data.n_train:]), atol=0, rtol=0)


def test_a_decoded_clips_training_features_hear_only_its_training_sound(demo_clip):
    """The same through load_video_data on a real decoded clip (4 s: 64 training frames):
    its training features are those of its training sound, silence after."""
    cfg = _cfg()
    data = load_video_data(demo_clip, cfg, progress=False)
    end = _first_heldout_sample(data.n_train, cfg)
    assert data.n_train == 64 and end == 64 * 800
    want = SoundFeatures(cfg)(data.audio[:end].copy(), 0, data.n_train)
    torch.testing.assert_close(data.feats[:data.n_train], want, atol=1e-4, rtol=0)


# ------------------------------------------------------------------------------ evaluation reads only it
def test_held_out_windows_are_consecutive_and_after_the_boundary():
    """heldout_starts: consecutive, non-overlapping windows from frame n_train on, as many as
    fit before the end (eval_windows limits their number), and audio_span(s, n) is the sound of
    frames s … s+n−1: samples [s / fps · sr, (s + n) / fps · sr)."""
    cfg = _cfg()
    n_train, n = 40, 67
    data = VideoData(frames=torch.zeros(n, 1, 1, 3, dtype=torch.uint8), feats=torch.zeros(n, 1),
                     audio=np.arange(round(n / cfg.fps * cfg.sample_rate), dtype=np.float32), fps=cfg.fps,
                     sample_rate=cfg.sample_rate, n_train=n_train, key="k", source="", cached=False)
    assert data.heldout_starts(8) == [40, 48, 56]                  # 64 + 8 > 67: no fourth
    assert data.heldout_starts(8, limit=2) == [40, 48]
    assert data.heldout_starts(5) == [40, 45, 50, 55, 60]
    span = data.audio_span(48, 8)
    assert span[0] == 48 * 800 and span[-1] == 56 * 800 - 1 and len(span) == 8 * 800


class Recording(torch.nn.Module):
    """A stand-in generator: frames that are a fixed function of each frame's features, and a
    record of every window it is asked for (the features it was given)."""

    def __init__(self, size: int):
        super().__init__()
        self.size, self.calls = size, []

    def initial_state(self, batch, device):
        return {"motion": [], "vp": None}

    def generate(self, feats, state):
        self.calls.append(feats[0].clone())
        v = torch.tanh(feats.mean(-1) / 20)                     # [1, T]
        return v[..., None, None, None].expand(*v.shape, 3, self.size, self.size).clone(), state


def test_evaluation_generates_the_held_out_part_from_its_own_sound():
    """heldout_pass feeds the generator the held-out windows' features, in order from n_train,
    and scores each against the real frames of the same window."""
    cfg = _cfg(seq_len=5)
    n_train, n = 15, 32
    g = torch.Generator().manual_seed(0)
    data = VideoData(frames=torch.randint(0, 256, (n, 4, 4, 3), dtype=torch.uint8, generator=g),
                     feats=torch.randn(n, cfg.n_mels, generator=g), audio=np.arange(n * 800, dtype=np.float32),
                     fps=cfg.fps, sample_rate=cfg.sample_rate, n_train=n_train, key="k", source="", cached=False)
    model, seen = Recording(4), []
    ev = Evaluator(["psnr"], torch.device("cpu"), fps=cfg.fps, sample_rate=cfg.sample_rate)
    heldout_pass(model, data, cfg, torch.device("cpu"), ev, seed=0,
                 on_window=lambda s, fake, real: seen.append((s, real)))
    starts = [15, 20, 25]
    assert [s for s, _ in seen] == starts and len(model.calls) == 3
    for (s, real), fed in zip(seen, model.calls):
        torch.testing.assert_close(fed, data.feats[s:s + 5], atol=0, rtol=0)
        torch.testing.assert_close(real, data.frames[s:s + 5].movedim(-1, -3).float() / 127.5 - 1)
