"""Pretrained weights: where each file is looked for, and how it is fetched and checked.

Order: an explicit path (config key / flag, then the weight's environment variable), the user
caches (torch's hub checkpoint folder, then ~/.cache/lmgan/weights or $LMGAN_CACHE/weights), then
the canonical public URL, verified against its published hash and stored in the lmgan cache.
Missing and offline: one LmganError naming the file, the URL and the variable to set.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

from lmgan.errors import LmganError


@dataclass(frozen=True)
class Weight:
    name: str
    filename: str
    url: str
    sha256_prefix: str   # torchvision publishes the first hex digits of the sha256 in the name
    env: str
    what: str


WEIGHTS = {
    "vgg16": Weight("vgg16", "vgg16-397923af.pth",
                    "https://download.pytorch.org/models/vgg16-397923af.pth", "397923af",
                    "LMGAN_VGG16_WEIGHTS", "VGG16 ImageNet weights (torchvision) for the perceptual loss"),
}


def cache_dir() -> Path:
    """lmgan's cache root: $LMGAN_CACHE, else ~/.cache/lmgan."""
    return Path(os.environ.get("LMGAN_CACHE") or Path.home() / ".cache" / "lmgan")


def candidates(w: Weight) -> list[Path]:
    return [Path(torch.hub.get_dir()) / "checkpoints" / w.filename, cache_dir() / "weights" / w.filename]


def locate(name: str, explicit: str | None = None, download: bool = True) -> Path:
    """Path to the named weight file, downloading it if allowed; LmganError when it cannot be had."""
    w = WEIGHTS[name]
    for source, value in (("given path", explicit), (w.env, os.environ.get(w.env))):
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise LmganError(f"{w.what}: {source} {path} does not exist")
            return path
    for path in candidates(w):
        if path.is_file():
            return path
    hint = (f"download {w.url} and pass its path with {w.env}=PATH (or the config key), "
            f"or put it in {candidates(w)[1].parent}")
    if not download:
        raise LmganError(f"{w.what} not found ({w.filename}): {hint}")
    return _download(w, hint)


def _download(w: Weight, hint: str) -> Path:
    dst = cache_dir() / "weights" / w.filename
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(f".part{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(w.url, timeout=30) as r, open(tmp, "wb") as f:
            while block := r.read(1 << 20):
                digest.update(block)
                f.write(block)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        reason = getattr(e, "reason", e)
        raise LmganError(f"{w.what} not found and could not be downloaded ({reason}): {hint}") from None
    if not digest.hexdigest().startswith(w.sha256_prefix):
        tmp.unlink(missing_ok=True)
        raise LmganError(f"{w.url}: downloaded file fails its sha256 check: {hint}")
    os.replace(tmp, dst)
    return dst


def load_state_dict(path: Path, what: str) -> dict:
    """torch.load with weights_only=True: a weight file can never run code."""
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure here means "not a usable weight file"
        raise LmganError(f"{path}: not a readable {what} file ({e.__class__.__name__})") from None
    if not isinstance(sd, dict):
        raise LmganError(f"{path}: not a state dict for {what}")
    return sd
