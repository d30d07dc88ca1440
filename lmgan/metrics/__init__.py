"""Evaluation metrics: a registry (name → Metric) used by training, `lmgan eval` and sweeps.

Four kinds:
- frame metrics (ssim, psnr, lpips, lpips_vgg) score each generated frame against its real
  counterpart; the evaluator averages them per held-out window and reports mean ± std over
  windows (Table 1 protocol).
- set metrics (fvd, fid, fdd) are Fréchet distances between Gaussian fits of detector features of
  the generated and the real set; the real statistics are computed once per video and cached.
- sequence metrics (av_align, motion_corr) score the whole held-out part, generated window after
  window, as one video with its sound: do its motions fall where the sound's onsets and the real
  video's motions fall (metrics/sync.py)?
- probe metrics (sensitivity) generate the held-out part again from altered sound: does the
  output change when the sound does?

Metrics needing pretrained weights name them (lmgan.weights); builders import lazily, and this
module imports no torch, so reading the registry (config validation, help texts) costs nothing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from lmgan.errors import LmganError

if TYPE_CHECKING:
    import torch

FVD_CLIP = 16   # StyleGAN-V's FVD16: windows are cut into consecutive 16-frame clips


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str                      # "frame" | "set" | "sequence" | "probe"
    higher_is_better: bool
    build: Callable                # (device, weight_paths) → per-frame fn, or a feature extractor
    weights: tuple[str, ...] = ()  # pretrained weights it needs (lmgan.weights names)
    what: str = ""
    per_window: Callable[[int], int] = lambda t: t   # set metrics: feature vectors from a T-frame window
    cost: str = "negligible"       # what it adds to an evaluation (help texts, docs)


def _ssim(device, paths):
    from lmgan.metrics.frames import ssim_per_frame
    return ssim_per_frame


def _psnr(device, paths):
    from lmgan.metrics.frames import psnr_per_frame
    return psnr_per_frame


def _lpips(net: str, weight: str):
    def build(device, paths):
        from lmgan.metrics.lpips_net import LPIPS
        return LPIPS(net, device, paths.get(weight)).per_frame
    return build


def _fvd(device, paths):
    from lmgan.metrics.detectors import I3DFeatures
    return I3DFeatures(device, paths.get("i3d"), clip_len=FVD_CLIP)


def _fid(device, paths):
    from lmgan.metrics.detectors import InceptionFeatures
    return InceptionFeatures(device, paths.get("inception"))


def _fdd(device, paths):
    from lmgan.metrics.temporal import FrameDifferenceFeatures
    return FrameDifferenceFeatures(device)


def _sync(name: str):
    def build(device, paths):
        from lmgan.metrics import sync
        return getattr(sync, name)
    return build


REGISTRY: dict[str, Metric] = {m.name: m for m in (
    Metric("ssim", "frame", True, _ssim, what="structural similarity, per frame"),
    Metric("psnr", "frame", True, _psnr, what="peak signal-to-noise ratio (dB), per frame"),
    Metric("lpips", "frame", False, _lpips("alex", "alexnet"), ("alexnet",), "LPIPS v0.1, AlexNet",
           cost="an AlexNet pass per frame"),
    Metric("lpips_vgg", "frame", False, _lpips("vgg", "vgg16"), ("vgg16",), "LPIPS v0.1, VGG16",
           cost="a VGG16 pass per frame"),
    Metric("fvd", "set", False, _fvd, ("i3d",), "Fréchet video distance, I3D (StyleGAN-V protocol)",
           per_window=lambda t: t // FVD_CLIP, cost="an I3D pass per 16-frame clip"),
    Metric("fid", "set", False, _fid, ("inception",), "Fréchet inception distance, per frame",
           cost="an Inception pass per frame"),
    Metric("fdd", "set", False, _fdd, (), "frame-difference distance: temporal coherence, no weights",
           per_window=lambda t: t - 1),
    Metric("av_align", "sequence", True, _sync("av_align"), (),
           "AV-Align: sound onsets vs optical-flow peaks, IoU within one frame; beside it "
           "av_align_real, the real video's own score", cost="optical flow of every held-out frame"),
    Metric("motion_corr", "sequence", True, _sync("motion_corr"), (),
           "correlation over held-out time of real and generated motion, per 4x4 cell"),
    Metric("sensitivity", "probe", True, lambda device, paths: None, (),
           "change of the output when the sound is time-shifted (sensitivity_silence: silenced), "
           "relative to the real video's change; 0 = deaf to its sound",
           cost="two more generations of the held-out part"),
)}


def lookup(names, flag: str) -> list[Metric]:
    """The metrics named, or one error naming `flag` (where the names came from), the first
    unknown name, the closest known one and all of them: the one check every entry point uses."""
    import difflib
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(REGISTRY), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise LmganError(f"{flag}: unknown metric {unknown[0]!r}{hint} (known: {', '.join(REGISTRY)})")
    return [REGISTRY[n] for n in names]


def ssim(fake: torch.Tensor, real: torch.Tensor) -> float:
    """Mean per-frame SSIM of frames [N, 3, H, W] in [-1, 1]."""
    return float(_per_frame("ssim")(fake, real).mean())


def psnr(fake: torch.Tensor, real: torch.Tensor) -> float:
    """Mean per-frame PSNR (dB) of frames [N, 3, H, W] in [-1, 1]."""
    return float(_per_frame("psnr")(fake, real).mean())


def _per_frame(name: str):
    """A frame metric's per-frame function (these need no device or weights)."""
    return REGISTRY[name].build(None, {})


def lpips(fake: torch.Tensor, real: torch.Tensor, net: str = "alex") -> float:
    """Mean per-frame LPIPS (v0.1; net 'alex' or 'vgg') of frames [N, 3, H, W] in [-1, 1]."""
    return float(_lpips_model(net, fake.device).per_frame(fake, real).mean())


@functools.lru_cache(maxsize=4)
def _lpips_model(net: str, device: torch.device):
    from lmgan.metrics.lpips_net import LPIPS
    return LPIPS(net, device)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between two Gaussians, float64, stable matrix square root."""
    from lmgan.metrics.frechet import frechet_distance as fd
    return fd(mu1, sigma1, mu2, sigma2)
