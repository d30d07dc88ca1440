"""LPIPS (Zhang et al. 2018, v0.1 linear calibration) through the `lpips` package, loaded offline.

`lpips.LPIPS(net=...)` would fetch its ImageNet backbone with torchvision's `pretrained=True`
(a download). Here the backbone is built random (`pnet_rand=True`) and filled from the torchvision
file that lmgan.weights locates (explicit path, env var, caches, checked download). lpips'
`pretrained_networks.alexnet/vgg16` copy torchvision's `features[N]` modules into `sliceK` under
their original index, so `net.sliceK.N.*` ← `features.N.*`; only `features.*` keys are read.
The v0.1 linear layers ship inside the lpips wheel (lpips/weights/v0.1/<net>.pth); they are loaded
here with weights_only=True rather than by lpips' own bare torch.load, and every parameter of the
model must be covered by the two files. Inputs are frames in [-1, 1], lpips' native range.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from lmgan import weights
from lmgan.errors import LmganError

_BACKBONES = {"alex": "alexnet", "vgg": "vgg16"}   # lpips net name → lmgan.weights name


class LPIPS:
    """Per-frame LPIPS distance with the AlexNet (default, the paper's) or VGG16 backbone."""

    def __init__(self, net: str = "alex", device="cpu", explicit_path=None):
        if net not in _BACKBONES:
            raise LmganError(f"LPIPS backbone {net!r}: expected one of {', '.join(_BACKBONES)}")
        import lpips

        with warnings.catch_warnings():   # lpips passes torchvision's deprecated `pretrained=`
            warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
            model = lpips.LPIPS(net=net, version="0.1", pretrained=False, pnet_rand=True, verbose=False)
        name = _BACKBONES[net]
        path = weights.locate(name, explicit_path)
        backbone = weights.load_state_dict(path, f"{name} state dict")
        lin_path = Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
        sd = dict(weights.load_state_dict(lin_path, "LPIPS v0.1 linear layers"))
        for key in model.net.state_dict():               # "slice2.3.weight" ← "features.3.weight"
            src = "features." + key.split(".", 1)[1]
            if src not in backbone:
                raise LmganError(f"{path}: not a torchvision {name} state dict (no {src})")
            sd["net." + key] = backbone[src]
        missing = [k for k, _ in model.named_parameters() if k not in sd]
        if missing:
            raise LmganError(f"LPIPS {net}: no weights for {missing[0]} ({lin_path}, {path})")
        try:   # strict=False: lpips also lists the lin layers as lins.K (aliases) and fixed buffers
            model.load_state_dict(sd, strict=False)
        except RuntimeError:
            raise LmganError(f"{path}: shapes do not match torchvision's {name}") from None
        self.model = model.requires_grad_(False).eval().to(device)
        self.device = torch.device(device)

    @torch.no_grad()
    def per_frame(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """LPIPS of each frame pair: fake, real [N, 3, H, W] in [-1, 1] → [N] (H, W ≥ 32 for alex)."""
        f = fake.to(self.device, torch.float32).clamp(-1, 1)
        r = real.to(self.device, torch.float32).clamp(-1, 1)
        return self.model(f, r).flatten()
