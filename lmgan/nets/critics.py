"""D_I and D_V, skip-connected WGAN critics in the authors' layout (docs/model.md).

Block i (resolution r → r/2): average-pool ×2 first (D_V: time too, per ``time_factors``), then
conv3×3 ch(r) → ch(r/2), norm, LReLU, conv3×3 ch(r/2) → ch(r/2), norm, LReLU, so both convs run
at the lower resolution (a quarter of the arithmetic of convolving first). The input of block i
is the previous block's output plus the image pooled to that scale through a 1×1 from-RGB conv
(no activation, as in the authors' code); block 0 gets the from-RGB of the full image alone.
Head: a 1×1 conv ch(4) → 1 on the 4×4 (D_V: T'×4×4) map, one score per patch. Channels
ch(r) = min(max_channels, channel_base // r).

Scores are patch maps [N, P]: the WGAN terms average them, the gradient penalty differentiates
their sum, as the authors' losses do. The skip input is pooled (area average) where the authors
subsample with nearest interpolation: the same role, without aliasing.

Norms: 'batch' (the paper's), 'instance' (affine), 'layer' (GroupNorm(1, C)), 'none'. Batch
norm couples the samples of a batch, which makes the per-sample gradient penalty of WGAN-GP
only approximate (Gulrajani et al. recommend layer norm): 'layer' is there for that sweep.
Norm affine parameters keep PyTorch's 1/0 init; conv weights N(0, 0.02), biases 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import channels_at, normal_init

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
    """nn.Conv3d whose k×k×k same-padded convolutions of at most 16 input channels run on the CPU
    as one 2D convolution, the k time taps stacked along channels (same parameters, same result
    to float tolerance; CUDA keeps cuDNN's conv3d).

    PyTorch's CPU conv3d of a batch of 1–2 videos is slow for few input channels and fine for
    many. Measured here on D_V's two-term loss with its penalties, forward + backward: at the
    demo's widths 0.32 s all stacked, 0.34 s all PyTorch's, 0.23 s with this rule; at the paper's
    64² widths 7.35 s all stacked, 5.96 s all PyTorch's, 5.79 s with this rule.
    """

    def forward(self, x: Tensor) -> Tensor:
        k = self.kernel_size[0]
        if (x.is_cuda or k == 1 or self.in_channels > 16 or self.stride != (1, 1, 1)
                or self.padding != (k // 2,) * 3):
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
    """Shared skeleton of the 2D (dims=2, [N, 3, S, S]) and 3D (dims=3, [N, 3, T, S, S]) critics;
    ``time_pool`` (3D only) is the per-block time factor."""

    def __init__(self, image_size: int, channel_base: int, max_channels: int, norm: str, dims: int,
                 time_pool: list[int] | None = None) -> None:
        super().__init__()
        s = image_size
        if s < 8 or s & (s - 1):
            raise ValueError(f"image_size must be a power of two >= 8, got {s}")
        if norm not in NORMS:
            raise ValueError(f"critic norm must be one of {NORMS}, got {norm!r}")
        conv = nn.Conv2d if dims == 2 else Conv3d
        self.dims = dims
        n_blocks = int(math.log2(s // 4))
        res = [s // 2**i for i in range(n_blocks)]  # each block's input resolution: S, ..., 8

        def ch(r: int) -> int:
            return channels_at(r, channel_base, max_channels)

        self.from_rgb = nn.ModuleList(conv(3, ch(r), 1) for r in res)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                conv(ch(r), ch(r // 2), 3, padding=1),
                _norm(norm, ch(r // 2), dims),
                nn.LeakyReLU(0.2),
                conv(ch(r // 2), ch(r // 2), 3, padding=1),
                _norm(norm, ch(r // 2), dims),
                nn.LeakyReLU(0.2),
            )
            for r in res
        )
        self.pools: list[tuple[int, ...]] = (
            [(2, 2)] * n_blocks if dims == 2 else [(f, 2, 2) for f in (time_pool or [])]
        )
        self.head = conv(ch(4), 1, 1)
        normal_init(self)

    def _run(self, x: Tensor) -> Tensor:
        pool = F.avg_pool2d if self.dims == 2 else F.avg_pool3d
        img, h = x, None
        for block, k, rgb in zip(self.blocks, self.pools, self.from_rgb):
            skip = rgb(img)
            h = block(pool(skip if h is None else h + skip, k))
            img = pool(img, k)
        return self.head(h).flatten(1).float()   # patch scores [N, P], fp32 under autocast too


class ImageCritic(_SkipCritic):
    """D_I: one frame per video, img [N, 3, S, S] → patch scores [N, 16] (higher = more real)."""

    def __init__(self, image_size: int, channel_base: int = 4096, max_channels: int = 512,
                 norm: str = "batch") -> None:
        super().__init__(image_size, channel_base, max_channels, norm, dims=2)

    def forward(self, img: Tensor) -> Tensor:
        return self._run(img)


class VideoCritic(_SkipCritic):
    """D_V: video [N, T, 3, S, S] → patch scores [N, T'·16], 3×3×3 kernels over (time, h, w).

    Every block halves space and, per ``time_factors``, time, so T' = T / 2^⌊log2 T⌋ rounded
    down as the blocks allow; the from-RGB skip path pools the raw video with the same factors.
    """

    def __init__(self, image_size: int, seq_len: int, channel_base: int = 4096, max_channels: int = 512,
                 norm: str = "batch") -> None:
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        tf = time_factors(seq_len, int(math.log2(max(image_size, 4) // 4)))
        super().__init__(image_size, channel_base, max_channels, norm, dims=3, time_pool=tf)
        self.seq_len = seq_len
        self.time_pool = tf

    def forward(self, video: Tensor) -> Tensor:
        if video.shape[1] != self.seq_len:
            raise ValueError(f"video critic built for {self.seq_len} frames, got {video.shape[1]}")
        return self._run(video.transpose(1, 2))
