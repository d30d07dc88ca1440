"""Held-out evaluation (Table 1): generate the last 20 % of the video from its sound and score it.

Frame metrics are averaged per window and reported as mean ± std over windows. Set metrics are
one Fréchet distance between the generated windows and the real ones; the real statistics depend
only on the video and the windowing, so they are computed once and cached on disk (keyed by the
video's data key, the windowing and the metric) for every later evaluation and every sweep trial.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lmgan import atomic, weights
from lmgan.errors import LmganError
from lmgan.metrics import REGISTRY


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
                 weight_paths: dict | None = None):
        unknown = [n for n in names if n not in REGISTRY]
        if unknown:
            raise LmganError(f"unknown metric {unknown[0]!r} (known: {', '.join(sorted(REGISTRY))})")
        paths = weight_paths or {}
        self.metrics = [REGISTRY[n] for n in names]
        self.fns = {m.name: m.build(device, paths) for m in self.metrics}
        self.stats_key = stats_key
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

    def add(self, fake: torch.Tensor, real: torch.Tensor) -> None:
        """One window: fake, real [T, 3, S, S] in [-1, 1]. Set metrics keep only features."""
        for name in self.per_window:
            self.per_window[name].append(self.fns[name](fake, real).mean())
        for name, real_stats in self.cached.items():
            self.fake[name].append(self.fns[name](fake[None]))
            if real_stats is None:
                self.real[name].append(self.fns[name](real[None]))

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
        self.per_window = {k: [] for k in self.per_window}
        self.fake = {k: [] for k in self.fake}
        self.real = {k: [] for k in self.real}
        return out


@torch.no_grad()
def heldout_pass(model, data, cfg, device, evaluator: Evaluator, seed: int, on_window=None) -> dict:
    """Generate the held-out part window after window with carried state, from zero states.

    The noise comes from a fixed seed (successive evaluations differ only by the weights) inside a
    forked RNG, so the caller's random stream is untouched. `on_window(start, fake, real)` sees
    every window (sample videos, grids).
    """
    from lmgan.training.loop import to_unit_float

    starts = data.heldout_starts(cfg.seq_len, cfg.eval_windows)
    evaluator.check(len(starts), cfg.seq_len)
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            state = model.initial_state(1, device)
            feats, frames = data.feats.to(device), data.frames
            for s in starts:
                fake, state = model.generate(feats[s:s + cfg.seq_len][None], state)
                real = to_unit_float(frames[s:s + cfg.seq_len].to(device))
                evaluator.add(fake[0], real)
                if on_window:
                    on_window(s, fake[0], real)
    finally:
        model.train(was_training)
    return evaluator.result()
