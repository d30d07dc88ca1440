"""Sound features: alignment to frame times, gain invariance and the [-80, 0] dB range, and\nblock-wise streaming equals the whole file."""

import numpy as np
import pytest
import torch

from lmgan.config import Config
from lmgan.data.features import SoundFeatures, chunk_db


def tone(start_s, total_s=3.0, sr=16000, hz=1000.0):
    t = np.arange(int(total_s * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * hz * t) * (t >= start_s)).astype(np.float32)


def test_tone_onset_lands_on_its_frame():
    """A tone starting at 1.30 s (frame 26 at 20 fps): frame 25's chunk is silent, 27's is tone.

    Chunk-relative dB: a silent chunk is flat (0 dB in every bin, as librosa makes it), a tone
    chunk spans the full 80 dB from its bin to the floor, so the spread across bins tells them apart.
    """
    cfg = Config()
    fx = SoundFeatures(cfg)
    f = fx(tone(1.30), 0, 60)
    assert f.shape == (60, cfg.n_mels)
    loud = f[40].argmax()                      # the tone's mel bin
    spread = f.max(1).values - f.min(1).values
    assert torch.all(f[:26] == 0)
    assert 10 < spread[26] < 70                # onset frame: part silence, part tone
    assert -70 < f[26, loud] < -10             # the tone's bin is at the floor in the silent part
    assert spread[27] > 77 and f[27, loud] > -1
    assert torch.allclose(spread[28:], torch.full((32,), 80.0)) and torch.all(f[28:, loud] > -0.5)


def test_chunk_db_is_librosa_power_to_db_per_chunk():
    """librosa.power_to_db(chunk, ref=np.max) (amin 1e-10, top_db 80), written out in float64."""
    rng = np.random.default_rng(1)
    p = rng.lognormal(0, 6, (3, 5, 8)).astype(np.float32) * 1e-3
    p[2] = 0                                   # silence
    db = 10 * np.log10(np.maximum(1e-10, p)) - 10 * np.log10(np.maximum(1e-10, p.max((1, 2), keepdims=True)))
    db = np.maximum(db, db.max((1, 2), keepdims=True) - 80)
    assert np.allclose(chunk_db(torch.from_numpy(p)).numpy(), db, atol=1e-4)


@pytest.mark.parametrize("feature", ["log-mel", "mfcc"])
def test_gain_invariant(feature):
    """-20 dB (x 0.1) and +14 dB (x 5) of gain leave the features unchanged."""
    fx = SoundFeatures(Config(feature=feature, fps=25.0))
    rng = np.random.default_rng(2)
    t = np.arange(32000) / 16000
    wave = (0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) * (t > 0.4)
            + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
    f = fx(wave, 0, 50)
    for gain in (0.1, 5.0):
        g = fx(wave * np.float32(gain), 0, 50)
        assert (g - f).abs().max() < 1e-3, gain   # measured: 6e-5 (float32 rounding)


def test_log_mel_range():
    """Every log-mel feature lies in [-80, 0] whatever the sound: white noise, silence, a tone."""
    fx = SoundFeatures(Config())
    rng = np.random.default_rng(3)
    sounds = {"noise": rng.standard_normal(48000).astype(np.float32),
              "quiet noise": 1e-4 * rng.standard_normal(48000).astype(np.float32),
              "silence": np.zeros(48000, np.float32), "tone": tone(0.0)}
    for name, wave in sounds.items():
        f = fx(wave, 0, 60)
        assert f.min() >= -80 and f.max() <= 0, name
    assert torch.all(fx(sounds["silence"], 0, 60) == 0)


@pytest.mark.parametrize("feature", ["log-mel", "mel", "mfcc"])
def test_blockwise_equals_whole(feature):
    """Render computes features block by block from a sliding buffer; results must not change."""
    cfg = Config(feature=feature, fps=25.0)    # 25 fps: frame times off the hop grid
    fx = SoundFeatures(cfg)
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(16000 * 2).astype(np.float32) * 0.1
    whole = fx(wave, 0, 50)
    parts = []
    for t0 in range(0, 50, 7):
        n = min(7, 50 - t0)
        lo = max(0, fx.first_sample(t0))
        hi = fx.samples_needed(t0 + n - 1)
        parts.append(fx(wave[lo:hi], t0, n, offset=lo))
    assert torch.allclose(torch.cat(parts), whole, atol=1e-4, rtol=1e-4)
