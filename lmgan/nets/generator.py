"""G, the residual generator with the video-prediction layer before to-RGB (docs/model.md).

Per frame: z_t (Z×1×1) → format layer → 4×4 → log2(S/4) up-sampling residual blocks → S×S
→ [video prediction over the window's T frames] → 1×1 conv + tanh. Channels at resolution r:
min(max_channels, channel_base // r), the authors' rule (512 at 4²…8², 32 at 128² for 4096).
All B*T frames of a batch of windows run through the convolutional part as one batch.
As in the authors' code:
- Format layer: z_t replicated over 4×4, conv3×3 (zero padding, so the border positions differ
  from the centre), noise injection, LeakyReLU(0.2). Their format layer also batch-normalises
  over the whole batch of frames; G's other norms are per frame, so this one has none.
- acIN: one Linear(F → 2C) per block, shared by the block's two instance norms, applied as
  x * (1 + gamma) + beta (the authors' x * gamma + beta starts near zero scale under the
  N(0, 0.02) init; 1 + gamma starts at the plain instance norm). Without acIN the norms are
  InstanceNorm2d(affine=True), i.e. unconditional, with the usual 1/0 affine init.
Choices left open by the spec:
- The block's 1×1 shortcut runs BEFORE the nearest ×2 upsample: a 1×1 conv commutes with
  nearest upsampling exactly, and this is 4× cheaper.
- Noise injection maps come from torch.randn (global RNG: a checkpointed RNG state reproduces
  a render); their per-channel scales start at 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import channels_at, normal_init
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
    """acIN of one block: gamma, beta = Linear(f_t); norm(x) = InstanceNorm(x) * (1 + gamma) + beta.
    ``modulation(feats)`` is computed once per block and used by both of its norms."""

    def __init__(self, channels: int, feat_dim: int) -> None:
        super().__init__()
        self.channels = channels
        self.affine = nn.Linear(feat_dim, 2 * channels)

    def modulation(self, feats: Tensor) -> tuple[Tensor, Tensor]:
        gamma, beta = self.affine(feats)[:, :, None, None].split(self.channels, 1)
        return 1.0 + gamma, beta

    @staticmethod
    def forward(x: Tensor, mod: tuple[Tensor, Tensor]) -> Tensor:  # type: ignore[override]
        scale, beta = mod
        return torch.addcmul(beta, F.instance_norm(x), scale)


class UpBlock(nn.Module):
    """Nearest ×2 up, conv3×3, noise, norm, LReLU, conv3×3, noise, norm; 1×1 shortcut;
    out = LReLU((x + shortcut) / √2)."""

    def __init__(self, c_in: int, c_out: int, feat_dim: int, acin: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.noise1 = NoiseInjection(c_out)
        self.noise2 = NoiseInjection(c_out)
        self.acin = AudioConditionalNorm(c_out, feat_dim) if acin else None
        if not acin:
            self.norm1 = nn.InstanceNorm2d(c_out, affine=True)
            self.norm2 = nn.InstanceNorm2d(c_out, affine=True)
        self.shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor, feats: Tensor | None) -> Tensor:
        if self.acin is not None:
            mod = self.acin.modulation(feats)
            norm1 = norm2 = lambda h: self.acin(h, mod)  # noqa: E731
        else:
            norm1, norm2 = self.norm1, self.norm2
        sc = F.interpolate(self.shortcut(x), scale_factor=2.0, mode="nearest")
        h = self.conv1(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        h = F.leaky_relu(norm1(self.noise1(h)), 0.2)
        h = norm2(self.noise2(self.conv2(h)))
        return F.leaky_relu((h + sc) * (1.0 / math.sqrt(2.0)), 0.2)


class Generator(nn.Module):
    """G: (feats [B, T, F], motion [B, T, M], VP state) → (frames [B, T, 3, S, S] in [-1, 1], state).

    SaC (sound as content): z_t = [f_t, m_t], Z = F + M; otherwise z_t = m_t. acIN: every norm
    is conditioned on the frame's own f_t. ``feats`` may be None when neither switch is on.
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
        channel_base: int = 4096,
        max_channels: int = 512,
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
            return channels_at(r, channel_base, max_channels)

        self.c4 = ch(4)
        self.fmt = nn.Conv2d(self.z_dim, self.c4, 3, padding=1)
        self.fmt_noise = NoiseInjection(self.c4)
        res = [4 * 2**i for i in range(int(math.log2(s // 4)) + 1)]  # 4, 8, ..., S
        self.blocks = nn.ModuleList(UpBlock(ch(r), ch(2 * r), feat_dim, acin) for r in res[:-1])
        self.to_rgb = nn.Conv2d(ch(s), 3, 1)
        normal_init(self)  # before the VP layer exists: it has its own (orthogonal) init
        self.vp = None if vp == "none" else VideoPrediction(ch(s), vp_kernel, directional=vp == "dirconvgru")

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
        x = F.leaky_relu(self.fmt_noise(self.fmt(z[:, :, None, None].expand(-1, -1, 4, 4))), 0.2)
        for block in self.blocks:
            x = block(x, f)
        if self.vp is not None:
            y, state = self.vp(x.view(b, t, *x.shape[1:]), state)
            x = y.view(b * t, *x.shape[1:])
        s = self.image_size
        return torch.tanh(self.to_rgb(x)).view(b, t, 3, s, s), state
