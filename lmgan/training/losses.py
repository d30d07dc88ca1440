"""WGAN-GP (Gulrajani et al.) and the VGG16 perceptual loss (Johnson et al.'s content loss)."""

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
    """E[(‖∇D(x̂)‖₂ − 1)²] on random interpolates x̂ between real and fake samples, the gradient
    being that of the sum of each sample's patch scores (as the authors take it). `autocast`
    covers the critic's forward pass only: the gradient is taken outside it (PyTorch's AMP
    recipe for gradient penalties)."""
    eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, dtype=torch.float32)
    mixed = (eps * real + (1 - eps) * fake).float().requires_grad_(True)
    with autocast():
        score = critic(mixed)
    (grad,) = torch.autograd.grad(score.sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).square().mean()


def critic_loss(critic: nn.Module, real: torch.Tensor, negatives: list[torch.Tensor],
                autocast=contextlib.nullcontext) -> tuple[torch.Tensor, torch.Tensor]:
    """One full WGAN-GP term per negative, as the authors train their critics:
    Σ_n [D(n) − D(real)] and Σ_n GP(real, n), returned apart (Wasserstein part, penalty) so
    the caller weighs the penalty. D_V's negatives are the fake and the frame-shuffled real
    window; its score of the real window is computed once and serves every term."""
    with autocast():
        real_score = critic(real).mean()
        wasserstein = sum(critic(n).mean() - real_score for n in negatives)
    penalty = sum(gradient_penalty(critic, real, n, autocast) for n in negatives)
    return wasserstein, penalty


# torchvision's vgg16().features[:9] ends at relu2_2: the one layer of Johnson et al.'s content
# (feature reconstruction) loss, as the authors use it (weight 10, docs/model.md).
RELU2_2 = 8


class PerceptualLoss(nn.Module):
    """Johnson et al.'s content loss: MSE between frozen VGG16 relu2_2 features of generated and
    real frames. Only the layers up to relu2_2 are kept (and loaded)."""

    def __init__(self, state_dict: dict):
        super().__init__()
        # Built on the meta device: its random init would draw from the global RNG, so the
        # perceptual weight would change training's noise (lambda_pl 0 vs 10 from one seed).
        with torch.device("meta"):
            self.features = torchvision.models.vgg16(weights=None).features[: RELU2_2 + 1]
        wanted = {k[len("features."):]: v for k, v in state_dict.items() if k.startswith("features.")}
        wanted = {k: v for k, v in wanted.items() if int(k.split(".")[0]) <= RELU2_2}
        try:
            self.features.load_state_dict(wanted, assign=True)
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

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        x = x.add(1).mul(0.5).sub(self.mean).div(self.std)
        if x.device.type == "cpu":   # oneDNN's VGG convolutions: ~20 % faster channels-last
            x = x.contiguous(memory_format=torch.channels_last)
        return self.features(x)

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """fake, real: [N, 3, H, W] in [-1, 1]. The real frames' features need no graph: they run
        apart under no_grad, and the backward pass covers the generated half only."""
        with torch.no_grad():
            real_f = self._features(real)
        return F.mse_loss(self._features(fake), real_f)
