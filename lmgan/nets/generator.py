"""G, the residual generator with the video-prediction layer before to-RGB (DESIGN.md §3).

Per frame: z_t (Z×1×1) → format layer → 4×4 → log2(S/4) up-sampling residual blocks → S×S with
``channels`` channels → [video prediction over the window's T frames] → 1×1 conv + tanh.
All B*T frames of a batch of windows run through the convolutional part as one batch.
Choices left open by the spec:
- Format layer: Linear Z → C4*16, reshaped to [C4, 4, 4], then LeakyReLU(0.2) (so the first
  block's conv does not compose linearly with it).
- The block's 1×1 shortcut runs BEFORE the nearest ×2 upsample: a 1×1 conv commutes with
  nearest upsampling exactly, and this is 4× cheaper.
- acIN: gamma and beta come from one Linear(F → 2C) per norm layer, weights N(0, 0.02) like the
  other layers (so f_t conditions the norms from the first step), bias 0, applied as
  x * (1 + gamma) + beta. Without acIN the norms are InstanceNorm2d(affine=True), i.e.
  unconditional, with the usual 1/0 affine init.
- Noise injection maps come from torch.randn (global RNG: a checkpointed RNG state reproduces
  a render); their per-channel scales start at 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import normal_init
from .prediction import VideoPrediction

__all__ = ["Generator", "NoiseInjection", "AudioConditionalNorm"]

VP_KINDS = ("none", "convgru", "dirconvgru")


class NoiseInjection(nn.Module):
    """StyleGAN noise: x + scale_c * n, one N(0, 1) map per frame shared by all channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        return x + self.scale * torch.randn(n, 1, h, w, device=x.device, dtype=x.dtype)


class AudioConditionalNorm(nn.Module):
    """acIN: InstanceNorm2d(affine=False), then x * (1 + gamma(f_t)) + beta(f_t), per frame."""

    def __init__(self, channels: int, feat_dim: int) -> None:
        super().__init__()
        self.channels = channels
        self.affine = nn.Linear(feat_dim, 2 * channels)

    def forward(self, x: Tensor, feats: Tensor) -> Tensor:
        gamma, beta = self.affine(feats)[:, :, None, None].split(self.channels, 1)
        return torch.addcmul(beta, F.instance_norm(x), 1.0 + gamma)


class _PlainNorm(nn.InstanceNorm2d):
    """InstanceNorm2d(affine=True) with the conditional norm's call signature (feats unused)."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, affine=True)

    def forward(self, x: Tensor, feats: Tensor | None = None) -> Tensor:  # type: ignore[override]
        return super().forward(x)


class UpBlock(nn.Module):
    """Nearest ×2 up, conv3×3, noise, norm, LReLU, conv3×3, noise, norm; 1×1 shortcut;
    out = LReLU((x + shortcut) / √2)."""

    def __init__(self, c_in: int, c_out: int, feat_dim: int, acin: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.noise1 = NoiseInjection(c_out)
        self.noise2 = NoiseInjection(c_out)
        norm = (lambda c: AudioConditionalNorm(c, feat_dim)) if acin else _PlainNorm
        self.norm1 = norm(c_out)
        self.norm2 = norm(c_out)
        self.shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor, feats: Tensor | None) -> Tensor:
        sc = F.interpolate(self.shortcut(x), scale_factor=2.0, mode="nearest")
        h = self.conv1(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        h = F.leaky_relu(self.norm1(self.noise1(h), feats), 0.2)
        h = self.norm2(self.noise2(self.conv2(h)), feats)
        return F.leaky_relu((h + sc) * (1.0 / math.sqrt(2.0)), 0.2)


class Generator(nn.Module):
    """G: (feats [B, T, F], motion [B, T, M], VP state) → (frames [B, T, 3, S, S] in [-1, 1], state).

    SaC (sound as content): z_t = [f_t, m_t], Z = F + M; otherwise z_t = m_t. acIN: every norm
    is conditioned on the frame's own f_t. ``feats`` may be None when neither switch is on.
    Channels at resolution r: min(max_channels, channels * S // r).
    """

    def __init__(
        self,
        image_size: int,
        feat_dim: int,
        motion_dim: int,
        sac: bool = True,
        acin: bool = True,
        vp: str = "dirconvgru",
        vp_kernel: int = 3,
        channels: int = 16,
        max_channels: int = 512,
        vp_impl: str = "paired",
    ) -> None:
        super().__init__()
        s = image_size
        if s < 8 or s & (s - 1):
            raise ValueError(f"image_size must be a power of two >= 8, got {s}")
        if vp not in VP_KINDS:
            raise ValueError(f"vp must be one of {VP_KINDS}, got {vp!r}")
        self.image_size = s
        self.feat_dim = feat_dim
        self.motion_dim = motion_dim
        self.sac = sac
        self.acin = acin
        self.z_dim = feat_dim + motion_dim if sac else motion_dim

        def ch(r: int) -> int:
            return min(max_channels, channels * s // r)

        self.c4 = ch(4)
        self.fmt = nn.Linear(self.z_dim, self.c4 * 16)
        res = [4 * 2**i for i in range(int(math.log2(s // 4)) + 1)]  # 4, 8, ..., S
        self.blocks = nn.ModuleList(UpBlock(ch(r), ch(2 * r), feat_dim, acin) for r in res[:-1])
        self.to_rgb = nn.Conv2d(ch(s), 3, 1)
        normal_init(self)  # before the VP layer exists: it has its own (orthogonal) init
        self.vp = None if vp == "none" else VideoPrediction(ch(s), vp_kernel, directional=vp == "dirconvgru",
                                                            impl=vp_impl)

    def initial_state(
        self, batch: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Tensor | None:
        """Zero VP state [batch, n_cells*channels, S, S], or None without a VP layer."""
        if self.vp is None:
            return None
        return self.vp.initial_state(batch, self.image_size, device, dtype)

    def forward(
        self, feats: Tensor | None, motion: Tensor, state: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        b, t = motion.shape[:2]
        m = motion.reshape(b * t, -1)
        f = feats.reshape(b * t, -1) if (self.sac or self.acin) else None
        z = torch.cat((f, m), 1) if self.sac else m
        x = F.leaky_relu(self.fmt(z), 0.2).view(b * t, self.c4, 4, 4)
        for block in self.blocks:
            x = block(x, f)
        if self.vp is not None:
            y, state = self.vp(x.view(b, t, *x.shape[1:]), state)
            x = y.view(b * t, *x.shape[1:])
        s = self.image_size
        return torch.tanh(self.to_rgb(x)).view(b, t, 3, s, s), state
