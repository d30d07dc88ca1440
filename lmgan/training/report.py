"""What a person looks at in a run folder: loss curves, frame grids, and the metric history."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np


def write_atomic(path: Path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_history(path: Path, history: list[dict]) -> None:
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in history))


def frame_grid(fake: np.ndarray, real: np.ndarray, columns: int = 8) -> np.ndarray:
    """Evenly spaced frames: generated on the top row, the real ones below. uint8 [2S, cS, 3]."""
    idx = np.linspace(0, len(fake) - 1, min(columns, len(fake))).round().astype(int)
    return np.concatenate([np.concatenate(list(fake[idx]), 1), np.concatenate(list(real[idx]), 1)], 0)


def save_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image
    tmp = Path(path).with_name(f".{Path(path).name}.tmp{os.getpid()}.png")
    Image.fromarray(image).save(tmp)
    os.replace(tmp, path)


def plot_curves(path: Path, history: list[dict], title: str = "") -> None:
    """Losses (left) and held-out metrics (right) against iterations."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = [r for r in history if r.get("kind") == "loss"]
    evals = [r for r in history if r.get("kind") == "eval"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    if losses:
        it = [r["iter"] for r in losses]
        for key in [k for k in losses[-1] if k.startswith("loss_")]:
            axes[0].plot(it, [r.get(key, np.nan) for r in losses], label=key[5:])
        axes[0].legend(fontsize=8)
    axes[0].set(xlabel="iteration", title="losses")
    if evals:
        it = [r["iter"] for r in evals]
        for key in [k for k in evals[-1] if k not in ("iter", "kind", "time") and not k.endswith("_std")]:
            mean = np.array([r.get(key, np.nan) for r in evals])
            std = np.array([r.get(key + "_std", 0.0) for r in evals])
            line, = axes[1].plot(it, mean, marker="o", label=key)
            axes[1].fill_between(it, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        axes[1].legend(fontsize=8)
    axes[1].set(xlabel="iteration", title="held-out metrics (mean ± std over windows)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    tmp = Path(path).with_name(f".{Path(path).name}.tmp{os.getpid()}.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)
