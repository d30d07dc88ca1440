"""WGAN-GP (Gulrajani et al.) and the VGG16 perceptual loss (Johnson et al.)."""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from lmgan import weights
from lmgan.errors import LmganError


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     autocast=contextlib.nullcontext) -> torch.Tensor:
    """E[(‖∇D(x̂)‖₂ − 1)²] on random interpolates x̂ between real and fake samples. `autocast`
    covers the critic's forward pass only: the gradient is taken outside it (PyTorch's AMP
    recipe for gradient penalties)."""
    eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, dtype=torch.float32)
    mixed = (eps * real + (1 - eps) * fake).float().requires_grad_(True)
    with autocast():
        score = critic(mixed)
    (grad,) = torch.autograd.grad(score.sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).square().mean()


# relu1_2, relu2_2, relu3_3, relu4_3 of torchvision's vgg16().features: the layers Johnson et al.
# read. The loss is the mean of the per-layer mean squared feature differences.
VGG_TAPS = (3, 8, 15, 22)


class PerceptualLoss(nn.Module):
    """Frozen VGG16 features; only the layers up to relu4_3 are kept (and loaded)."""

    def __init__(self, state_dict: dict):
        super().__init__()
        self.features = torchvision.models.vgg16(weights=None).features[: VGG_TAPS[-1] + 1]
        wanted = {k[len("features."):]: v for k, v in state_dict.items() if k.startswith("features.")}
        wanted = {k: v for k, v in wanted.items() if int(k.split(".")[0]) <= VGG_TAPS[-1]}
        try:
            self.features.load_state_dict(wanted)
        except RuntimeError:
            raise LmganError("VGG16 weights: the state dict does not match torchvision's vgg16 "
                             "(expected keys features.N.weight/bias)") from None
        self.features.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    @classmethod
    def from_config(cls, explicit_path: str = "") -> "PerceptualLoss":
        path = weights.locate("vgg16", explicit_path or None)
        return cls(weights.load_state_dict(path, "VGG16 state dict"))

    def train(self, mode: bool = True):
        return super().train(False)  # always frozen: no dropout/batch-norm state to switch

    def _taps(self, x: torch.Tensor, channels_last: bool = True) -> list[torch.Tensor]:
        x = x.add(1).mul(0.5).sub(self.mean).div(self.std)
        if channels_last and x.device.type == "cpu":   # oneDNN's VGG convolutions: ~20 % faster
            x = x.contiguous(memory_format=torch.channels_last)
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in VGG_TAPS:
                out.append(x)
        return out

    def forward(self, fake: torch.Tensor, real: torch.Tensor, split: bool = True) -> torch.Tensor:
        """fake, real: [N, 3, H, W] in [-1, 1]. The real frames' features need no graph: run
        apart under no_grad, the backward pass covers the generated half only (1.8× faster on
        the CPU than one concatenated batch). split=False is that concatenated batch, as first
        written (Config.impl="reference")."""
        if not split:
            pairs = (x.chunk(2) for x in self._taps(torch.cat([fake, real]), channels_last=False))
            return sum(F.mse_loss(f, r.detach()) for f, r in pairs) / len(VGG_TAPS)
        with torch.no_grad():
            real_f = self._taps(real)
        loss = sum(F.mse_loss(f, r) for f, r in zip(self._taps(fake), real_f))
        return loss / len(VGG_TAPS)
