"""A deterministic synthetic audiovisual source, so the whole pipeline runs offline.

Everything on screen is a function of the sound, so a model can learn it from the sound alone:
- a disc whose position and hue follow the (gliding) melody pitch and whose radius pulses with
  the kick and snare envelope;
- a bar whose height and brightness jump with each hi-hat and fall back within 0.15 s;
- a background whose colour follows a slow (2 s) average of the pitch.
Nothing follows the absolute loudness: lmgan's sound features are gain-invariant (each chunk's
dB is taken relative to its own loudest bin, as the paper's are), so no model could see it.
The frame is 4:3 (the centred crop matters), 25 fps (timestamp resampling matters) and the
sound 44.1 kHz stereo (audio resampling and down-mixing matter).
"""

from __future__ import annotations

import colorsys

import numpy as np

from lmgan.data.media import VideoWriter

_PENTATONIC = np.array([0, 3, 5, 7, 10, 12, 15, 17, 19, 22])  # A minor pentatonic, two octaves
_BASE_HZ = 220.0
_STEP = 0.125  # rhythmic grid (s): 16ths at 120 bpm
_CHUNK = 50  # frames drawn and encoded at once


def _synth(seconds: float, sr: int, rng: np.random.Generator):
    """Returns stereo audio [2, N], per-sample pitch (0..1), drum (kick, snare) and hat envelopes."""
    n = int(round(seconds * sr))
    melody = np.zeros(n, np.float64)
    pitch = np.zeros(n, np.float64)

    # Melody: a random walk over the scale, notes of 0.25-1 s on the grid.
    start, degree = 0, int(rng.integers(len(_PENTATONIC)))
    while start < n:
        length = int(round(float(rng.choice([0.25, 0.5, 0.5, 0.75, 1.0])) * sr))
        end = min(n, start + length)
        velocity = rng.uniform(0.35, 1.0)
        hz = _BASE_HZ * 2 ** (_PENTATONIC[degree] / 12)
        tt = np.arange(end - start) / sr
        attack, release = np.minimum(tt / 0.01, 1.0), np.minimum((tt[-1] - tt) / 0.02, 1.0)
        env = attack * np.exp(-tt / 0.6) * release
        tone = sum(np.sin(2 * np.pi * hz * k * tt) / k for k in range(1, 5))
        melody[start:end] = 0.5 * velocity * env * tone
        pitch[start:end] = degree / (len(_PENTATONIC) - 1)
        start = end
        degree = int(np.clip(degree + rng.integers(-2, 3), 0, len(_PENTATONIC) - 1))

    # Drums on a 16-step bar: kicks on 1 and 3 plus random extras, snares on 2 and 4, some hats.
    drums = np.zeros(n, np.float64)
    drum_env = np.zeros(n, np.float64)
    hat_env = np.zeros(n, np.float64)
    step_len = int(round(_STEP * sr))
    hit_len = int(0.3 * sr)
    tt = np.arange(hit_len) / sr
    kick = np.sin(2 * np.pi * (50 * tt + 70 * 0.04 * (1 - np.exp(-tt / 0.04)))) * np.exp(-tt / 0.12)
    noise = rng.standard_normal(hit_len)
    snare = noise * np.exp(-tt / 0.05)
    hat = np.diff(noise, prepend=0.0) * np.exp(-tt / 0.015)
    for step, s0 in enumerate(range(0, n, step_len)):
        pos = step % 16
        hits = []
        if pos in (0, 8) or (pos % 2 == 0 and rng.random() < 0.15):
            hits.append((kick, 1.0, 0.12))
        if pos in (4, 12):
            hits.append((snare, 0.5, 0.05))
        if pos % 2 == 1 and rng.random() < 0.5:
            hits.append((hat, 0.15, 0.0))
        for wave, gain, decay in hits:
            m = min(hit_len, n - s0)
            drums[s0 : s0 + m] += gain * wave[:m]
            if decay:
                drum_env[s0 : s0 + m] = np.maximum(drum_env[s0 : s0 + m], gain * np.exp(-tt[:m] / decay))
            else:
                hat_env[s0 : s0 + m] = np.maximum(hat_env[s0 : s0 + m], np.exp(-tt[:m] / 0.15))

    pan = 0.3 + 0.4 * pitch  # melody moves left→right with pitch
    left = melody * (1 - pan) + 0.5 * drums
    right = melody * pan + 0.5 * drums
    audio = np.stack([left, right])
    audio *= 0.8 / max(np.abs(audio).max(), 1e-9)
    return audio.astype(np.float32), pitch, drum_env, hat_env


def _frame_features(pitch, drum_env, hat_env, sr, fps, n_frames):
    """Per-frame drawing parameters, all derived from the sound up to that frame."""
    idx = np.minimum((np.arange(n_frames) / fps * sr).round().astype(int), len(pitch) - 1)
    glide = np.empty(n_frames)
    slow = np.empty(n_frames)
    g = s = pitch[0]
    a_glide, a_slow = 1 - np.exp(-1 / (0.06 * fps)), 1 - np.exp(-1 / (2.0 * fps))
    for i in range(n_frames):
        g += a_glide * (pitch[idx[i]] - g)
        s += a_slow * (g - s)
        glide[i], slow[i] = g, s
    return glide, drum_env[idx], hat_env[idx], slow


def _draw(glide, beat, hats, slow, width, height) -> np.ndarray:
    """uint8 [n, H, W, 3]; each shape is blended only inside its bounding box, which keeps 60 s fast."""
    n = len(glide)
    ys = np.arange(height, dtype=np.float32)
    # Background: colour from the slow pitch average, darker towards the top.
    bg = np.array([colorsys.hsv_to_rgb(0.6 - 0.25 * s, 0.5, 0.15 + 0.35 * s) for s in slow], np.float32)
    rows = bg[:, None, :] * (0.75 + 0.25 * ys / height)[None, :, None] * 255 + 0.5  # [n, H, 3]
    img = np.empty((n, height, width, 3), np.uint8)
    img[:] = rows.astype(np.uint8)[:, :, None, :]

    # Shapes live in the centred square, the part a default (centred) crop keeps.
    side = min(width, height)
    left, top0 = (width - side) // 2, (height - side) // 2
    bar_w = side // 10
    for i in range(n):
        # Bar at the right edge: height and brightness follow the hi-hats.
        top = top0 + int(round(side * (1 - 0.9 * hats[i])))
        bar_rgb = np.array([1.0, 0.9, 0.6]) * (0.4 + 0.6 * hats[i]) * 255
        img[i, top : top0 + side, left + side - 3 * bar_w // 2 : left + side - bar_w // 2] = bar_rgb.astype(np.uint8)

        # Disc: position and hue follow pitch, radius pulses with the drums; antialiased edge.
        cx, cy = left + side * (0.25 + 0.45 * glide[i]), top0 + side * (0.72 - 0.45 * glide[i])
        r = side * (0.15 + 0.08 * min(max(beat[i], 0.0), 1.0))
        x0, x1 = max(int(cx - r - 2), 0), min(int(cx + r + 3), width)
        y0, y1 = max(int(cy - r - 2), 0), min(int(cy + r + 3), height)
        xx = np.arange(x0, x1, dtype=np.float32)[None, :]
        yy = np.arange(y0, y1, dtype=np.float32)[:, None]
        alpha = np.clip(r - np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) + 0.5, 0, 1)[..., None]
        colour = np.array(colorsys.hsv_to_rgb(0.8 * glide[i], 0.85, 0.95), np.float32) * 255
        box = img[i, y0:y1, x0:x1].astype(np.float32)
        img[i, y0:y1, x0:x1] = (box + alpha * (colour - box) + 0.5).astype(np.uint8)
    return img


def make_demo_video(path, seconds=60.0, seed=0, width=320, height=240, fps=25, sample_rate=44100) -> None:
    """Write a synthetic mp4 (atomically) whose picture is a deterministic function of its sound."""
    rng = np.random.default_rng(seed)
    audio, pitch, drum_env, hat_env = _synth(seconds, sample_rate, rng)
    n_frames = int(round(seconds * fps))
    glide, beat, hats, slow = _frame_features(pitch, drum_env, hat_env, sample_rate, fps, n_frames)
    with VideoWriter(path, fps, width, height, audio_rate=sample_rate, audio_channels=2,
                     deterministic=True) as writer:
        for f0 in range(0, n_frames, _CHUNK):
            f1 = min(n_frames, f0 + _CHUNK)
            writer.add_frames(_draw(glide[f0:f1], beat[f0:f1], hats[f0:f1], slow[f0:f1], width, height))
            a0 = int(round(f0 / fps * sample_rate))
            a1 = audio.shape[1] if f1 == n_frames else int(round(f1 / fps * sample_rate))
            writer.add_audio(audio[:, a0:a1])
