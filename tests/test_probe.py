"""The `sensitivity` probe (docs/evaluation.md, metrics): "the held-out part generated again, with
the same noise, from its sound time-shifted by half its length; mean |change| relative to how much
the real video differs between the same two moments"; `sensitivity_silence` the same from silence.

Tested with a stand-in generator whose frames are a known function of the features it is given,
so what the probe feeds it and what it reports can be computed here by hand from that sentence.
"""

from __future__ import annotations

import numpy as np
import torch

from lmgan.config import Config
from lmgan.data.dataset import VideoData
from lmgan.data.features import SoundFeatures
from lmgan.metrics.evaluator import Evaluator, heldout_pass

L, WINDOWS, N_TRAIN, SIZE = 5, 3, 10, 4
HELD = L * WINDOWS                  # 15 held-out frames: odd, so +7 and −7 are different shifts
SHIFT = HELD // 2


def _cfg() -> Config:
    return Config(image_size=SIZE, seq_len=L, n_mels=16)


def _data(cfg: Config) -> VideoData:
    n = N_TRAIN + HELD
    g = torch.Generator().manual_seed(0)
    return VideoData(frames=torch.randint(0, 256, (n, SIZE, SIZE, 3), dtype=torch.uint8, generator=g),
                     feats=torch.randn(n, cfg.n_mels, generator=g) * 10 - 40,
                     audio=np.zeros(round(n / cfg.fps * cfg.sample_rate), np.float32), fps=cfg.fps,
                     sample_rate=cfg.sample_rate, n_train=N_TRAIN, key="probe", source="", cached=False)


def picture(feats: torch.Tensor) -> torch.Tensor:
    """The stand-in's frames [T, 3, S, S] from features [T, F]: each frame a grey level that
    depends on its own features only."""
    v = torch.tanh((feats.mean(-1) + 40) / 5)
    return v[:, None, None, None].expand(-1, 3, SIZE, SIZE)


class StandIn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.calls: list[torch.Tensor] = []

    def initial_state(self, batch, device):
        return {"motion": [], "vp": None}

    def generate(self, feats, state):
        self.calls.append(feats[0].clone())
        return picture(feats[0])[None].clone(), state


def _probe():
    cfg = _cfg()
    data, model = _data(cfg), StandIn()
    ev = Evaluator(["psnr", "sensitivity"], torch.device("cpu"), fps=cfg.fps, sample_rate=cfg.sample_rate)
    out = heldout_pass(model, data, cfg, torch.device("cpu"), ev, seed=0)
    # heldout_pass generates window i, then its shifted and its silent variant, then window i+1.
    main, shifted, silent = (torch.cat(model.calls[k::3]) for k in range(3))
    return cfg, data, out, main, shifted, silent


def test_the_probe_hears_the_held_out_sound_shifted_by_half_its_length():
    """Held-out frame t (of N = 15) is generated again from the sound of held-out frame
    (t + N // 2) mod N: the whole held-out part's sound rolled by half its length, window by
    window in order, and from silence: the features of an all-zero sound at every frame."""
    cfg, data, _, main, shifted, silent = _probe()
    held = data.feats[N_TRAIN:]
    assert main.shape == shifted.shape == silent.shape == held.shape
    torch.testing.assert_close(main, held, atol=0, rtol=0)
    t = torch.arange(HELD)
    torch.testing.assert_close(shifted, held[(t + SHIFT) % HELD], atol=0, rtol=0)
    quiet = SoundFeatures(cfg)(np.zeros(cfg.sample_rate, np.float32), 0, HELD)
    torch.testing.assert_close(silent, quiet, atol=0, rtol=0)


def test_sensitivity_is_the_output_change_over_the_real_change_between_the_same_moments():
    """sensitivity = mean |G(shifted sound) − G(sound)| / mean |real[(t + N//2) mod N] − real[t]|,
    both in [-1, 1] units over every held-out frame and pixel; sensitivity_silence has the same
    denominator and G(silence) in the numerator."""
    cfg, data, out, *_ = _probe()
    held = data.feats[N_TRAIN:]
    t = torch.arange(HELD)
    real = data.frames[N_TRAIN:].double() / 127.5 - 1
    unit = (real[(t + SHIFT) % HELD] - real).abs().mean()
    own = picture(held).double()
    moved = (picture(held[(t + SHIFT) % HELD]).double() - own).abs().mean()
    quiet = picture(SoundFeatures(cfg)(np.zeros(cfg.sample_rate, np.float32), 0, 1).expand(HELD, -1)).double()
    assert abs(out["sensitivity"] - float(moved / unit)) < 1e-5, (out["sensitivity"], float(moved / unit))
    assert abs(out["sensitivity_silence"] - float((quiet - own).abs().mean() / unit)) < 1e-5
    assert out["sensitivity"] != out["sensitivity_silence"]
