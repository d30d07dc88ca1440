"""What the training loop tells the outside world, as a typed interface.

The loop knows nothing of consoles, Ray Tune or MLflow: it calls these methods, and each adapter
(the Tune trainable's reporter, a test's recorder) overrides the ones it needs. Records are the
rows of the run's history.jsonl, so what a listener receives is what the run folder keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Samples:
    """The files one sampling wrote into the run's samples/ folder."""
    iteration: int
    video: Path      # generated | real side by side, with the held-out sound
    grid: Path       # frame grid, generated above real
    motion: Path     # motion over held-out time, generated against real


class TrainingEvents:
    """A listener of Trainer; every method does nothing unless overridden."""

    def on_log(self, record: dict) -> None:
        """Every `log_every` iterations: {"kind": "loss", "iter", each of LOSSES, "it_per_s"}."""

    def on_evaluated(self, record: dict) -> None:
        """After each evaluation: {"kind": "eval", "iter", each metric (and its _std, ...)}."""

    def on_sampled(self, samples: Samples) -> None:
        """After an evaluation that also wrote sample files."""

    def on_checkpointed(self, iteration: int, path: Path) -> None:
        """After a checkpoint reached its final name (so `path` can be handed on)."""
