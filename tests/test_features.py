"""Sound features: alignment to frame times, and block-wise streaming equals the whole file."""

import numpy as np
import pytest
import torch

from lmgan.config import Config
from lmgan.data.features import SoundFeatures


def tone(start_s, total_s=3.0, sr=16000, hz=1000.0):
    t = np.arange(int(total_s * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * hz * t) * (t >= start_s)).astype(np.float32)


def test_tone_onset_lands_on_its_frame():
    """A tone starting at 1.30 s (frame 26 at 20 fps): frame 25's chunk is silent, 27's is tone."""
    cfg = Config()
    fx = SoundFeatures(cfg)
    f = fx(tone(1.30), 0, 60)
    assert f.shape == (60, cfg.n_mels)
    loud = f[40].argmax()                      # the tone's mel bin
    silent_level, tone_level = f[10, loud], f[40, loud]
    assert tone_level - silent_level > 50      # dB
    assert torch.allclose(f[:26, loud], torch.full((26,), float(silent_level)), atol=1e-3)
    assert silent_level + 10 < f[26, loud] < tone_level - 1   # onset frame: part silence, part tone
    assert abs(f[27, loud] - tone_level) < 3
    assert torch.allclose(f[28:, loud], torch.full((32,), float(tone_level)), atol=0.5)


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
