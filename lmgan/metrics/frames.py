"""Per-frame image metrics, computed by torchmetrics (Gaussian 11×11, σ=1.5 SSIM as in Wang et al.)."""

from __future__ import annotations

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure


def _unit(x: torch.Tensor) -> torch.Tensor:
    return ((x.float() + 1) / 2).clamp(0, 1)


def ssim_per_frame(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """SSIM of each frame pair on [0, 1] images → [N]."""
    return structural_similarity_index_measure(_unit(fake), _unit(real), data_range=1.0,
                                               reduction="none")


def psnr_per_frame(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """PSNR (dB) of each frame pair on [0, 1] images → [N]."""
    return peak_signal_noise_ratio(_unit(fake), _unit(real), data_range=1.0, reduction="none",
                                   dim=(1, 2, 3))
