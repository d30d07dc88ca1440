"""Pretrained weights from the sweep's driver to its trials, with no shared file system needed.

The driver finds (or downloads, once) every weight file the trials need before any trial starts
(search._check_weights), then `ship`s them: each file's bytes go into Ray's object store once, and
the trials receive a small record per file (name, file name, size, sha256, a reference to the
bytes) through tune.with_parameters, as the source video goes. A trial `receive`s them before it
builds its networks: a file its node's lmgan cache already holds with the same content (a shared
LMGAN_CACHE, or a node that received it for an earlier trial) is used where it is and nothing is
fetched; otherwise the bytes are fetched from the object store and written, atomically, into the
node's cache under their content hash ($LMGAN_CACHE/weights/shipped/<sha256 prefix>-<file>), so
a file the user named (vgg_weights=/my/vgg.pth) never takes the canonical file's name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lmgan import atomic
from lmgan.weights import WEIGHTS, cache_dir, candidates, sha256


@dataclass(frozen=True)
class Shipped:
    name: str           # lmgan.weights name (vgg16, i3d, ...)
    filename: str       # the canonical file name (WEIGHTS[name].filename)
    size: int
    sha256: str
    data: Any           # a Ray ObjectRef of the file's bytes (or the bytes themselves)


def ship(paths: dict[str, Path], put: Callable | None = None) -> dict[str, Shipped]:
    """In the driver: each weight file (name → path found there) as a Shipped record, its bytes
    put into Ray's object store once (`put`, default ray.put)."""
    if put is None:
        import ray
        put = ray.put
    out = {}
    for name, path in paths.items():
        data = Path(path).read_bytes()
        out[name] = Shipped(name, WEIGHTS[name].filename, len(data),
                            hashlib.sha256(data).hexdigest(), put(data))
    return out


def node_path(s: Shipped) -> Path:
    """Where a trial writes a shipped file in its node's cache: named by its content."""
    return cache_dir() / "weights" / "shipped" / f"{s.sha256[:16]}-{s.filename}"


def _same(path: Path, s: Shipped) -> bool:
    return path.is_file() and path.stat().st_size == s.size and sha256(path) == s.sha256


def receive(shipped: dict[str, Shipped]) -> dict[str, Path]:
    """In a trial: name → a local file with the shipped content, written into this node's lmgan
    cache only if the cache does not hold it already (canonical name or content name)."""
    out = {}
    for name, s in shipped.items():
        here = [*candidates(WEIGHTS[name]), node_path(s)]
        found = next((p for p in here if _same(p, s)), None)
        if found is None:
            data = s.data
            if not isinstance(data, bytes):
                import ray
                data = ray.get(data)
            if hashlib.sha256(data).hexdigest() != s.sha256:
                raise RuntimeError(f"{s.filename}: the weight file received is not the one the sweep's driver hashed")
            found = node_path(s)
            with atomic.replacing(found) as tmp:
                tmp.write_bytes(data)
            del data
        out[name] = found
    return out
