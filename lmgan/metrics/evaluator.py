"""Held-out evaluation (Table 1): generate the last 20 % of the video from its sound and score it.

Frame metrics are averaged per window and reported as mean ± std over windows. Set metrics are
one Fréchet distance between the generated windows and the real ones; the real statistics depend
only on the video and the windowing, so they are computed once and cached on disk (keyed by the
video's data key, the windowing and the metric) for every later evaluation and every sweep trial.
Sequence metrics (av_align, motion_corr) score the held-out part as one video with its sound;
the probe (sensitivity) generates it again from time-shifted sound and from silence, with the
same noise, and measures how far the output moves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lmgan import atomic, weights
from lmgan.errors import LmganError
from lmgan.metrics import lookup
from lmgan.pixels import to_uint8, to_unit_float


def stats_path(key: str, metric: str) -> Path:
    return weights.cache_dir() / "stats" / f"{key}-{metric}.npz"


def load_stats(key: str, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    path = stats_path(key, metric)
    if not path.is_file():
        return None
    with np.load(path) as z:
        return z["mu"], z["sigma"]


def save_stats(key: str, metric: str, mu: np.ndarray, sigma: np.ndarray) -> None:
    with atomic.replacing(stats_path(key, metric)) as tmp:
        np.savez(tmp, mu=mu, sigma=sigma)


class Evaluator:
    """Accumulates (generated, real) windows; `result()` gives {name: mean, name_std: std}.

    Building it loads every detector the metrics need, so missing weights fail before training
    starts, not at its first evaluation.
    """

    def __init__(self, names: list[str], device: torch.device, stats_key: str | None = None,
                 weight_paths: dict | None = None, fps: float = 20.0, sample_rate: int = 16000):
        paths = weight_paths or {}
        self.metrics = lookup(names, "evaluator")
        self.fns = {m.name: m.build(device, paths) for m in self.metrics}
        self.stats_key = stats_key
        self.fps, self.sample_rate = fps, sample_rate
        self.probes = [m.name for m in self.metrics if m.kind == "probe"]
        self._real_av_align = None   # the real held-out part's own AV-Align: computed once
        self._real_shift_change = None   # sensitivity's unit (_real_shift_change): computed once
        self.reset()

    def check(self, windows: int, seq_len: int) -> None:
        """A Fréchet distance needs at least two feature vectors: say so before any work."""
        for m in self.metrics:
            n = windows * m.per_window(seq_len)
            if m.kind == "set" and n < 2:
                raise LmganError(
                    f"{m.name}: {windows} held-out window(s) of {seq_len} frames give {n} feature "
                    f"vector(s); a Fréchet distance needs at least 2 (a longer video, a larger "
                    f"seq_len{' (>= 16 for fvd)' if m.name == 'fvd' else ''} or eval_windows=0)")

    def reset(self) -> None:
        self.per_window = {m.name: [] for m in self.metrics if m.kind == "frame"}
        self.cached = {m.name: load_stats(self.stats_key, m.name) if self.stats_key else None
                       for m in self.metrics if m.kind == "set"}
        self.fake = {name: [] for name in self.cached}
        self.real = {name: [] for name in self.cached}
        self.sequence = [m.name for m in self.metrics if m.kind == "sequence"]
        self.windows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, fake: torch.Tensor, real: torch.Tensor, sound: np.ndarray | None = None) -> None:
        """One window: fake, real [T, 3, S, S] in [-1, 1], and its sound (sequence metrics).
        Set metrics keep only features; sequence metrics keep the frames as uint8."""
        for name in self.per_window:
            self.per_window[name].append(self.fns[name](fake, real).mean())
        for name, real_stats in self.cached.items():
            self.fake[name].append(self.fns[name](fake[None]))
            if real_stats is None:
                self.real[name].append(self.fns[name](real[None]))
        if self.sequence:
            if sound is None:
                raise LmganError(f"{self.sequence[0]}: needs the sound of every window")
            self.windows.append((to_uint8(fake), to_uint8(real), np.asarray(sound, np.float32)))

    def _sequence_result(self) -> dict:
        from lmgan.metrics import sync
        fake = np.concatenate([w[0] for w in self.windows])
        real = np.concatenate([w[1] for w in self.windows])
        sound = np.concatenate([w[2] for w in self.windows])
        out = {}
        if "motion_corr" in self.sequence:
            out["motion_corr"] = self.fns["motion_corr"](to_unit_float(torch.from_numpy(fake)),
                                                         to_unit_float(torch.from_numpy(real)))
        if "av_align" in self.sequence:
            av_align = self.fns["av_align"]
            onsets = sync.audio_onsets(sound, self.sample_rate)
            out["av_align"] = av_align(fake, sound, self.sample_rate, self.fps, onsets)
            if self._real_av_align is None:
                self._real_av_align = av_align(real, sound, self.sample_rate, self.fps, onsets)
            out["av_align_real"] = self._real_av_align
        return out

    def result(self) -> dict:
        out = {}
        for name, vals in self.per_window.items():
            v = torch.stack(vals).double().cpu()
            out[name] = float(v.mean())
            out[name + "_std"] = float(v.std(unbiased=False)) if len(v) > 1 else 0.0
        if self.cached:
            from lmgan.metrics.frechet import frechet_distance, gaussian
        for name, real_stats in self.cached.items():
            if real_stats is None:
                real_stats = gaussian(np.concatenate(self.real[name]))
                if self.stats_key:
                    save_stats(self.stats_key, name, *real_stats)
                self.cached[name] = real_stats
            out[name] = frechet_distance(*gaussian(np.concatenate(self.fake[name])), *real_stats)
        if self.windows:
            out.update(self._sequence_result())
        self.per_window = {k: [] for k in self.per_window}
        self.fake = {k: [] for k in self.fake}
        self.real = {k: [] for k in self.real}
        self.windows = []
        return out


@torch.no_grad()
def heldout_pass(model, data, cfg, device, evaluator: Evaluator, seed: int, on_window=None) -> dict:
    """Generate the held-out part window after window with carried state, from zero states.

    The noise comes from a fixed seed (successive evaluations differ only by the weights) inside a
    forked RNG, so the caller's random stream is untouched. `on_window(start, fake, real)` sees
    every window (sample videos, grids). With a probe metric, each window is generated again from
    the time-shifted and from the silenced sound, from the same RNG state (the same noise), each
    variant carrying its own recurrent state.
    """
    starts = data.heldout_starts(cfg.seq_len, cfg.eval_windows)
    evaluator.check(len(starts), cfg.seq_len)
    feats, frames = data.feats.to(device), data.frames
    variants = _probe_variants(data, cfg, starts, device) if evaluator.probes else {}
    moved = {name: torch.zeros((), dtype=torch.float64, device=device) for name in variants}
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            state = model.initial_state(1, device)
            probe_states = {name: model.initial_state(1, device) for name in variants}
            for i, s in enumerate(starts):
                rng = _rng_state(device)
                fake, state = model.generate(feats[s:s + cfg.seq_len][None], state)
                real = to_unit_float(frames[s:s + cfg.seq_len].to(device))
                evaluator.add(fake[0], real, data.audio_span(s, cfg.seq_len))
                if on_window:
                    on_window(s, fake[0], real)
                for name, alt in variants.items():
                    _set_rng_state(device, rng)
                    other, probe_states[name] = model.generate(
                        alt[i * cfg.seq_len:(i + 1) * cfg.seq_len][None], probe_states[name])
                    moved[name] += (other - fake).abs().double().mean()
    finally:
        model.train(was_training)
    out = evaluator.result()
    if variants:
        if evaluator._real_shift_change is None:
            evaluator._real_shift_change = _real_shift_change(data, starts, cfg.seq_len)
        scale = evaluator._real_shift_change * len(starts)
        out["sensitivity"] = float(moved["shifted"]) / scale
        out["sensitivity_silence"] = float(moved["silence"]) / scale
    return out


def _probe_variants(data, cfg, starts: list[int], device) -> dict:
    """The held-out sound's features time-shifted by half the held-out length, and silence."""
    from lmgan.data.features import SoundFeatures
    from lmgan.metrics.sync import shifted

    held = torch.cat([data.feats[s:s + cfg.seq_len] for s in starts])
    silence = SoundFeatures(cfg)(np.zeros(1, np.float32), 0, 1)
    return {"shifted": shifted(held, len(held) // 2).to(device),
            "silence": silence.expand(len(held), -1).to(device)}


def _real_shift_change(data, starts: list[int], seq_len: int) -> float:
    """Mean |x − x shifted by half the held-out length| of the real held-out frames, in [-1, 1]
    units: how much two moments of the real video differ, the unit of `sensitivity`."""
    from lmgan.metrics.sync import shifted

    held = torch.cat([data.frames[s:s + seq_len] for s in starts]).float() / 127.5
    return max(float((shifted(held, len(held) // 2) - held).abs().mean()), 1e-6)


def _rng_state(device):
    return (torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None)


def _set_rng_state(device, state) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)
