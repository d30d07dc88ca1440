"""Which torch device a config's `device` names. Low-level, so training, evaluation, rendering and
the benchmark share it without importing one another."""

from __future__ import annotations

import torch

from lmgan.errors import LmganError


def pick_device(name: str) -> torch.device:
    """`auto` → the GPU when there is one; an explicit `cuda` without CUDA is a one-line error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise LmganError(f"config: device={name!r} but CUDA is not available on this machine")
    return torch.device(name)
