"""What a person looks at in a run folder: loss curves, frame grids, and the metric history."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lmgan import atomic


def write_history(path: Path, history: list[dict]) -> None:
    atomic.write_text(path, "".join(json.dumps(r) + "\n" for r in history))


def frame_grid(fake: np.ndarray, real: np.ndarray, columns: int = 8) -> np.ndarray:
    """Evenly spaced frames: generated on the top row, the real ones below. uint8 [2S, cS, 3]."""
    idx = np.linspace(0, len(fake) - 1, min(columns, len(fake))).round().astype(int)
    return np.concatenate([np.concatenate(list(fake[idx]), 1), np.concatenate(list(real[idx]), 1)], 0)


def save_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image
    with atomic.replacing(path) as tmp:
        Image.fromarray(image).save(tmp)


def plot_curves(path: Path, history: list[dict], title: str = "") -> None:
    """Losses (first panel) and each held-out metric, mean ± std over windows, against iterations."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = [r for r in history if r.get("kind") == "loss"]
    evals = [r for r in history if r.get("kind") == "eval"]
    metrics = [k for k in (evals[-1] if evals else {}) if k not in ("iter", "kind") and not k.endswith("_std")]
    fig, axes = plt.subplots(1, 1 + len(metrics), figsize=(5 * (1 + len(metrics)), 3.6), squeeze=False)
    axes = axes[0]
    if losses:
        it = [r["iter"] for r in losses]
        for key in [k for k in losses[-1] if k.startswith("loss_")]:
            values = [r.get(key, np.nan) for r in losses]
            if any(v != 0 for v in values):              # switched-off terms stay out of the way
                axes[0].plot(it, values, label=key[5:])
        axes[0].legend(fontsize=8)
        axes[0].set_yscale("symlog", linthresh=1.0)   # WGAN critic terms swing by hundreds
    axes[0].set(xlabel="iteration", title="losses (symlog)")
    for ax, key in zip(axes[1:], metrics):
        it = [r["iter"] for r in evals]
        mean = np.array([r.get(key, np.nan) for r in evals])
        std = np.array([r.get(key + "_std", 0.0) for r in evals])
        ax.plot(it, mean, marker="o")
        ax.fill_between(it, mean - std, mean + std, alpha=0.25)
        ax.set(xlabel="iteration", title=f"held-out {key} (mean ± std)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        with atomic.replacing(path) as tmp:
            fig.savefig(tmp, dpi=90)
    finally:
        plt.close(fig)
