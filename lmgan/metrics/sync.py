"""Does the video move with its sound? Three measures that need no pretrained weights.

- `av_align` (Yariv et al., AAAI 2024, as their av_align.py of 2025-02 computes it, see
  AV_ALIGN_SOURCE): onsets of the sound (librosa's onset detector on the sound at 22.05 kHz)
  against the local maxima of the video's mean optical-flow magnitude (OpenCV's Farnebäck flow,
  their parameters) that reach 0.1; intersection over union, an onset matching a motion peak
  less than one frame away, each motion peak matching at most one onset. It asks "does the
  picture move where the sound has onsets" and is reported with the real video's own score
  beside it, the ceiling for this clip.
- `motion_corr`: Pearson correlation over held-out time between the real and the generated
  video's per-frame motion (mean |x[t+1] − x[t]|) in each cell of a grid, averaged over cells
  weighted by how much the real video moves there. It asks "does it move *when* (and where) the
  real one moves"; 1 is perfect timing, 0 none, frozen or shuffled frames score about 0.
- `sensitivity`: the held-out part generated again, with the same noise, from its own sound
  time-shifted by half its length (and from silence): the mean |change| of the output, relative
  to how much the real video differs between the same two moments. A generator that ignores
  its sound scores exactly 0; about 1 means it changes as much as the real video would.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# AV-Align follows its authors' script as they last published it: av_align.py in
# github.com/guyyariv/TempoTokens, commit bf0b1e3 (2025-02-13, "Update av_align.py"). Its first
# release (34d9502, 2023-10-26) cannot run (find_local_max_indexes reads an undefined `n`); the
# update also drops flow maxima below FLOW_PEAK_MIN and lets a motion peak match one onset only.
AV_ALIGN_SOURCE = "guyyariv/TempoTokens av_align.py @ bf0b1e3 (2025-02-13)"
ONSET_RATE = 22050   # librosa.load's default rate, at which AV-Align detects its onsets
FLOW_PEAK_MIN = 0.1  # mean flow magnitude (pixels) a maximum must reach to be a motion peak
MOTION_GRID = 4      # motion_corr's grid of cells


def audio_onsets(sound: np.ndarray, sample_rate: int) -> np.ndarray:
    """Onset times (s) of a mono sound, as AV-Align detects them."""
    import librosa

    y = np.asarray(sound, np.float32)
    if sample_rate != ONSET_RATE:
        y = librosa.resample(y, orig_sr=sample_rate, target_sr=ONSET_RATE)
    env = librosa.onset.onset_strength(y=y, sr=ONSET_RATE)
    return librosa.frames_to_time(librosa.onset.onset_detect(onset_envelope=env, sr=ONSET_RATE),
                                  sr=ONSET_RATE)


def flow_trajectory(frames_u8: np.ndarray) -> np.ndarray:
    """Mean Farnebäck optical-flow magnitude per frame [T] of RGB uint8 frames [T, H, W, 3];
    entry t is the flow from frame t−1 to t, entry 0 repeats entry 1 (as AV-Align does). The mean
    is cv2.mean's, as av_align.py's compute_of takes it (summed in float64, not numpy's float32)."""
    import cv2

    grey = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames_u8]
    mags = []
    for a, b in zip(grey[:-1], grey[1:]):
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        mags.append(cv2.mean(cv2.magnitude(flow[..., 0], flow[..., 1]))[0])   # av_align.py's mean
    return np.array(mags[:1] + mags, np.float64)


def motion_peaks(trajectory: np.ndarray, fps: float) -> np.ndarray:
    """Times (s) of the strict local maxima of a flow trajectory that reach FLOW_PEAK_MIN.

    A static scene's flow is not exactly 0: its tiny maxima are noise, not motion, and counting
    them would fill the union with peaks no sound explains (av_align.py's find_local_max_indexes,
    "at least 0.1")."""
    x = np.asarray(trajectory, np.float64)
    mid = x[1:-1]
    i = np.flatnonzero((mid > x[:-2]) & (mid > x[2:]) & (mid >= FLOW_PEAK_MIN)) + 1
    return i / fps


def peak_matches(audio_peaks, video_peaks, fps: float) -> int:
    """How many audio peaks find a video peak strictly within one frame of them, each video peak
    taken by one audio peak at most: otherwise one motion peak between two close onsets would count
    twice. As av_align.py's calc_intersection_over_union does it, greedily: the audio peaks in their
    order, each taking the first video peak still free in its window. On peaks in time order, as
    both lists are here, that is also the largest such matching."""
    free = [True] * len(video_peaks)
    hits = 0
    for a in audio_peaks:
        for j, v in enumerate(video_peaks):
            if free[j] and v - 1 / fps < a < v + 1 / fps:   # the script's window, rounding included
                free[j] = False
                hits += 1
                break
    return hits


def peak_iou(audio_peaks, video_peaks, fps: float) -> float:
    """AV-Align's intersection over union: matched pairs (`peak_matches`) over audio peaks plus
    video peaks minus matched pairs. 0 when there are no peaks at all (the script divides by 0)."""
    hit = peak_matches(audio_peaks, video_peaks, fps)
    union = len(audio_peaks) + len(video_peaks) - hit
    return hit / union if union else 0.0


def av_align(frames_u8: np.ndarray, sound: np.ndarray, sample_rate: int, fps: float,
             onsets: np.ndarray | None = None) -> float:
    """AV-Align of RGB uint8 frames [T, H, W, 3] with the sound that starts at their frame 0."""
    if onsets is None:
        onsets = audio_onsets(sound, sample_rate)
    return peak_iou(onsets, motion_peaks(flow_trajectory(frames_u8), fps), fps)


def motion_profile(frames: torch.Tensor, grid: int = MOTION_GRID) -> torch.Tensor:
    """Frames [T, 3, H, W] → per-cell motion [T−1, grid²]: mean |x[t+1] − x[t]| in each cell."""
    d = (frames[1:].float() - frames[:-1].float()).abs().mean(1, keepdim=True)
    return F.adaptive_avg_pool2d(d, grid).flatten(1)


def motion_corr(fake: torch.Tensor, real: torch.Tensor, grid: int = MOTION_GRID) -> float:
    """Correlation over time of real and generated per-cell motion, weighted by the real motion's
    spread in each cell (cells where the real video never moves carry no weight)."""
    f = motion_profile(fake, grid).double()
    r = motion_profile(real, grid).double()
    f, r = f - f.mean(0), r - r.mean(0)
    sf, sr = f.square().mean(0).sqrt(), r.square().mean(0).sqrt()
    corr = (f * r).mean(0) / (sf * sr).clamp_min(1e-12)
    corr = torch.where(sf > 1e-9, corr, torch.zeros_like(corr))   # a frozen cell: no correlation
    if float(sr.sum()) <= 1e-12:
        return 0.0
    return float((corr * sr).sum() / sr.sum())


def shifted(x: torch.Tensor, by: int) -> torch.Tensor:
    """x [T, ...] rolled by `by` steps along time: the time-shifted sound (or real frames)."""
    return torch.roll(x, shifts=-by, dims=0)
