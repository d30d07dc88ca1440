"""One config object, validated in one place. Presets are YAML files of overrides.

Defaults are the paper's full model at 128² (docs/model.md); every architectural switch is a
field so that a sweep can search it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from lmgan.errors import LmganError

PRESET_DIR = Path(__file__).parent / "presets"


# Roles a field can have; the key lists each rule needs are derived from them (keys_with).
DATA = "data"            # the decoded frames and features depend on it (the cache key)
POSITIVE = "positive"    # a count: at least 1
RESUMABLE = "resumable"  # may change when a run is resumed: it touches neither model nor data
SWEEP = "sweep"          # the sweep sets it for every trial (bookkeeping, comparability): never searched
TUNABLE = "tunable"      # an optimiser or loss setting that may change between iterations of one run:
                         # population-based training mutates these in a trial it continues


def role(default, *roles: str, choices: tuple = ()):
    """A Config field with its roles and, for a string, the values it may take."""
    meta = {"roles": frozenset(roles), "choices": tuple(choices)}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Config:
    # --- data (docs/model.md): changing any of these changes the decoded cache ---
    image_size: int = role(128, DATA)            # S, power of two in [32, 512]
    fps: float = role(20.0, DATA)
    crop: list | None = role(None, DATA)         # [x, y, w, h] in source pixels; None = centred square
    sample_rate: int = role(16000, DATA, POSITIVE)
    n_mels: int = role(64, DATA, POSITIVE)       # B, feature size
    win_ms: float = role(25.0, DATA)
    hop_ms: float = role(10.0, DATA)
    chunk_frames: int = role(8, DATA, POSITIVE)  # spectrogram frames averaged per video frame (85 ms)
    feature: str = role("log-mel", DATA, choices=("mel", "log-mel", "mfcc"))
    train_frac: float = 0.8                      # first 80 % trains, last 20 % is held out

    # --- networks (docs/model.md) ---
    seq_len: int = role(32, POSITIVE)            # L, frames per window
    rnn_layers: int = role(3, POSITIVE)          # L_R
    dilation_base: int = 2
    noise_e: int = role(2, POSITIVE)             # E, motion-noise size
    mfs: bool = True                             # motion from sound
    sac: bool = True                             # sound as content
    acin: bool = True                            # audio-conditional instance norm
    vp: str = role("dirconvgru", choices=("none", "convgru", "dirconvgru"))
    vp_kernel: int = 3                           # K, odd
    # Channels at a layer of resolution r: min(max_channels, channel_base // r), the authors' rule
    # at every size (16 at 256², 32 at 128², 64 at 64²). Smaller bases give narrower networks than
    # the paper's (the CPU demo and tiny presets use them).
    g_channel_base: int = role(4096, POSITIVE)   # G's blocks and its prediction layer (P = C)
    d_channel_base: int = role(4096, POSITIVE)   # both critics
    max_channels: int = role(512, POSITIVE)
    d_norm: str = role("batch", choices=("batch", "instance", "layer", "none"))

    # --- training (docs/model.md) ---
    batch: int = role(1, POSITIVE)               # windows per step, each its own stream through the video
    restart_every: int = 0                       # windows after which a stream restarts from zero states at a
                                                 # random place (0: only at the end of the training part)
    iters: int = role(50000, POSITIVE, RESUMABLE, SWEEP)
    lr_g: float = role(1e-4, TUNABLE)       # G and R
    lr_d: float = role(4e-4, TUNABLE)       # both critics (TTUR)
    beta1: float = role(0.3, TUNABLE)
    beta2: float = role(0.999, TUNABLE)
    lambda_gp: float = role(10.0, TUNABLE)
    lambda_pl: float = role(10.0, TUNABLE)  # perceptual loss weight; 0 switches it off
    lambda_l1: float = role(0.0, TUNABLE)
    lambda_l2: float = role(0.0, TUNABLE)    # mean squared error between generated and real frames
    lambda_di: float = role(1.0, TUNABLE)   # weight of D_I's adversarial term in G's loss
    lambda_dv: float = role(1.0, TUNABLE)   # weight of D_V's
    ema_decay: float = role(0.0, RESUMABLE)  # per-iteration decay of a moving average of G and R's weights,
                                             # which evaluations, samples and renders then use; 0 = off
    vgg_weights: str = role("", RESUMABLE, SWEEP)  # explicit path to torchvision's VGG16 ImageNet state dict
    seed: int = role(0, SWEEP)
    device: str = role("auto", RESUMABLE, SWEEP)   # auto | cpu | cuda | cuda:N
    # training's forward passes under bf16 autocast (weights, optimiser state, losses stay fp32)
    precision: str = role("fp32", RESUMABLE, choices=("fp32", "bf16"))

    # --- bookkeeping ---
    log_every: int = role(50, POSITIVE, RESUMABLE, SWEEP)  # losses are read from the device only this often
    eval_every: int = role(1000, POSITIVE, RESUMABLE, SWEEP)
    sample_every: int = role(2000, POSITIVE, RESUMABLE, SWEEP)
    ckpt_every: int = role(1000, POSITIVE, RESUMABLE, SWEEP)
    keep_checkpoints: int = role(3, POSITIVE, RESUMABLE, SWEEP)
    eval_metrics: list = role(["ssim", "psnr"], RESUMABLE, SWEEP)
    eval_windows: int = role(0, RESUMABLE, SWEEP)  # held-out windows evaluated; 0 = all of the held-out 20 %

    def data_key(self) -> dict:
        """The settings the decoded frames and features depend on (part of the cache key)."""
        return {k: getattr(self, k) for k in keys_with(DATA)}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def keys_with(name: str) -> tuple[str, ...]:
    """The Config keys that have the role `name`, in declaration order."""
    return tuple(f.name for f in fields(Config) if name in f.metadata.get("roles", ()))


RESUMABLE_KEYS = frozenset(keys_with(RESUMABLE))
TUNABLE_KEYS = frozenset(keys_with(TUNABLE))
_CHOICES = {f.name: f.metadata["choices"] for f in fields(Config) if f.metadata.get("choices")}


def validate(cfg: Config) -> Config:
    """Raise LmganError naming the first bad value; return cfg."""
    def bad(key, why):
        raise LmganError(f"config: {key}={getattr(cfg, key)!r} {why}")

    s = cfg.image_size
    if not (32 <= s <= 512 and s & (s - 1) == 0):
        bad("image_size", "must be a power of two between 32 and 512")
    for key in keys_with(POSITIVE):
        if getattr(cfg, key) < 1:
            bad(key, "must be a positive integer")
    if cfg.seq_len < 2:
        bad("seq_len", "must be at least 2")
    for key in ("lr_g", "lr_d", "fps", "win_ms", "hop_ms"):
        v = getattr(cfg, key)
        if not (v > 0 and math.isfinite(v)):
            bad(key, "must be a positive number")
    for key in ("lambda_gp", "lambda_pl", "lambda_l1", "lambda_l2", "lambda_di", "lambda_dv"):
        v = getattr(cfg, key)
        if not (v >= 0 and math.isfinite(v)):
            bad(key, "must be a non-negative number")
    for key in ("beta1", "beta2", "ema_decay"):
        if not 0 <= getattr(cfg, key) < 1:
            bad(key, "must be in [0, 1)")
    if not 0 < cfg.train_frac < 1:
        bad("train_frac", "must be between 0 and 1")
    for key in ("g_channel_base", "d_channel_base"):
        if getattr(cfg, key) < s:
            bad(key, f"must be at least image_size ({s}): channels at r are channel_base // r")
    if cfg.vp_kernel < 1 or cfg.vp_kernel % 2 == 0:
        bad("vp_kernel", "must be a positive odd kernel size (3, 5, 7, ...)")
    if cfg.dilation_base < 1:
        bad("dilation_base", "must be at least 1")
    for key, choices in _CHOICES.items():
        if getattr(cfg, key) not in choices:
            bad(key, f"must be one of {', '.join(choices)}")
    if cfg.crop is not None and (len(cfg.crop) != 4 or cfg.crop[2] <= 0 or cfg.crop[3] <= 0
                                 or min(cfg.crop[:2]) < 0):
        bad("crop", "must be [x, y, w, h] with x, y >= 0 and w, h > 0")
    if cfg.win_ms * cfg.sample_rate / 1000 < 2:
        bad("win_ms", "is shorter than two audio samples")
    if cfg.restart_every < 0:
        bad("restart_every", "must be 0 (never) or a positive number of windows")
    if cfg.eval_windows < 0:
        bad("eval_windows", "must be 0 (all) or a positive number of windows")
    from lmgan.metrics import lookup   # late: the registry imports this module's LmganError
    lookup(cfg.eval_metrics, "config: eval_metrics")
    return cfg


def needed_weights(cfg: Config) -> dict[str, str | None]:
    """The pretrained weights (lmgan.weights names) a run of `cfg` loads, each with its explicit
    path (None: looked up): VGG16 for the perceptual loss when lambda_pl > 0, and those of its
    eval_metrics (the metric registry's `weights`)."""
    from lmgan.metrics import lookup
    need = {"vgg16": cfg.vgg_weights or None} if cfg.lambda_pl > 0 else {}
    for metric in lookup(cfg.eval_metrics, "config: eval_metrics"):
        for name in metric.weights:
            need.setdefault(name, None)
    return need


def config_notes(cfg: Config) -> list[str]:
    """What a config leaves out of the paper's training, and why: said once when a run or a
    sweep starts (the demo preset switches the perceptual loss off, for one)."""
    notes = []
    if cfg.lambda_pl == 0:
        notes.append("note: perceptual loss off (lambda_pl=0); for the paper's loss provide the VGG16 "
                     "weights (LMGAN_VGG16_WEIGHTS=PATH) and --set lambda_pl=10")
    return notes


def _coerce(key: str, value, default):
    """Turn a YAML/CLI value into the type of the field's default, or raise LmganError."""
    kind = type(default)
    try:
        if value is None or default is None or isinstance(default, list):
            if key == "eval_metrics" and isinstance(value, str):
                return [v for v in value.split(",") if v]
            if key == "crop" and isinstance(value, str):
                return None if value.lower() in ("", "none", "null") else [int(v) for v in value.split(",")]
            return value
        if kind is bool:
            if isinstance(value, str):
                low = value.lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            if isinstance(value, (bool, int)) and value in (0, 1):
                return bool(value)
            raise ValueError
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            if isinstance(value, bool):
                raise ValueError
            return int(float(value)) if isinstance(value, str) else int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise LmganError(f"config: {key}={value!r} is not a valid {kind.__name__}") from None


def apply_overrides(cfg: Config, overrides: dict, source: str = "config") -> Config:
    """Return a copy of cfg with overrides applied; unknown keys are an error naming the source."""
    known = {f.name: f for f in fields(Config)}
    values = cfg.to_dict()
    for key, value in overrides.items():
        if key not in known:
            raise LmganError(f"{source}: unknown config key {key!r}")
        values[key] = _coerce(key, value, getattr(cfg, key))
    return Config(**values)


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise LmganError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise LmganError(f"{path}: malformed YAML{where}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LmganError(f"{path}: cannot read ({e.__class__.__name__})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LmganError(f"{path}: expected a mapping of config keys to values")
    return data


def presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def parse_sets(items: list[str]) -> dict:
    """`--set key=value` pairs; values are parsed as YAML scalars (1e-4, true, [1,2])."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise LmganError(f"--set {item!r}: expected key=value")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def build_config(preset: str | None = None, config_file: str | None = None,
                 sets: list[str] | None = None, video: dict | None = None) -> Config:
    """Defaults ← preset ← the video's own settings (a named video's crop) ← config file ← --set,
    then validated."""
    cfg = Config()
    if preset:
        if preset not in presets():
            raise LmganError(f"unknown preset {preset!r} (known: {', '.join(presets())})")
        cfg = apply_overrides(cfg, load_yaml(PRESET_DIR / f"{preset}.yaml"), f"preset {preset}")
    if video:
        cfg = apply_overrides(cfg, video, "video registry")
    if config_file:
        cfg = apply_overrides(cfg, load_yaml(config_file), str(config_file))
    cfg = apply_overrides(cfg, parse_sets(sets), "--set")
    return validate(cfg)
