"""Feature extractors for the set metrics: I3D for FVD, Inception-v3 for FID.

Both take clips [N, T, 3, H, W] float in [-1, 1] and return float64 numpy features, computed by
the published TorchScript detectors exactly as their reference code calls them:

- FVD, StyleGAN-V `src/metrics/frechet_video_distance.py` + `metric_utils.py`: the generator's
  [-1, 1] frames become uint8 by `(x * 127.5 + 128).clamp(0, 255)`, are laid out [N, C, T, H, W],
  and go to the detector with `rescale=True, resize=True, return_features=True`. StyleGAN-V does
  no resizing or scaling itself: the TorchScript maps 0..255 to [-1, 1] (x / 255 * 2 - 1, per the
  StyleGAN-V author in universome/fvd-comparison#4) and resizes to 224×224 on the device, the
  input of the TF-Hub I3D that google-research's FVD uses. The feature is the 400-d output before
  the softmax. FVD16: windows are cut into consecutive non-overlapping 16-frame clips.
- FID, StyleGAN2-ADA `metrics/frechet_inception_distance.py` (clean-fid uses the same file): the
  same uint8 conversion, frames [N, 3, H, W] at their own size, `return_features=True`; the
  TorchScript resizes to 299×299 and normalises (x − 128) / 128 itself. Every frame is a sample.
"""

from __future__ import annotations

import numpy as np
import torch

from lmgan import weights
from lmgan.errors import LmganError


def _clips(clips) -> torch.Tensor:
    x = torch.as_tensor(clips)
    if x.dim() != 5 or x.shape[2] != 3:
        raise LmganError(f"clips of shape {list(x.shape)}: expected [N, T, 3, H, W] in [-1, 1]")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise LmganError(f"clips of shape {list(x.shape)}: no frames to embed")
    return x


def _uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] → 0..255 as StyleGAN2-ADA / StyleGAN-V quantise generated images (round to nearest)."""
    return (x.float() * 127.5 + 128).clamp_(0, 255).to(torch.uint8)


def _load(name: str, explicit_path, device, args: tuple[str, ...]) -> torch.jit.ScriptModule:
    net = weights.load_torchscript(name, explicit_path)
    have = [a.name for a in net.forward.schema.arguments]
    if not set(args) <= set(have):
        w = weights.WEIGHTS[name]
        raise LmganError(f"{w.filename}: forward({', '.join(have[1:])}) is not the {w.what} "
                         f"(expected keyword arguments {', '.join(args)}); get it from {w.url}")
    return net.to(device)


def _run(net, batches, dim: int, what: str, **kwargs) -> np.ndarray:
    out = []
    with torch.no_grad():
        for b in batches:
            f = net(b, **kwargs)
            if f.dim() != 2 or f.shape != (b.shape[0], dim):
                raise LmganError(f"{what} returned {list(f.shape)} for a batch of {b.shape[0]}: expected "
                                 f"[{b.shape[0]}, {dim}]")
            out.append(f.to("cpu", torch.float64))
    return torch.cat(out).numpy()


class I3DFeatures:
    """FVD features: [N, T, 3, H, W] in [-1, 1] → [N · (T // clip_len), 400] (StyleGAN-V FVD16)."""

    weights = ("i3d",)
    batch = 8    # clips per detector call

    def __init__(self, device, explicit_path=None, clip_len: int = 16):
        self.device = torch.device(device)
        self.clip_len = int(clip_len)
        if self.clip_len < 1:
            raise LmganError(f"FVD clip length {clip_len}: must be at least 1 frame")
        self.net = _load("i3d", explicit_path, self.device, ("rescale", "resize", "return_features"))

    def __call__(self, clips) -> np.ndarray:
        x = _clips(clips)
        n, t = x.shape[:2]
        if t < self.clip_len:
            raise LmganError(f"a {t}-frame window is shorter than the FVD clip length "
                             f"({self.clip_len} frames): evaluate on longer windows")
        cl = self.clip_len
        pieces = [(i, j * cl) for i in range(n) for j in range(t // cl)]   # gathered per batch: no copy of x
        batches = (_uint8(torch.stack([x[i, s: s + cl] for i, s in pieces[b: b + self.batch]]))
                   .to(self.device).permute(0, 2, 1, 3, 4).contiguous()
                   for b in range(0, len(pieces), self.batch))
        return _run(self.net, batches, 400, "the I3D detector", rescale=True, resize=True, return_features=True)


class InceptionFeatures:
    """FID features: [N, T, 3, H, W] in [-1, 1] → [N · T, 2048], every frame (pool3 features)."""

    weights = ("inception",)
    batch = 64   # frames per detector call

    def __init__(self, device, explicit_path=None):
        self.device = torch.device(device)
        self.net = _load("inception", explicit_path, self.device, ("return_features",))

    def __call__(self, clips) -> np.ndarray:
        x = _clips(clips)
        frames = x.reshape(-1, *x.shape[2:])
        batches = (_uint8(frames[i: i + self.batch]).to(self.device) for i in range(0, len(frames), self.batch))
        return _run(self.net, batches, 2048, "the Inception detector", return_features=True)
