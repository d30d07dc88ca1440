"""Per-frame sound features (docs/model.md): log-mel spectrogram chunks averaged over time.

Gain invariance (as in the authors' converter.py, `librosa.power_to_db(chunk, ref=np.max)`):
each chunk's dB is taken relative to the loudest power-mel value of that chunk (all its frames
and bins) and floored 80 dB below it, then averaged over the chunk's frames, so every log-mel
feature lies in [-80, 0] whatever the recording level. New sound at another volume (Table 2
renders any sound) therefore lands inside the training range; absolute dB plus per-bin
standardisation did not (docs/model.md: -20 dB of gain moved every bin by ~2.5 training sd, white
noise landed up to 31 sd outside). An all-zero chunk is 0 dB everywhere, as librosa makes it
(both powers clamp to amin). `mfcc` is the DCT of that chunk-relative dB; `mel` stays absolute
power.

Alignment: spectrogram frame k is centred on sample k·hop of one global grid anchored at sample 0
of the sound (time 0 = video frame 0). Video frame t at time t/fps takes the `chunk_frames`
spectrogram frames centred on the grid point nearest t/fps (k_t - chunk/2 … k_t + chunk/2 - 1, so
the chunk is centred on t/fps to within one hop) and averages them. Because the grid is global
and every spectrogram frame only reads its own window of samples, features computed block by
block while streaming (render) equal those computed on the whole file. Samples outside the sound
are silence (zeros).
"""

from __future__ import annotations

import numpy as np
import torch

from lmgan.config import Config
from lmgan.torch_trio import import_torchaudio

torchaudio = import_torchaudio()


class SoundFeatures:
    """Waveform (mono, `sample_rate`) → one F-dim feature per video frame."""

    def __init__(self, cfg: Config):
        self.sr = cfg.sample_rate
        self.fps = cfg.fps
        self.n_fft = round(cfg.win_ms * self.sr / 1000)
        self.hop = max(1, round(cfg.hop_ms * self.sr / 1000))
        self.chunk = cfg.chunk_frames
        self.kind = cfg.feature
        self.dim = cfg.n_mels
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=self.sr, n_fft=self.n_fft, hop_length=self.hop, n_mels=cfg.n_mels,
            center=False, power=2.0)
        if self.kind == "mfcc":
            self.dct = torchaudio.functional.create_dct(cfg.n_mels, cfg.n_mels, norm="ortho")

    def centre_frame(self, t: np.ndarray) -> np.ndarray:
        """Index of the spectrogram frame nearest the time of video frame t."""
        return np.rint(np.asarray(t) * self.sr / self.fps / self.hop).astype(np.int64)

    def samples_needed(self, t_last: int) -> int:
        """Number of leading samples that must be known before frame t_last's feature is final."""
        k_hi = int(self.centre_frame(t_last)) + self.chunk - self.chunk // 2
        return (k_hi - 1) * self.hop - self.n_fft // 2 + self.n_fft

    def first_sample(self, t_first: int) -> int:
        """Earliest sample frame t_first's feature reads (samples before it can be dropped)."""
        return (int(self.centre_frame(t_first)) - self.chunk // 2) * self.hop - self.n_fft // 2

    def __call__(self, wave: np.ndarray | torch.Tensor, t0: int, n: int, offset: int = 0) -> torch.Tensor:
        """Features of video frames t0 … t0+n-1 → float32 [n, F].

        wave holds samples offset … offset+len(wave)-1 of the sound; samples the frames need
        outside that range are taken as silence.
        """
        wave = torch.as_tensor(wave, dtype=torch.float32).reshape(-1)
        k = self.centre_frame(np.arange(t0, t0 + n))
        k_lo = int(k[0]) - self.chunk // 2
        k_hi = int(k[-1]) + self.chunk - self.chunk // 2
        a = k_lo * self.hop - self.n_fft // 2                 # first sample of frame k_lo's window
        b = (k_hi - 1) * self.hop - self.n_fft // 2 + self.n_fft
        seg = torch.zeros(b - a)
        lo, hi = max(a, offset), min(b, offset + wave.numel())
        if hi > lo:
            seg[lo - a:hi - a] = wave[lo - offset:hi - offset]
        power = self.mel(seg)                                  # [F, k_hi - k_lo]
        idx = torch.as_tensor(k - k[0])[:, None] + torch.arange(self.chunk)
        chunks = power[:, idx].permute(1, 0, 2)                # [n, F, chunk]
        if self.kind == "mel":
            return chunks.mean(-1)
        feat = chunk_db(chunks).mean(-1)                       # [n, F]
        return feat @ self.dct if self.kind == "mfcc" else feat


AMIN, TOP_DB = 1e-10, 80.0


def chunk_db(power: torch.Tensor) -> torch.Tensor:
    """Power [n, F, chunk] → dB relative to each chunk's maximum, floored at -TOP_DB (librosa's
    power_to_db with ref=np.max, amin=1e-10, top_db=80 applied to each chunk on its own)."""
    ref = power.amax(dim=(1, 2), keepdim=True)
    db = 10 * torch.log10(power.clamp_min(AMIN) / ref.clamp_min(AMIN))
    return db.clamp_min(-TOP_DB)


def frame_count(n_samples: int, sample_rate: int, fps: float) -> int:
    """Frames of 1/fps each that a sound of n_samples covers (rounded to the nearest frame)."""
    return int(round(n_samples / sample_rate * fps))
