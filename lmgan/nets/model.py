"""The generating side as one module: feature normalisation → R → G (with the prediction layer).

Training, evaluation and rendering all call `generate`, with recurrent state carried from one
window to the next, so a long sound streams through in windows with memory bounded by one window.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from lmgan.config import Config
from lmgan.nets.critics import ImageCritic, VideoCritic
from lmgan.nets.generator import Generator
from lmgan.nets.motion import MotionEncoder

State = dict  # {"motion": list[Tensor [d, B, M]], "vp": Tensor | None}


class ListenAndMove(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        f = cfg.n_mels
        self.register_buffer("feat_mean", torch.zeros(f))
        self.register_buffer("feat_std", torch.ones(f))
        self.motion = MotionEncoder(f, cfg.noise_e, cfg.rnn_layers, cfg.dilation_base, cfg.mfs)
        self.generator = Generator(cfg.image_size, f, self.motion.dim, sac=cfg.sac, acin=cfg.acin,
                                   vp=cfg.vp, vp_kernel=cfg.vp_kernel, channel_base=cfg.g_channel_base,
                                   max_channels=cfg.max_channels)

    def set_feature_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.feat_mean.copy_(mean)
        self.feat_std.copy_(std)

    def initial_state(self, batch: int, device) -> State:
        return {"motion": self.motion.initial_state(batch, device),
                "vp": self.generator.initial_state(batch, device)}

    def generate(self, feats: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Raw features [B, T, F] → frames [B, T, 3, S, S] in [-1, 1] and the state after them."""
        f = (feats - self.feat_mean) / self.feat_std
        b, t, _ = f.shape
        noise = torch.randn(b, t, self.motion.noise_dim_in(), device=f.device, dtype=f.dtype)
        m, motion_state = self.motion(f, noise, state["motion"])
        frames, vp_state = self.generator(f, m, state["vp"])
        return frames, {"motion": motion_state, "vp": vp_state}


def detach_state(state: State, keep: torch.Tensor | None = None, dtype: torch.dtype | None = None) -> State:
    """Cut the graph between windows (truncated BPTT); keep [B] (0/1) zeroes restarted streams."""
    def cut(x, batch_dim):
        if x is None:
            return None
        x = x.detach() if dtype is None else x.detach().to(dtype)
        if keep is not None:
            shape = [1] * x.dim()
            shape[batch_dim] = -1
            x = x * keep.view(shape).to(x.dtype)
        return x
    return {"motion": [cut(s, 1) for s in state["motion"]], "vp": cut(state["vp"], 0)}


def build_critics(cfg: Config) -> tuple[ImageCritic, VideoCritic]:
    kw = dict(channel_base=cfg.d_channel_base, max_channels=cfg.max_channels, norm=cfg.d_norm)
    return ImageCritic(cfg.image_size, **kw), VideoCritic(cfg.image_size, cfg.seq_len, **kw)
