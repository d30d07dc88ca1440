"""The video-prediction layer: ConvGRUs over a window's activations (DESIGN.md §3).

Variants: 'dirconvgru' = four directional cells (h+, h-, v+, v-) + one centred K×K cell;
'convgru' = the centred cell alone. Cell order everywhere (state channels, weights):
``CELLS`` = (h+, h-, v+, v-, c), each P = C channels.

A directional cell's input and hidden kernels are masked to the centre line and one side along
one axis, so each output pixel of h+ depends only on pixels at columns <= its own (information
flows left → right; h- right → left, v+ top → bottom, v- bottom → top), at every step, through
the recurrence too. The ± cells of one axis share one parameter set, the - kernel being the +
kernel mirrored, so the layer is equivariant to mirroring by construction and holds three
parameter sets (h, v, c). Choices left open by the spec:
- GRU in PyTorch's formulation (reset gate applied to W_hn h + b_hn), both convs biased.
- The two 1×1 read-outs (x', 5P → C and a, 5P → 1) are one conv with C + 1 outputs; output
  channel C is the gate.
- Masked-out kernel entries are zeroed at init and stay zero (the mask is also applied in
  forward, so they get no gradient), so the stored parameters equal the effective ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["VideoPrediction", "CELLS"]

CELLS = ("h+", "h-", "v+", "v-", "c")


class VideoPrediction(nn.Module):
    """x [B, T, C, N, N] + state → (out_t = a_t ⊙ x_t + (1 - a_t) ⊙ x'_t, new_state).

    Cost per window: one conv for all cells' input gates over all B*T frames, then a plain loop
    over T with one grouped conv (groups = n_cells) for the hidden gates plus elementwise ops,
    then one 1×1 conv over all frames for the read-out.
    """

    def __init__(self, channels: int, kernel: int = 3, directional: bool = True) -> None:
        super().__init__()
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"video-prediction kernel must be odd and >= 1, got {kernel}")
        c = p = channels
        k = kernel
        self.channels = c
        self.kernel = k
        self.directional = directional
        self.n_cells = 5 if directional else 1
        self.sets = ("h", "v", "c") if directional else ("c",)
        self.wx = nn.ParameterDict({s: nn.Parameter(torch.empty(3 * p, c, k, k)) for s in self.sets})
        self.wh = nn.ParameterDict({s: nn.Parameter(torch.empty(3 * p, p, k, k)) for s in self.sets})
        self.bx = nn.ParameterDict({s: nn.Parameter(torch.zeros(3 * p)) for s in self.sets})
        self.bh = nn.ParameterDict({s: nn.Parameter(torch.zeros(3 * p)) for s in self.sets})
        ctr = k // 2
        mask_h = torch.zeros(k, k)
        mask_h[:, : ctr + 1] = 1.0  # h+: columns <= centre
        mask_v = torch.zeros(k, k)
        mask_v[: ctr + 1, :] = 1.0  # v+: rows <= centre
        self.register_buffer("mask_h", mask_h, persistent=False)
        self.register_buffer("mask_v", mask_v, persistent=False)
        self.readout = nn.Conv2d(self.n_cells * p, c + 1, 1)

        with torch.no_grad():
            for s in self.sets:
                for w in (self.wx[s], self.wh[s]):
                    if s == "c":
                        nn.init.normal_(w, 0.0, 0.02)
                    else:  # orthogonal on [out, in*K*K] (orthogonal_ flattens so), then mask
                        nn.init.orthogonal_(w)
                        w.mul_(mask_h if s == "h" else mask_v)
            nn.init.normal_(self.readout.weight, 0.0, 0.02)
            nn.init.zeros_(self.readout.bias)

    def _weights(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Effective (wx [nc*3P, C, K, K], bx, wh [nc*3P, P, K, K], bh), cells in ``CELLS`` order."""
        if not self.directional:
            return self.wx["c"], self.bx["c"], self.wh["c"], self.bh["c"]

        def full(w: nn.ParameterDict) -> Tensor:
            h = w["h"] * self.mask_h
            v = w["v"] * self.mask_v
            return torch.cat((h, h.flip(-1), v, v.flip(-2), w["c"]), 0)

        def bias(b: nn.ParameterDict) -> Tensor:
            return torch.cat((b["h"], b["h"], b["v"], b["v"], b["c"]), 0)

        return full(self.wx), bias(self.bx), full(self.wh), bias(self.bh)

    def cell_weights(self, cell: str) -> tuple[Tensor, Tensor]:
        """Effective (masked, mirrored) input and hidden kernels of one cell, for inspection."""
        cells = CELLS if self.directional else ("c",)
        i = cells.index(cell)
        wx, _, wh, _ = self._weights()
        n = 3 * self.channels
        return wx[i * n : (i + 1) * n], wh[i * n : (i + 1) * n]

    def initial_state(
        self,
        batch: int,
        size: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """Zero hidden states of all cells, [batch, n_cells*P, size, size]."""
        return torch.zeros(batch, self.n_cells * self.channels, size, size, device=device, dtype=dtype)

    def forward(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """x [B, T, C, N, N], state [B, n_cells*C, N, N] → (out like x, state after the last step)."""
        b, t, c, n, _ = x.shape
        nc, pad = self.n_cells, self.kernel // 2
        if state.shape != (b, nc * c, n, n):
            raise ValueError(f"video-prediction state must be {(b, nc * c, n, n)}, got {tuple(state.shape)}")
        wx, bx, wh, bh = self._weights()
        frames = x.reshape(b * t, c, n, n)
        gx = F.conv2d(frames, wx, bx, padding=pad).view(b, t, nc, 3, c, n, n)
        h = state
        hs = []
        # unbind, not indexing: an indexed slice's backward materialises a zero tensor the size
        # of the whole source per use (O(T^2) memory traffic over the loop); unbind's is one stack.
        for gxi in gx.unbind(1):
            gh = F.conv2d(h, wh, bh, padding=pad, groups=nc).view(b, nc, 3, c, n, n)
            xr, xz, xn = gxi.unbind(2)
            hr, hz, hn = gh.unbind(2)
            r = torch.sigmoid(xr + hr)
            z = torch.sigmoid(xz + hz)
            cand = torch.tanh(xn + r * hn)
            # (1 - z) * cand + z * h, one op fewer
            h = (cand + z * (h.reshape(b, nc, c, n, n) - cand)).view(b, nc * c, n, n)
            hs.append(h)
        ro = self.readout(torch.stack(hs, 1).view(b * t, nc * c, n, n))
        xp, a = ro[:, :c], torch.sigmoid(ro[:, c:])
        out = xp + a * (frames - xp)
        return out.view(b, t, c, n, n), h
