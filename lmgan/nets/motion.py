"""R, the motion encoder: a residual, dilated, multi-layer GRU (docs/model.md).

Layer l (0-based) takes its recurrent state from d_l = dilation_base**l steps back, so with the
defaults (3 layers, base 2, 20 fps) the layers hop 50, 100 and 200 ms. A dilated GRU is d plain
GRUs over the d interleaved phases of the sequence, which lets one cuDNN ``nn.GRU`` call per
layer do the whole window instead of a Python loop over time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MotionEncoder", "dilated_gru"]


def dilated_gru(gru: nn.GRU, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
    """Run a 1-layer batch-first ``gru`` with dilation d = ``state.shape[0]`` over ``x`` [B, T, M].

    ``state`` [d, B, M] holds the GRU outputs of the last d steps before this window (oldest
    first): phase p (steps p, p+d, ...) starts from ``state[p]``, the output of step p - d.
    T is padded at the END to a multiple of d; padded steps come after every real step, so they
    never influence a real output and are dropped. Returns (h [B, T, M], new_state [d, B, M]),
    new_state = cat(state, h along time)[-d:], which also holds for T < d.
    """
    d = state.shape[0]
    b, t, m = x.shape
    if d == 1:
        h, _ = gru(x, state)
    else:
        pad = -t % d
        if pad:
            x = F.pad(x, (0, 0, 0, pad))
        n = (t + pad) // d
        # [B, n*d, M] -> [B, n, d, M] -> [B, d, n, M] -> [B*d, n, M]: row b*d + p is phase p.
        xs = x.reshape(b, n, d, m).transpose(1, 2).reshape(b * d, n, m)
        h0 = state.transpose(0, 1).reshape(1, b * d, m)
        h, _ = gru(xs, h0)
        h = h.reshape(b, d, n, m).transpose(1, 2).reshape(b, n * d, m)[:, :t]
    if t >= d:
        new_state = h[:, t - d :].transpose(0, 1)
    else:
        new_state = torch.cat((state[t:], h.transpose(0, 1)), 0)
    # cuDNN wants a contiguous hx when this comes back as the next window's state.
    return h, new_state.contiguous()


class MotionEncoder(nn.Module):
    """R: sound features (+ noise) → motion codes m_t, one per frame.

    With MfS (motion from sound) the input is r_t = [f_t, e_t], e_t of size ``noise_dim``;
    without it R reads noise alone, of size M, so ``self.dim`` = M = feat_dim + noise_dim in
    both cases and G's input size does not depend on the switch. Every layer has hidden size M,
    its output h is added to its input and passed through LeakyReLU(0.2) (residual), and the
    carried state is the raw GRU output (before the residual), which is what the recurrence
    consumes. States are used as passed: the caller detaches them between windows (truncated
    back-propagation) and keeps them while rendering long audio.
    """

    def __init__(
        self,
        feat_dim: int,
        noise_dim: int,
        layers: int = 3,
        dilation_base: int = 2,
        mfs: bool = True,
    ) -> None:
        super().__init__()
        if layers < 1 or dilation_base < 1:
            raise ValueError(f"need layers >= 1 and dilation_base >= 1, got {layers}, {dilation_base}")
        self.feat_dim = feat_dim
        self.noise_dim = noise_dim
        self.mfs = mfs
        self.dim = feat_dim + noise_dim
        self.dilations = [dilation_base**l for l in range(layers)]
        self.grus = nn.ModuleList(nn.GRU(self.dim, self.dim, batch_first=True) for _ in range(layers))
        # "R normal init" (docs/model.md): all GRU weights N(0, 0.02), biases 0.
        for name, p in self.grus.named_parameters():
            if "weight" in name:
                nn.init.normal_(p, 0.0, 0.02)
            else:
                nn.init.zeros_(p)

    def noise_dim_in(self) -> int:
        """Size of e_t the caller draws: ``noise_dim`` with MfS, M without (motion from noise alone)."""
        return self.noise_dim if self.mfs else self.dim

    def initial_state(
        self, batch: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> list[Tensor]:
        """Zero states, one [d_l, batch, M] per layer (the outputs of the d_l steps 'before' t=0)."""
        return [torch.zeros(d, batch, self.dim, device=device, dtype=dtype) for d in self.dilations]

    def forward(
        self, feats: Tensor | None, noise: Tensor, state: list[Tensor]
    ) -> tuple[Tensor, list[Tensor]]:
        """feats [B, T, F] (ignored, may be None, without MfS), noise [B, T, noise_dim_in()],
        state from ``initial_state`` or the previous window → (motion [B, T, M], new_state)."""
        if len(state) != len(self.grus):
            raise ValueError(f"expected {len(self.grus)} layer states, got {len(state)}")
        x = torch.cat((feats, noise), -1) if self.mfs else noise
        new_state = []
        for gru, s in zip(self.grus, state):
            h, s = dilated_gru(gru, x, s)
            x = F.leaky_relu(x + h, 0.2)
            new_state.append(s)
        return x, new_state
