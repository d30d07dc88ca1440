"""D_I and D_V, skip-connected WGAN critics (DESIGN.md §3; StyleGAN2's 'skip' D).

The input, average-pooled to every scale, goes through that scale's from-RGB (1×1 conv +
LeakyReLU(0.2), as in StyleGAN2) and is ADDED to the features arriving there. Block at
resolution r: conv3×3 (ch(r) → ch(r)), norm, LReLU, conv3×3 (→ ch(r/2)), norm, LReLU,
avg-pool ×2; ch(r) = min(max_channels, channels * S // r). Head at 4×4: conv3×3 + LReLU,
flatten, Linear → 1, no sigmoid. The head has no norm (choice left open by the spec).

Norms: 'batch' (the paper's), 'instance' (affine), 'layer' (GroupNorm(1, C)), 'none'. Batch
norm couples the samples of a batch, which makes the per-sample gradient penalty of WGAN-GP
only approximate (Gulrajani et al. recommend layer norm): 'layer' is there for that sweep.
Norm affine parameters keep PyTorch's 1/0 init; conv/linear weights N(0, 0.02), biases 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import normal_init

__all__ = ["ImageCritic", "VideoCritic", "NORMS", "time_factors"]

NORMS = ("batch", "instance", "layer", "none")


def _norm(kind: str, c: int, dims: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(c) if dims == 2 else nn.BatchNorm3d(c)
    if kind == "instance":
        return nn.InstanceNorm2d(c, affine=True) if dims == 2 else nn.InstanceNorm3d(c, affine=True)
    if kind == "layer":
        return nn.GroupNorm(1, c)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"critic norm must be one of {NORMS}, got {kind!r}")


class Conv3d(nn.Conv3d):
    """nn.Conv3d whose k×k×k same-padded convolutions run on the CPU as one 2D convolution.

    PyTorch sends CPU conv3d of batches under 16 to its slow reference kernel (not oneDNN); at
    D_V's batch of 1–2 videos that was most of a 64² CPU training step. Stacking the k time taps
    along channels turns it into one oneDNN conv2d: same parameters (checkpoints stay
    device-independent), same result to float tolerance, ~5× faster forward + double backward.
    CUDA keeps cuDNN's conv3d.
    """

    def forward(self, x: Tensor) -> Tensor:
        k = self.kernel_size[0]
        if x.is_cuda or k == 1 or self.stride != (1, 1, 1) or self.padding != (k // 2,) * 3:
            return super().forward(x)
        n, c, t, h, w = x.shape
        xp = F.pad(x, (0, 0, 0, 0, k // 2, k // 2))
        taps = torch.stack([xp[:, :, i:i + t] for i in range(k)], 1)          # [N, k, C, T, H, W]
        taps = taps.permute(0, 3, 1, 2, 4, 5).reshape(n * t, k * c, h, w)
        weight = self.weight.transpose(1, 2).reshape(self.out_channels, k * c, k, k)
        y = F.conv2d(taps, weight, self.bias, padding=k // 2)
        return y.view(n, t, self.out_channels, h, w).transpose(1, 2)


def time_factors(seq_len: int, blocks: int) -> list[int]:
    """Per-block time pooling factor of D_V: 2 while the (floored) length is > 1, then 1.

    Halving with floor reaches 1 after exactly ⌊log2 T⌋ halvings, so this is 'at most ⌊log2 T⌋
    halvings'; with fewer blocks than that, time stays longer than 1 into the head.
    """
    out, t = [], seq_len
    for _ in range(blocks):
        out.append(2 if t > 1 else 1)
        t //= out[-1]
    return out


class _SkipCritic(nn.Module):
    """Shared skeleton of the 2D (dims=2, [N, 3, S, S]) and 3D (dims=3, [N, 3, T, S, S]) critics.

    ``time_pool`` (3D only) is the per-block time factor; ``head_len`` the time length left at
    4×4 (1 in 2D), which sizes the final Linear.
    """

    def __init__(
        self,
        image_size: int,
        channels: int,
        max_channels: int,
        norm: str,
        dims: int,
        time_pool: list[int] | None = None,
        head_len: int = 1,
    ) -> None:
        super().__init__()
        s = image_size
        if s < 8 or s & (s - 1):
            raise ValueError(f"image_size must be a power of two >= 8, got {s}")
        if norm not in NORMS:
            raise ValueError(f"critic norm must be one of {NORMS}, got {norm!r}")
        conv = nn.Conv2d if dims == 2 else Conv3d
        self.dims = dims
        n_blocks = int(math.log2(s // 4))
        res = [s // 2**i for i in range(n_blocks + 1)]  # S, S/2, ..., 4

        def ch(r: int) -> int:
            return min(max_channels, channels * s // r)

        self.from_rgb = nn.ModuleList(conv(3, ch(r), 1) for r in res)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                conv(ch(r), ch(r), 3, padding=1),
                _norm(norm, ch(r), dims),
                nn.LeakyReLU(0.2),
                conv(ch(r), ch(r // 2), 3, padding=1),
                _norm(norm, ch(r // 2), dims),
                nn.LeakyReLU(0.2),
            )
            for r in res[:-1]
        )
        self.pools: list[tuple[int, ...]] = (
            [(2, 2)] * n_blocks if dims == 2 else [(f, 2, 2) for f in (time_pool or [])]
        )
        self.head = conv(ch(4), ch(4), 3, padding=1)
        self.fc = nn.Linear(ch(4) * 16 * head_len, 1)
        normal_init(self)

    def _run(self, x: Tensor) -> Tensor:
        pool = F.avg_pool2d if self.dims == 2 else F.avg_pool3d
        img = x
        h = F.leaky_relu(self.from_rgb[0](img), 0.2)
        for block, k, rgb in zip(self.blocks, self.pools, self.from_rgb[1:]):
            h = pool(block(h), k)
            img = pool(img, k)
            h = h + F.leaky_relu(rgb(img), 0.2)
        h = F.leaky_relu(self.head(h), 0.2)
        return self.fc(h.flatten(1)).squeeze(1).float()   # scores in fp32 under autocast too


class ImageCritic(_SkipCritic):
    """D_I: one frame per video, img [N, 3, S, S] → score [N] (higher = more real)."""

    def __init__(self, image_size: int, channels: int = 16, max_channels: int = 512, norm: str = "batch") -> None:
        super().__init__(image_size, channels, max_channels, norm, dims=2)

    def forward(self, img: Tensor) -> Tensor:
        return self._run(img)


class VideoCritic(_SkipCritic):
    """D_V: video [N, T, 3, S, S] → score [N], 3×3×3 kernels over (time, h, w).

    Every block halves space and, per ``time_factors``, time; the from-RGB skip path pools the
    raw video with the same factors. T must equal ``seq_len`` (it sizes the final Linear).
    """

    def __init__(
        self, image_size: int, seq_len: int, channels: int = 16, max_channels: int = 512, norm: str = "batch"
    ) -> None:
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        tf = time_factors(seq_len, int(math.log2(max(image_size, 4) // 4)))
        t_end = seq_len
        for f in tf:
            t_end //= f
        super().__init__(image_size, channels, max_channels, norm, dims=3, time_pool=tf, head_len=t_end)
        self.seq_len = seq_len
        self.time_pool = tf

    def forward(self, video: Tensor) -> Tensor:
        if video.shape[1] != self.seq_len:
            raise ValueError(f"video critic built for {self.seq_len} frames, got {video.shape[1]}")
        return self._run(video.transpose(1, 2))
