"""Render video from any sound with a trained model, streaming: memory does not grow with length.

The sound is decoded block by block; each block is resampled twice (to the model's rate for the
features, to the output's rate for the muxed sound track). Frames whose feature window is fully
known are generated a window at a time through R and the prediction layer with carried state and
encoded at once, so only one window of frames and a few hundred ms of sound are ever held.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lmgan.config import Config, apply_overrides
from lmgan.data.features import SoundFeatures, frame_count
from lmgan.data.media import AAC_RATES, AudioSource, Resampler, VideoWriter
from lmgan.device import pick_device
from lmgan.errors import LmganError
from lmgan.nets.model import ListenAndMove
from lmgan.pixels import to_uint8
from lmgan.training import checkpoint


def load_model(ckpt_path: str | Path, device: torch.device) -> tuple[ListenAndMove, Config]:
    """The generating networks of a checkpoint file or run folder."""
    return model_from_checkpoint(checkpoint.load(ckpt_path), ckpt_path, device)


def model_from_checkpoint(ck: dict, ckpt_path, device: torch.device) -> tuple[ListenAndMove, Config]:
    """Build the networks from the checkpoint's own config and load its weights into them: the
    moving average of them when the run kept one (`ema_decay`), as its evaluations used."""
    cfg = apply_overrides(Config(), ck["config"], str(ckpt_path))
    model = ListenAndMove(cfg)
    try:
        model.load_state_dict(ck.get("model_ema", ck["model"]))
    except (RuntimeError, KeyError):
        raise LmganError(f"{ckpt_path}: the checkpoint's config does not match its weights") from None
    return model.to(device).eval(), cfg


@torch.no_grad()
def render(ckpt_path: str | Path, audio_path: str | Path, out_path: str | Path,
           device: str = "auto", seed: int = 0, progress: bool = True) -> dict:
    dev = pick_device(device)
    model, cfg = load_model(ckpt_path, dev)
    src = AudioSource(audio_path)
    out_rate = src.rate if src.rate in AAC_RATES else 48000
    channels = 2 if src.channels >= 2 else 1
    try:
        with VideoWriter(out_path, cfg.fps, cfg.image_size, cfg.image_size,
                         audio_rate=out_rate, audio_channels=channels) as writer:
            total, seconds = stream(model, cfg, src, writer, seed, out_rate, channels,
                                    desc=Path(out_path).name if progress else None)
    finally:
        src.close()
    return {"frames": total, "seconds": seconds, "out": str(out_path)}


@torch.no_grad()
def stream(model: ListenAndMove, cfg: Config, src: AudioSource, sink, seed: int = 0,
           out_rate: int | None = None, channels: int = 1, desc: str | None = None) -> tuple[int, float]:
    """Generate the frames of `src`'s sound window by window into `sink`: `sink.add_frames`
    gets uint8 [n, S, S, 3] windows, `sink.add_audio` the sound resampled to `out_rate` (or
    nothing when it is None). Returns (frames, seconds of sound). `desc` shows a progress bar.

    Frames are generated as training generates them: consecutive windows from frame 0 with the
    recurrent state carried, features of the same global grid, the model's own normalisation."""
    dev = model.feat_mean.device
    feats = SoundFeatures(cfg)
    to_model = Resampler(cfg.sample_rate, "mono")
    to_out = Resampler(out_rate, "stereo" if channels == 2 else "mono") if out_rate else None
    torch.manual_seed(seed)
    state = model.initial_state(1, dev)
    wave, offset, received, t = np.zeros(0, np.float32), 0, 0, 0
    bar = tqdm(total=round(src.duration, 1) if src.duration else None, unit="s", disable=desc is None,
               desc=desc, bar_format="{l_bar}{bar}| {n:.1f}/{total_fmt} s of sound")

    def emit(n: int) -> None:
        nonlocal state, t, wave, offset
        f = feats(wave, t, n, offset).to(dev)
        frames, state = model.generate(f[None], state)
        sink.add_frames(to_uint8(frames[0]))
        t += n
        drop = feats.first_sample(t) - offset
        if drop > 0:
            wave, offset = wave[drop:], offset + drop

    try:
        for frame in itertools.chain(src.frames(), [None]):
            block = to_model(frame)[0]
            wave, received = np.concatenate([wave, block]), received + len(block)
            if to_out:
                sink.add_audio(to_out(frame))
            bar.update(len(block) / cfg.sample_rate)
            if frame is None:
                break
            while feats.samples_needed(t + cfg.seq_len - 1) <= received:
                emit(cfg.seq_len)
        total = frame_count(received, cfg.sample_rate, cfg.fps)
        if total == 0:
            raise LmganError(f"{src.path}: the sound is shorter than one frame (1/{cfg.fps:g} s)")
        while t < total:
            emit(min(cfg.seq_len, total - t))
    finally:
        bar.close()
    return total, received / cfg.sample_rate
