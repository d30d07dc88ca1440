"""Frames between their two forms: uint8 [..., S, S, 3] as decoded and written, float
[..., 3, S, S] in [-1, 1] as the networks and metrics read them. Low-level, so training,
evaluation, metrics and rendering share it without importing one another."""

from __future__ import annotations

import numpy as np
import torch


def to_unit_float(frames_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [..., S, S, 3] → float [..., 3, S, S] in [-1, 1]."""
    return frames_u8.movedim(-1, -3).float().div(127.5).sub(1)


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """float [..., 3, S, S] in [-1, 1] → uint8 numpy [..., S, S, 3]."""
    return frames.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).movedim(-3, -1).cpu().numpy()
