"""Evaluation metrics: a registry (name → Metric) used by training, `lmgan eval` and sweeps.

Frame metrics take fake and real frames [N, 3, H, W] in [-1, 1] and return one value per frame;
the caller averages them per held-out window and reports mean ± std over windows (Table 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from lmgan.metrics.frames import psnr_per_frame, ssim_per_frame


@dataclass(frozen=True)
class Metric:
    name: str
    per_frame: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    higher_is_better: bool


REGISTRY: dict[str, Metric] = {
    "ssim": Metric("ssim", ssim_per_frame, higher_is_better=True),
    "psnr": Metric("psnr", psnr_per_frame, higher_is_better=True),
}


def ssim(fake: torch.Tensor, real: torch.Tensor) -> float:
    """Mean per-frame SSIM of frames in [-1, 1]."""
    return float(ssim_per_frame(fake, real).mean())


def psnr(fake: torch.Tensor, real: torch.Tensor) -> float:
    """Mean per-frame PSNR (dB) of frames in [-1, 1]."""
    return float(psnr_per_frame(fake, real).mean())
