"""Pretrained weights: where each file is looked for, and how it is fetched and checked.

Order: an explicit path (config key / flag), the weight's environment variable, the user caches
(torch's hub checkpoint folder, then $LMGAN_CACHE/weights or ~/.cache/lmgan/weights), then the
canonical public URL, downloaded to a temporary file, verified, and renamed into the lmgan cache.
Missing and offline: one LmganError naming the file, the URL and the variable to set.

Checksums. torchvision files carry the first 8 hex digits of their sha256 in their name; that
prefix is checked on download (as torch.hub does). For the two TorchScript detectors no sha256 is
published by their authors (StyleGAN-V, StyleGAN2-ADA, clean-fid load them unchecked), so none is
pinned here: on first download the computed sha256 is printed and written beside the file as
`<file>.sha256` (sha256sum format), and every later lookup that finds such a record compares the
file against it, so a cache that changed or was corrupted after the download is caught. A full
`sha256` in an entry, when one is pinned, is checked on download instead.

On a cluster, run `lmgan weights --fetch` once with LMGAN_CACHE on a shared disk; every job then
finds the files in the cache and never downloads. A sweep needs no shared disk: its driver finds or
fetches the files once and ships them to the trials (lmgan.sweep.ship), whose lookups run inside
given_only(), which returns those files and never downloads.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.request
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from lmgan import atomic
from lmgan.errors import LmganError


@dataclass(frozen=True)
class Weight:
    name: str
    filename: str
    url: str
    sha256_prefix: str   # torchvision publishes the first hex digits of the sha256 in the name
    env: str
    what: str
    sha256: str | None = None   # full pinned digest; None with no prefix → recorded on download


WEIGHTS = {
    "vgg16": Weight("vgg16", "vgg16-397923af.pth",
                    "https://download.pytorch.org/models/vgg16-397923af.pth", "397923af",
                    "LMGAN_VGG16_WEIGHTS", "VGG16 ImageNet weights (torchvision) for the perceptual loss"),
    "alexnet": Weight("alexnet", "alexnet-owt-7be5be79.pth",
                      "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", "7be5be79",
                      "LMGAN_ALEXNET_WEIGHTS", "AlexNet ImageNet weights (torchvision) for LPIPS"),
    "i3d": Weight("i3d", "i3d_torchscript.pt",
                  "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1", "",
                  "LMGAN_I3D_WEIGHTS", "I3D Kinetics-400 TorchScript (StyleGAN-V) for FVD"),
    "inception": Weight("inception", "inception-2015-12-05.pt",
                        "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/"
                        "inception-2015-12-05.pt", "",
                        "LMGAN_INCEPTION_WEIGHTS", "Inception-v3 2015-12-05 TorchScript (StyleGAN2-ADA) for FID"),
}


def cache_dir() -> Path:
    """lmgan's cache root: $LMGAN_CACHE, else ~/.cache/lmgan."""
    return Path(os.environ.get("LMGAN_CACHE") or Path.home() / ".cache" / "lmgan")


def candidates(w: Weight) -> list[Path]:
    return [Path(torch.hub.get_dir()) / "checkpoints" / w.filename, cache_dir() / "weights" / w.filename]


def _entry(name: str) -> Weight:
    if name not in WEIGHTS:
        raise LmganError(f"unknown weight {name!r}; known: {', '.join(WEIGHTS)}")
    return WEIGHTS[name]


def _hint(w: Weight, flag: str | None = None) -> str:
    """How to provide a missing file; `flag` names the command's own way to pass a path ("" none)."""
    if flag is None:
        flag = "config key vgg_weights" if w.name == "vgg16" else f"lmgan eval --weights {w.name}=PATH"
    return (f"download {w.url} and pass its path with {w.env}=PATH{f' (or {flag})' if flag else ''}, "
            f"or put it in {candidates(w)[1].parent} (lmgan weights --fetch does this)")


def _find(w: Weight, explicit: str | os.PathLike | None) -> Path | None:
    """The first existing file in lookup order; a named path that does not exist is an error."""
    for source, value in (("the given path ", explicit), (f"{w.env}=", os.environ.get(w.env))):
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise LmganError(f"{w.what} ({w.filename}): {source}{path} does not exist")
            return path
    return next((p for p in candidates(w) if p.is_file()), None)


def locate(name: str, explicit: str | None = None, download: bool = True, flag: str | None = None) -> Path:
    """Path to the named weight file, downloading it if allowed; LmganError when it cannot be had
    (`flag`: the caller's own way to pass a path, for the message; see _hint)."""
    w = _entry(name)
    if _given is not None:        # inside given_only(): the files given, and never a download
        if name in _given:
            return _given[name]
        download = False
    path = _find(w, explicit)
    if path is not None:
        _check_record(w, path)
        return path
    if not download:
        raise LmganError(f"{w.what} not found ({w.filename}): {_hint(w, flag)}")
    return _download(w, progress=sys.stderr.isatty(), flag=flag)


_given: dict[str, Path] | None = None


@contextmanager
def given_only(paths: dict[str, Path]):
    """Within the block, locate(name) returns `paths[name]` and downloads nothing: a sweep trial
    uses the files its driver found or fetched (lmgan.sweep.ship), never a download of its own."""
    global _given
    before, _given = _given, dict(paths)
    try:
        yield
    finally:
        _given = before


def sha256(path: Path) -> str:
    """A file's sha256, read in 1 MiB blocks (weight files are hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _record(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _check_record(w: Weight, path: Path) -> None:
    """An unpinned file with a download record must still hash to it."""
    rec = _record(path)
    if w.sha256 or w.sha256_prefix or not rec.is_file():
        return
    recorded = rec.read_text().split()
    if not recorded or sha256(path) != recorded[0]:
        raise LmganError(f"{path}: sha256 differs from {rec} written when it was downloaded (changed or "
                         f"corrupt); delete both to download {w.url} again, or set {w.env}=PATH")


def _download(w: Weight, progress: bool = False, flag: str | None = None) -> Path:
    """urllib → temp file in the cache → verify → rename; nothing half-written is ever found."""
    from tqdm import tqdm

    dst = cache_dir() / "weights" / w.filename
    digest = hashlib.sha256()
    with atomic.replacing(dst) as tmp:          # a failed or rejected download caches nothing
        try:
            with urllib.request.urlopen(w.url, timeout=30) as r, open(tmp, "wb") as f, \
                    tqdm(total=int(r.headers.get("Content-Length") or 0) or None, unit="B", unit_scale=True,
                         unit_divisor=1024, desc=w.filename, disable=not progress, leave=False) as bar:
                while block := r.read(1 << 20):
                    digest.update(block)
                    f.write(block)
                    bar.update(len(block))
        except OSError as e:
            reason = getattr(e, "reason", None) or e
            raise LmganError(f"{w.what} not found ({w.filename}) and could not be downloaded ({reason}): "
                             f"{_hint(w, flag)}") from None
        sha = digest.hexdigest()
        pinned = w.sha256 or w.sha256_prefix
        if pinned and not sha.startswith(pinned):
            raise LmganError(f"{w.url}: downloaded {w.filename} fails its sha256 check (got {sha[:12]}…, "
                             f"expected {pinned[:12]}…); nothing was cached: {_hint(w, flag)}")
        if not pinned:
            rec = _record(dst)
            atomic.write_text(rec, f"{sha}  {w.filename}\n")
            print(f"{w.filename}: sha256 {sha} (no published checksum; recorded in {rec} and checked "
                  f"on every later load)", file=sys.stderr)
    return dst


def status() -> list[dict]:
    """Where each weight is (or would be) found; never downloads and never raises."""
    rows = []
    for w in WEIGHTS.values():
        env = os.environ.get(w.env)
        search = ([f"{w.env}={env}"] if env else []) + [str(p) for p in candidates(w)]
        try:
            path, problem = _find(w, None), None
        except LmganError as e:
            path, problem = None, str(e)
        rows.append(dict(name=w.name, what=w.what, filename=w.filename, env=w.env, url=w.url,
                         search=search, path=path, problem=problem))
    return rows


def fetch_all(progress: bool = True, on_error: Callable[[LmganError], None] | None = None) -> list[Path]:
    """Download every missing weight into cache_dir()/weights; the paths of all weights now present.

    Every file is tried. A failure goes to `on_error` when given (the CLI prints one line per
    file); otherwise one LmganError naming the failed files is raised after the last one.
    """
    paths, errors = [], []
    for w in WEIGHTS.values():
        try:
            path = _find(w, None)
            if path is None:
                path = _download(w, progress=progress)
            else:
                _check_record(w, path)
            paths.append(path)
        except LmganError as e:
            errors.append(e)
            if on_error is not None:
                on_error(e)
    if errors and on_error is None:
        raise LmganError(f"{len(errors)} of {len(WEIGHTS)} weight files could not be fetched; "
                         f"first: {errors[0]}")
    return paths


def load_state_dict(path: Path, what: str) -> dict:
    """torch.load with weights_only=True: a weight file can never run code."""
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure here means "not a usable weight file"
        raise LmganError(f"{path}: not a readable {what} file ({e.__class__.__name__})") from None
    if not isinstance(sd, dict):
        raise LmganError(f"{path}: not a state dict for {what}")
    return sd


def load_torchscript(name: str, explicit: str | None = None) -> torch.jit.ScriptModule:
    """The named TorchScript detector on the CPU in eval mode (torch.jit.load runs no pickled code)."""
    w = _entry(name)
    path = locate(name, explicit)
    try:
        with warnings.catch_warnings():   # torch 2.11 deprecates TorchScript; these files exist only as it
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:  # noqa: BLE001 - any failure here means "not a usable TorchScript file"
        raise LmganError(f"{path}: not a readable TorchScript file for {w.what} "
                         f"({e.__class__.__name__}); expected {w.filename} from {w.url}") from None
    return module.eval()
