"""The ABI-coupled torch trio: torchaudio's and torchvision's native libraries load only into the
torch build they were compiled against, so pyproject.toml pins all three exactly."""

from __future__ import annotations

from importlib import metadata

from lmgan.errors import LmganError

TORCH_TRIO = ("torch", "torchaudio", "torchvision")


def import_torchaudio():
    """torchaudio, or one line naming both versions and the repair when its native library does
    not load into the installed torch (a hand-upgraded torch, say) — not a 30-line traceback."""
    try:
        import torchaudio
    except OSError as exc:
        have = {name: _installed(name) for name in TORCH_TRIO}
        repair = " ".join(_pins(TORCH_TRIO))
        raise LmganError(
            f"torchaudio {have['torchaudio']} does not load into torch {have['torch']} "
            f"({_undefined_symbol(exc)}); repair with: pip install {repair}") from None
    return torchaudio


def _installed(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "(not installed)"


def _pins(names: tuple[str, ...]) -> list[str]:
    """lmgan's own requirements for these packages, as pyproject.toml pins them (the one place)."""
    try:
        requires = metadata.requires("lmgan") or []
    except metadata.PackageNotFoundError:
        requires = []
    pins = [r.split(";")[0].replace(" ", "") for r in requires]
    found = [p for p in pins if p.split("==")[0] in names]
    return found or [f"{name}==<the version pyproject.toml pins>" for name in names]


def _undefined_symbol(exc: BaseException | None) -> str:
    """The loader's reason (torch wraps it as the OSError's cause), e.g. 'undefined symbol: X'."""
    while exc is not None:
        text = str(exc)
        at = text.find("undefined symbol")
        if at >= 0:
            return text[at:].splitlines()[0].rstrip(")")
        exc = exc.__cause__ or exc.__context__
    return "its native library fails to load"
