"""What a person looks at in a run folder: loss curves, frame grids, motion over held-out time,
and the metric history."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lmgan import atomic
from lmgan.errors import LmganError


def write_history(path: Path, history: list[dict]) -> None:
    """history.jsonl made whole from `history` (temporary, fsync, rename): once when a run opens
    or resumes, so lines a killed process appended past its checkpoint are gone."""
    atomic.write_text(path, "".join(json.dumps(r) + "\n" for r in history))


def append_history(path: Path, record: dict) -> None:
    """One record appended to history.jsonl as one line, flushed: a log costs the same at the
    50,000th iteration as at the first (rewriting the file at every log grew with the square of
    the run's length). Not fsynced: the checkpoint holds the history durably, and a line torn by
    a kill is skipped by `read_history` and dropped at the next open (`write_history`)."""
    with atomic.naming_full_disk(path), open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_history(path: Path) -> list[dict]:
    """The records of a history.jsonl. A last line without its newline that does not parse is
    the torn append of a killed run: skipped. A bad line anywhere else is an error."""
    text = Path(path).read_text()
    lines = text.split("\n")
    records = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if n == len(lines):           # no newline after it: the write was cut short
                break
            raise LmganError(f"{path}:{n}: not a JSON record") from None
    return records


def frame_grid(fake: np.ndarray, real: np.ndarray, columns: int = 8) -> np.ndarray:
    """Evenly spaced frames: generated on the top row, the real ones below. uint8 [2S, cS, 3]."""
    idx = np.linspace(0, len(fake) - 1, min(columns, len(fake))).round().astype(int)
    return np.concatenate([np.concatenate(list(fake[idx]), 1), np.concatenate(list(real[idx]), 1)], 0)


def sample_grid(fake: np.ndarray, real: np.ndarray, columns: int = 16, gap: int = 4) -> np.ndarray:
    """The sample PNG: `columns` evenly spaced frames (each colour and place the part goes
    through), then `columns` consecutive ones from its middle (what changes from frame to frame:
    a flash that lasts a few frames is in them), each block generated above real, a light gap
    between the blocks. uint8 [4S + gap, cS, 3]."""
    n = min(columns, len(fake))
    start = max(0, (len(fake) - n) // 2)
    run = slice(start, start + n)
    spaced = frame_grid(fake, real, n)
    consecutive = np.concatenate([np.concatenate(list(fake[run]), 1), np.concatenate(list(real[run]), 1)], 0)
    line = np.full((gap, spaced.shape[1], 3), 255, np.uint8)
    return np.concatenate([spaced, line, consecutive], 0)


def save_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image
    with atomic.replacing(path) as tmp:
        Image.fromarray(image).save(tmp)


COMPANIONS = {"_real": "real video", "_silence": "from silence"}   # drawn in their metric's panel


def motion_trace(frames) -> np.ndarray:
    """Per-frame motion of float frames [T, 3, S, S] in [-1, 1], in grey levels (mean |x[t+1] − x[t]|
    over the frame; [-1, 1] spans 255 of them): what the motion plots draw. [T − 1]."""
    from lmgan.metrics.sync import motion_profile
    return motion_profile(frames).mean(1).numpy() * 127.5


def plot_motion(path: Path, fake: np.ndarray, real: np.ndarray, fps: float, title: str = "") -> None:
    """Does it move when the real video moves? Evenly spaced held-out frames (generated above
    real) over the per-frame motion (mean |x[t+1] − x[t]|, grey levels) of both against time.
    fake, real: uint8 [T, S, S, 3], the held-out part in order."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import torch

    from lmgan.metrics.sync import motion_corr
    from lmgan.pixels import to_unit_float

    fake_t, real_t = (to_unit_float(torch.from_numpy(x)) for x in (fake, real))

    t = np.arange(1, len(real)) / fps
    corr = motion_corr(fake_t, real_t)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5.6), gridspec_kw={"height_ratios": [1.1, 1]})
    top.imshow(frame_grid(fake, real, columns=10))
    top.set_axis_off()
    top.set_title("held-out frames: generated (top), real (bottom)", fontsize=10)
    bottom.plot(t, motion_trace(real_t), lw=1.2, label="real")
    bottom.plot(t, motion_trace(fake_t), lw=1.2, label="generated")
    bottom.set(xlabel="held-out time (s)", ylabel="motion (grey levels / frame)",
               title=f"per-frame motion; motion_corr {corr:.2f}")
    bottom.legend(fontsize=8, loc="upper right")
    save_figure(fig, path, title)


def plot_curves(path: Path, history: list[dict], title: str = "") -> None:
    """Losses (first panel) and each held-out metric, mean ± std over windows, against iterations."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = [r for r in history if r.get("kind") == "loss"]
    evals = [r for r in history if r.get("kind") == "eval"]
    last = evals[-1] if evals else {}
    metrics = [k for k in last if k not in ("iter", "kind") and not k.endswith("_std")
               and not any(k == m + c for m in last for c in COMPANIONS)]
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
        ax.plot(it, mean, marker="o", label="generated")
        ax.fill_between(it, mean - std, mean + std, alpha=0.25)
        for suffix, label in COMPANIONS.items():       # av_align_real, sensitivity_silence
            if key + suffix in last:
                ax.plot(it, [r.get(key + suffix, np.nan) for r in evals], ls="--", label=label)
                ax.legend(fontsize=8)
        ax.set(xlabel="iteration", title=f"held-out {key} (mean ± std)")
    save_figure(fig, path, title)


def save_figure(fig, path: Path, title: str) -> None:
    """Title, lay out and write a figure atomically, and free it whatever happens."""
    import matplotlib.pyplot as plt
    try:
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        with atomic.replacing(path) as tmp:
            fig.savefig(tmp, dpi=90)
    finally:
        plt.close(fig)
